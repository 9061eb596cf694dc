package binarypack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errors returned by Unpack (wrapped with the offset where they occurred).
var (
	ErrTruncated     = errors.New("binarypack: truncated input")
	ErrTrailingBytes = errors.New("binarypack: trailing bytes after value")
	ErrReservedType  = errors.New("binarypack: reserved type byte")
	ErrMapKey        = errors.New("binarypack: map key is not a string")
)

// Unpack decodes data, which must hold exactly one value. It returns nil,
// Undefined, bool, int64 (uint64 above math.MaxInt64), float64, string,
// []byte, []any or map[string]any. Strings and binaries are copied: the
// result does not alias data.
func Unpack(data []byte) (any, error) {
	v, end, err := walk(data, 0, 0, true)
	if err != nil {
		return nil, err
	}
	if end != len(data) {
		return nil, fmt.Errorf("%w at offset %d", ErrTrailingBytes, end)
	}
	return v, nil
}

// UnpackBinary returns the contents of msg if msg is exactly one binary
// value, such as a Uint8Array or ArrayBuffer sent by a PeerJS client;
// otherwise ok is false and msg should go to Unpack. b aliases msg.
func UnpackBinary(msg []byte) (b []byte, ok bool) {
	if len(msg) == 0 {
		return nil, false
	}
	var n, hdr int
	switch t := msg[0]; {
	case t >= 0xa0 && t <= 0xaf:
		n, hdr = int(t&0x0f), 1
	case t == 0xda && len(msg) >= 3:
		n, hdr = int(binary.BigEndian.Uint16(msg[1:])), 3
	case t == 0xdb && len(msg) >= 5:
		n, hdr = int(binary.BigEndian.Uint32(msg[1:])), 5
	default:
		return nil, false
	}
	if len(msg)-hdr != n {
		return nil, false
	}
	return msg[hdr:], true
}

type kind uint8

const (
	kNil kind = iota
	kUndefined
	kBool
	kInt   // n holds an int64
	kUint  // n holds a uint64 above math.MaxInt64
	kFloat // n holds float64 bits
	kStr   // n is the length in bytes
	kBin   // n is the length in bytes
	kArray // n is the element count
	kMap   // n is the pair count
)

// header is one decoded type byte with its fixed-size payload.
type header struct {
	kind kind
	n    uint64
}

// readHeader decodes the header at b[i:] and returns it with the offset of
// what follows. For strings and binaries it checks that the bytes are
// there, and for arrays and maps that the input can hold that many
// elements, so callers may allocate n.
func readHeader(b []byte, i int) (header, int, error) {
	if i >= len(b) {
		return header{}, i, fmt.Errorf("%w at offset %d", ErrTruncated, i)
	}
	t := b[i]
	i++
	var h header
	switch {
	case t <= 0x7f:
		return header{kInt, uint64(t)}, i, nil
	case t >= 0xe0:
		return header{kInt, uint64(int64(int8(t)))}, i, nil
	case t <= 0x8f:
		h = header{kMap, uint64(t & 0x0f)}
	case t <= 0x9f:
		h = header{kArray, uint64(t & 0x0f)}
	case t <= 0xaf:
		h = header{kBin, uint64(t & 0x0f)}
	case t <= 0xbf:
		h = header{kStr, uint64(t & 0x0f)}
	default:
		size, k := fixedSize(t)
		if size < 0 {
			return header{}, i - 1, fmt.Errorf("%w 0x%02x at offset %d", ErrReservedType, t, i-1)
		}
		if len(b)-i < size {
			return header{}, i - 1, fmt.Errorf("%w at offset %d", ErrTruncated, i-1)
		}
		p := b[i : i+size]
		i += size
		h.kind = k
		switch t {
		case 0xc0, 0xc1:
		case 0xc2:
			h.n = 0
		case 0xc3:
			h.n = 1
		case 0xca:
			h.n = math.Float64bits(float64(math.Float32frombits(binary.BigEndian.Uint32(p))))
		case 0xcb:
			h.n = binary.BigEndian.Uint64(p)
		case 0xcc:
			h.n = uint64(p[0])
		case 0xcd, 0xd8, 0xda, 0xdc, 0xde:
			h.n = uint64(binary.BigEndian.Uint16(p))
		case 0xce, 0xd9, 0xdb, 0xdd, 0xdf:
			h.n = uint64(binary.BigEndian.Uint32(p))
		case 0xcf:
			h.n = binary.BigEndian.Uint64(p)
			if h.n <= math.MaxInt64 {
				h.kind = kInt
			}
		case 0xd0:
			h.n = uint64(int64(int8(p[0])))
		case 0xd1:
			h.n = uint64(int64(int16(binary.BigEndian.Uint16(p))))
		case 0xd2:
			h.n = uint64(int64(int32(binary.BigEndian.Uint32(p))))
		case 0xd3:
			h.n = binary.BigEndian.Uint64(p)
		}
	}
	// Every element takes at least one byte, every map pair two.
	avail := uint64(len(b) - i)
	switch h.kind {
	case kStr, kBin, kArray:
		if h.n > avail {
			return header{}, i, fmt.Errorf("%w: length %d at offset %d, %d bytes left", ErrTruncated, h.n, i, avail)
		}
	case kMap:
		if h.n > avail/2 {
			return header{}, i, fmt.Errorf("%w: %d pairs at offset %d, %d bytes left", ErrTruncated, h.n, i, avail)
		}
	}
	return h, i, nil
}

