package binarypack

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
)

// Undefined is JavaScript's undefined. It packs as 0xc1, which the
// JavaScript unpacker reads as undefined.
type Undefined struct{}

// maxDepth bounds the nesting of arrays and maps, on both sides. The JS
// packer overflows its stack at a few thousand levels.
const maxDepth = 4096

// maxLen is the largest length a 32-bit length prefix can carry.
const maxLen = math.MaxUint32

// Errors returned by Pack.
var (
	ErrUnsupportedType = errors.New("binarypack: unsupported type")
	ErrTooLong         = errors.New("binarypack: length exceeds 2^32-1")
	ErrTooDeep         = errors.New("binarypack: nesting too deep")
)

// Pack returns the encoding of v. See the package documentation for the
// types it accepts.
func Pack(v any) ([]byte, error) {
	return AppendPack(nil, v)
}

// AppendPack appends the encoding of v to dst. On error it returns dst
// unchanged.
func AppendPack(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// AppendBinary appends b packed as one binary value, as the JS packer packs
// an ArrayBuffer or Uint8Array. It allocates only if dst lacks capacity
// for len(b)+5 bytes.
func AppendBinary(dst, b []byte) ([]byte, error) {
	n := len(b)
	switch {
	case n <= 0x0f:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	case uint64(n) <= maxLen:
		dst = append(dst, 0xdb)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	default:
		return dst, ErrTooLong
	}
	return append(dst, b...), nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case Undefined:
		return append(dst, 0xc1), nil
	case bool:
		if v {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case int:
		return appendInt(dst, int64(v)), nil
	case int8:
		return appendInt(dst, int64(v)), nil
	case int16:
		return appendInt(dst, int64(v)), nil
	case int32:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case uint:
		return appendUint(dst, uint64(v)), nil
	case uint8:
		return appendUint(dst, uint64(v)), nil
	case uint16:
		return appendUint(dst, uint64(v)), nil
	case uint32:
		return appendUint(dst, uint64(v)), nil
	case uint64:
		return appendUint(dst, v), nil
	case float32:
		return appendFloat(dst, float64(v)), nil
	case float64:
		return appendFloat(dst, v), nil
	case string:
		return appendString(dst, v)
	case []byte:
		return AppendBinary(dst, v)
	case []any:
		if depth >= maxDepth {
			return dst, ErrTooDeep
		}
		dst, err := appendHeader(dst, len(v), 0x90, 0xdc)
		if err != nil {
			return dst, err
		}
		for _, e := range v {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[string]any:
		if depth >= maxDepth {
			return dst, ErrTooDeep
		}
		dst, err := appendHeader(dst, len(v), 0x80, 0xde)
		if err != nil {
			return dst, err
		}
		for _, k := range jsKeyOrder(v) {
			if dst, err = appendString(dst, k); err != nil {
				return dst, err
			}
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("%w %s", ErrUnsupportedType, reflect.TypeOf(v))
	}
}

// appendHeader writes an array (fix 0x90, code16 0xdc) or map (0x80, 0xde)
// header; the 32-bit form follows the 16-bit code.
func appendHeader(dst []byte, n int, fix, code16 byte) ([]byte, error) {
	switch {
	case n <= 0x0f:
		return append(dst, fix|byte(n)), nil
	case n <= 0xffff:
		return append(dst, code16, byte(n>>8), byte(n)), nil
	case uint64(n) <= maxLen:
		return binary.BigEndian.AppendUint32(append(dst, code16+1), uint32(n)), nil
	}
	return dst, ErrTooLong
}

func appendString(dst []byte, s string) ([]byte, error) {
	n := len(s)
	switch {
	case n <= 0x0f:
		dst = append(dst, 0xb0|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xd8, byte(n>>8), byte(n))
	case uint64(n) <= maxLen:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xd9), uint32(n))
	default:
		return dst, ErrTooLong
	}
	return append(dst, s...), nil
}

// appendInt picks the encoding the JS packer picks, testing the ranges in
// its order: fixint, uint8, int8, uint16, int16, uint32, int32, int64.
func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= -32 && n <= 0x7f:
		return append(dst, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n >= math.MinInt8 && n <= math.MaxInt8:
		return append(dst, 0xd0, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return append(dst, 0xcd, byte(n>>8), byte(n))
	case n >= math.MinInt16 && n <= math.MaxInt16:
		return append(dst, 0xd1, byte(n>>8), byte(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	// Beyond 32 bits the JS packer uses int64 up to 2^63 and uint64 only
	// above it.
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}

func appendUint(dst []byte, n uint64) []byte {
	if n <= math.MaxInt64 {
		return appendInt(dst, int64(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), n)
}

// appendFloat packs f as JavaScript packs a number: integral values as
// integers (so -0 becomes 0), everything else as an IEEE 754 double.
func appendFloat(dst []byte, f float64) []byte {
	if f == math.Trunc(f) { // false for NaN; ±Inf fail the range checks
		switch {
		case f >= -(1<<63) && f < 1<<63:
			return appendInt(dst, int64(f))
		case f >= 1<<63 && f < 1<<64:
			return appendUint(dst, uint64(f))
		}
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f))
}

// jsKeyOrder returns m's keys in the order a JavaScript engine enumerates
// an object's own keys: array indices ascending, then the others (insertion
// order in JS, which a Go map lacks: sorted here).
func jsKeyOrder(m map[string]any) []string {
	type key struct {
		s     string
		idx   uint64
		isIdx bool
	}
	ks := make([]key, 0, len(m))
	for s := range m {
		idx, isIdx := arrayIndex(s)
		ks = append(ks, key{s, idx, isIdx})
	}
	slices.SortFunc(ks, func(a, b key) int {
		switch {
		case a.isIdx && b.isIdx:
			return cmp.Compare(a.idx, b.idx)
		case a.isIdx:
			return -1
		case b.isIdx:
			return 1
		}
		return cmp.Compare(a.s, b.s)
	})
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.s
	}
	return out
}

// arrayIndex reports whether k is an ECMAScript array index: the canonical
// decimal form of an integer from 0 to 2^32-2.
func arrayIndex(k string) (uint64, bool) {
	if k == "" || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	if err != nil || n > math.MaxUint32-1 {
		return 0, false
	}
	return n, true
}