// fixedSize returns the payload size and kind of the type bytes 0xc0-0xdf,
// or -1 for those js-binarypack leaves unassigned.
func fixedSize(t byte) (int, kind) {
	switch t {
	case 0xc0:
		return 0, kNil
	case 0xc1:
		return 0, kUndefined
	case 0xc2, 0xc3:
		return 0, kBool
	case 0xca:
		return 4, kFloat
	case 0xcb:
		return 8, kFloat
	case 0xcc, 0xd0:
		return 1, kInt
	case 0xcd, 0xd1:
		return 2, kInt
	case 0xce, 0xd2:
		return 4, kInt
	case 0xcf:
		return 8, kUint
	case 0xd3:
		return 8, kInt
	case 0xd8:
		return 2, kStr
	case 0xd9:
		return 4, kStr
	case 0xda:
		return 2, kBin
	case 0xdb:
		return 4, kBin
	case 0xdc:
		return 2, kArray
	case 0xdd:
		return 4, kArray
	case 0xde:
		return 2, kMap
	case 0xdf:
		return 4, kMap
	}
	return -1, 0
}

// walk decodes the value at b[i:] and returns the offset after it. With
// build false it only validates, allocating nothing.
func walk(b []byte, i, depth int, build bool) (any, int, error) {
	h, i, err := readHeader(b, i)
	if err != nil {
		return nil, i, err
	}
	switch h.kind {
	case kStr:
		end := i + int(h.n)
		if !build {
			return nil, end, nil
		}
		return string(b[i:end]), end, nil
	case kBin:
		end := i + int(h.n)
		if !build {
			return nil, end, nil
		}
		return append(make([]byte, 0, h.n), b[i:end]...), end, nil
	case kArray:
		if depth >= maxDepth {
			return nil, i, fmt.Errorf("%w at offset %d", ErrTooDeep, i)
		}
		var arr []any
		if build {
			arr = make([]any, h.n)
		}
		for k := range int(h.n) {
			var v any
			if v, i, err = walk(b, i, depth+1, build); err != nil {
				return nil, i, err
			}
			if build {
				arr[k] = v
			}
		}
		if !build {
			return nil, i, nil
		}
		return arr, i, nil
	case kMap:
		if depth >= maxDepth {
			return nil, i, fmt.Errorf("%w at offset %d", ErrTooDeep, i)
		}
		var m map[string]any
		if build {
			m = make(map[string]any, h.n)
		}
		for range int(h.n) {
			var key []byte
			if key, i, err = readKey(b, i); err != nil {
				return nil, i, err
			}
			var v any
			if v, i, err = walk(b, i, depth+1, build); err != nil {
				return nil, i, err
			}
			if build {
				m[string(key)] = v
			}
		}
		if !build {
			return nil, i, nil
		}
		return m, i, nil
	}
	if !build {
		return nil, i, nil
	}
	return scalar(h), i, nil
}

// readKey reads a map key, which must be a string; key aliases b.
func readKey(b []byte, i int) (key []byte, next int, err error) {
	h, j, err := readHeader(b, i)
	if err != nil {
		return nil, j, err
	}
	if h.kind != kStr {
		return nil, i, fmt.Errorf("%w at offset %d", ErrMapKey, i)
	}
	return b[j : j+int(h.n)], j + int(h.n), nil
}

func scalar(h header) any {
	switch h.kind {
	case kUndefined:
		return Undefined{}
	case kBool:
		return h.n == 1
	case kInt:
		return int64(h.n)
	case kUint:
		return h.n
	case kFloat:
		return math.Float64frombits(h.n)
	}
	return nil
}
