package binarypack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalize returns what Unpack(Pack(v)) yields: JavaScript numbers, so
// every integer and integral float becomes int64 (uint64 above MaxInt64).
func normalize(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint:
		return normalize(uint64(v))
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
		return v
	case float32:
		return normalize(float64(v))
	case float64:
		if v == math.Trunc(v) {
			if v >= -(1<<63) && v < 1<<63 {
				return int64(v)
			}
			if v >= 1<<63 && v < 1<<64 {
				return uint64(v)
			}
		}
		return v
	case []byte:
		if v == nil {
			return []byte{}
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

// equal compares unpacked values exactly, types included; NaN equals NaN.
func equal(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && (math.Float64bits(a) == math.Float64bits(b) || a != a && b != b)
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestPackKnownBytes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "c0"},
		{Undefined{}, "c1"},
		{false, "c2"},
		{true, "c3"},
		{0, "00"},
		{127, "7f"},
		{-1, "ff"},
		{-32, "e0"},
		{128, "cc80"},
		{255, "ccff"},
		{-33, "d0df"},
		{-128, "d080"},
		{256, "cd0100"},
		{65535, "cdffff"},
		{-129, "d1ff7f"},
		{-32768, "d18000"},
		{65536, "ce00010000"},
		{uint32(math.MaxUint32), "ceffffffff"},
		{-32769, "d2ffff7fff"},
		{int32(math.MinInt32), "d280000000"},
		{int64(1) << 32, "d30000000100000000"},
		{int64(math.MinInt32) - 1, "d3ffffffff7fffffff"},
		{int64(math.MaxInt64), "d37fffffffffffffff"},
		{int64(math.MinInt64), "d38000000000000000"},
		{uint64(1) << 63, "cf8000000000000000"},
		{uint64(math.MaxUint64), "cfffffffffffffffff"},
		{uint8(200), "ccc8"},
		{int8(-100), "d09c"},
		{3.0, "03"},
		{math.Copysign(0, -1), "00"},
		{-40000.0, "d2ffff63c0"},
		{float64(1 << 63), "cf8000000000000000"},
		{1.5, "cb3ff8000000000000"},
		{float32(1.5), "cb3ff8000000000000"},
		{-0.1, "cbbfb999999999999a"},
		{1e19, "cf8ac7230489e80000"},
		{1e20, "cb4415af1d78b58c40"},
		{1e300, "cb7e37e43c8800759c"},
		{math.Inf(1), "cb7ff0000000000000"},
		{"", "b0"},
		{"abc", "b3616263"},
		{"é", "b2c3a9"},
		{[]byte{}, "a0"},
		{[]byte{1, 2}, "a20102"},
		{[]any{}, "90"},
		{[]any{1, "a", nil}, "9301b161c0"},
		{map[string]any{}, "80"},
		{map[string]any{"b": 1, "a": 2, "10": 3, "2": 4}, "84 b132 04 b23130 03 b161 02 b162 01"},
	} {
		got, err := Pack(tc.v)
		if err != nil {
			t.Errorf("Pack(%#v): %v", tc.v, err)
			continue
		}
		if want := mustHex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("Pack(%#v) = %x, want %x", tc.v, got, want)
		}
	}
}

// boundaryValues covers every encoding and each side of every boundary.
func boundaryValues() []any {
	var vs []any
	for _, n := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		1 << 53, math.MaxInt64, -1, -32, -33, -128, -129, -32768, -32769,
		math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		vs = append(vs, n, n+1, n-1) // wraps at the int64 ends, which is fine
	}
	vs = append(vs, uint64(math.MaxInt64)+1, uint64(math.MaxUint64), uint(7), uint8(255), uint16(65535), uint32(1<<31),
		int8(-128), int16(-32768), int32(math.MaxInt32), 7)
	vs = append(vs, 0.5, -0.5, 0.1, 1.0/3, math.Pi, -math.E, 1e-300, 1e300, math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, 2.2250738585072014e-308, math.Inf(1), math.Inf(-1), math.NaN(),
		float64(1<<63), -float64(1<<63), float64(1<<64), 1e20, -1e20, float32(0.1), float32(3),
		math.Copysign(0, -1), 4503599627370495.5)
	vs = append(vs, nil, Undefined{}, true, false)
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000} {
		vs = append(vs, strings.Repeat("x", n), bytes.Repeat([]byte{0xab}, n))
		arr := make([]any, n)
		for i := range arr {
			arr[i] = i % 3
		}
		vs = append(vs, arr)
	}
	vs = append(vs, strings.Repeat("é", 8), "日本語", "\U0001F600", "a\x00b")
	for _, n := range []int{0, 1, 15, 16, 65535, 65536} {
		m := make(map[string]any, n)
		for i := range n {
			m["k"+strconv.Itoa(i)] = i
		}
		vs = append(vs, m)
	}
	vs = append(vs, []byte(nil), []any{[]any{[]any{}}, map[string]any{"x": []any{1.5, "y", []byte("z")}}},
		map[string]any{"": nil, "0": Undefined{}, "4294967294": 1, "4294967295": 2, "01": 3, "-1": 4})
	return vs
}

func TestRoundTrip(t *testing.T) {
	for _, v := range boundaryValues() {
		b, err := Pack(v)
		if err != nil {
			t.Fatalf("Pack(%.40v): %v", v, err)
		}
		got, err := Unpack(b)
		if err != nil {
			t.Fatalf("Unpack(Pack(%.40v)) = %v (%.40x)", v, err, b)
		}
		if want := normalize(v); !equal(got, want) {
			t.Errorf("Unpack(Pack(%.40v)) = %.40v (%T), want %.40v (%T)", v, got, got, want, want)
		}
		b2, err := AppendPack([]byte("prefix"), v)
		if err != nil || string(b2[:6]) != "prefix" || !bytes.Equal(b2[6:], b) {
			t.Errorf("AppendPack(%.40v) = %.40x, %v", v, b2, err)
		}
	}
}

func TestLengthHeaders(t *testing.T) {
	for _, tc := range []struct {
		n                            int
		str, bin, arr, mapHeaderWant string
	}{
		{15, "bf", "af", "9f", "8f"},
		{16, "d80010", "da0010", "dc0010", "de0010"},
		{255, "d800ff", "da00ff", "dc00ff", "de00ff"},
		{256, "d80100", "da0100", "dc0100", "de0100"},
		{65535, "d8ffff", "daffff", "dcffff", "deffff"},
		{65536, "d900010000", "db00010000", "dd00010000", "df00010000"},
	} {
		m := make(map[string]any, tc.n)
		for i := range tc.n {
			m[strconv.Itoa(i)] = nil
		}
		for _, c := range []struct {
			v    any
			want string
		}{
			{strings.Repeat("s", tc.n), tc.str},
			{bytes.Repeat([]byte{1}, tc.n), tc.bin},
			{make([]any, tc.n), tc.arr},
			{m, tc.mapHeaderWant},
		} {
			b, err := Pack(c.v)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, c.want); !bytes.HasPrefix(b, want) {
				t.Errorf("n=%d %T: header %x, want %x", tc.n, c.v, b[:len(want)], want)
			}
		}
	}
}

func TestKeyOrder(t *testing.T) {
	m := map[string]any{"b": 0, "a": 0, "10": 0, "9": 0, "4294967294": 0, "4294967295": 0, "01": 0, "": 0, "-1": 0, "1.5": 0}
	got := jsKeyOrder(m)
	want := []string{"9", "10", "4294967294", "", "-1", "01", "1.5", "4294967295", "a", "b"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("jsKeyOrder = %q, want %q", got, want)
	}
}

func TestPackErrors(t *testing.T) {
	cyc := []any{nil}
	cyc[0] = cyc
	for _, tc := range []struct {
		v    any
		want error
	}{
		{struct{}{}, ErrUnsupportedType},
		{[]string{"a"}, ErrUnsupportedType},
		{map[string]any{"x": []any{complex(1, 2)}}, ErrUnsupportedType},
		{cyc, ErrTooDeep},
	} {
		dst := []byte("keep")
		out, err := AppendPack(dst, tc.v)
		if !errors.Is(err, tc.want) {
			t.Errorf("Pack(%T) err = %v, want %v", tc.v, err, tc.want)
		}
		if string(out) != "keep" {
			t.Errorf("AppendPack on error returned %q", out)
		}
	}
}

func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), 0x01)
}

func TestUnpackErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"cd01", ErrTruncated},
		{"cb000000", ErrTruncated},
		{"b3 6162", ErrTruncated},
		{"a3 0102", ErrTruncated},
		{"92 01", ErrTruncated},
		{"82 b161 01", ErrTruncated},
		{"d9 ffffffff 61", ErrTruncated},
		{"db ffffffff", ErrTruncated},
		{"dd ffffffff 00000000", ErrTruncated},
		{"df ffffffff 0000000000000000", ErrTruncated},
		{"de 0003 b16101 b16202", ErrTruncated},
		{"0102", ErrTrailingBytes},
		{"c0c0", ErrTrailingBytes},
		{"c4", ErrReservedType},
		{"c5 0000", ErrReservedType},
		{"c9", ErrReservedType},
		{"d4 00 00", ErrReservedType},
		{"d7", ErrReservedType},
		{"91 c6", ErrReservedType},
		{"81 01 c3", ErrMapKey},
		{"81 a1 61 c3", ErrMapKey},
		{"81 c0 c3", ErrMapKey},
	} {
		v, err := Unpack(mustHex(t, tc.in))
		if !errors.Is(err, tc.want) {
			t.Errorf("Unpack(%s) = %v, %v; want error %v", tc.in, v, err, tc.want)
		}
	}
	if _, err := Unpack(nested(maxDepth)); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
	if _, err := Unpack(nested(maxDepth + 1)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("depth %d: %v, want ErrTooDeep", maxDepth+1, err)
	}
}

// Every proper prefix of a valid encoding is rejected.
func TestUnpackTruncations(t *testing.T) {
	for _, v := range boundaryValues() {
		b, _ := Pack(v)
		if len(b) > 300 {
			continue
		}
		for i := range len(b) {
			if _, err := Unpack(b[:i]); err == nil {
				t.Fatalf("Unpack(%x) accepted a prefix of %x", b[:i], b)
			}
		}
	}
}

// Length prefixes larger than the input must not allocate what they claim.
func TestUnpackHugeLengthsDoNotAllocate(t *testing.T) {
	for _, in := range []string{"db ffffffff 00", "d9 ffffffff 00", "dd ffffffff 00", "df ffffffff 0000", "dc ffff 00", "9f 00"} {
		b := mustHex(t, in)
		if _, err := Unpack(b); !errors.Is(err, ErrTruncated) {
			t.Errorf("Unpack(%s) = %v, want ErrTruncated", in, err)
		}
		if n := bytesAllocated(func() { _, _ = Unpack(b) }); n > 1024 {
			t.Errorf("Unpack(%s) allocated %d bytes", in, n)
		}
	}
}

// bytesAllocated returns the average heap bytes one call of fn allocates.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 10
}

func TestUnpackTypes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"05", int64(5)},
		{"e0", int64(-32)},
		{"cc ff", int64(255)},
		{"cd ffff", int64(65535)},
		{"ce ffffffff", int64(math.MaxUint32)},
		{"cf 7fffffffffffffff", int64(math.MaxInt64)},
		{"cf ffffffffffffffff", uint64(math.MaxUint64)},
		{"d0 80", int64(-128)},
		{"d1 8000", int64(-32768)},
		{"d2 80000000", int64(math.MinInt32)},
		{"d3 8000000000000000", int64(math.MinInt64)},
		{"ca 3fc00000", 1.5},
		{"ca 00000000", 0.0},
		{"cb 0000000000000000", 0.0},
		{"c1", Undefined{}},
		{"a0", []byte{}},
		{"da 0000", []byte{}},
		{"d8 0002 6869", "hi"},
		{"82 b161 01 b161 02", map[string]any{"a": int64(2)}}, // last wins, as in JS
		{"b2 ff fe", "\xff\xfe"},                              // strings are kept as bytes
	} {
		got, err := Unpack(mustHex(t, tc.in))
		if err != nil || !equal(got, tc.want) {
			t.Errorf("Unpack(%s) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

func TestUnpackDoesNotAlias(t *testing.T) {
	in := mustHex(t, "92 a3010203 b3616263")
	v, err := Unpack(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	if !equal(v, []any{[]byte{1, 2, 3}, "abc"}) {
		t.Errorf("result changed with its input: %#v", v)
	}
}

func TestUnpackBinary(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 65535, 65536} {
		payload := bytes.Repeat([]byte{7}, n)
		msg, err := AppendBinary(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		b, ok := UnpackBinary(msg)
		if !ok || !bytes.Equal(b, payload) {
			t.Errorf("UnpackBinary(len %d) = %d bytes, %v", n, len(b), ok)
		}
		if ok && n > 0 && &b[0] != &msg[len(msg)-n] {
			t.Errorf("UnpackBinary copied")
		}
		if _, ok := UnpackBinary(append(msg, 0)); ok {
			t.Errorf("UnpackBinary accepted a trailing byte")
		}
		if _, ok := UnpackBinary(msg[:len(msg)-1]); ok && n > 0 {
			t.Errorf("UnpackBinary accepted a truncated value")
		}
	}
	for _, in := range []string{"", "c0", "b161", "91a0", "da00", "db000000", "db0000000201"} {
		if _, ok := UnpackBinary(mustHex(t, in)); ok {
			t.Errorf("UnpackBinary(%s) ok", in)
		}
	}
}

func TestHotPathAllocs(t *testing.T) {
	datagram := bytes.Repeat([]byte{0x42}, 1200)
	buf := make([]byte, 0, 2048)
	var msgs [][]byte
	var ch Chunker
	var r Reassembler
	packed, _ := AppendBinary(nil, datagram)
	for name, fn := range map[string]func(){
		"AppendBinary": func() { buf, _ = AppendBinary(buf[:0], datagram) },
		"AppendPack":   func() { buf, _ = AppendPack(buf[:0], datagram) },
		"UnpackBinary": func() { _, _ = UnpackBinary(packed) },
		"AppendSplit":  func() { msgs = ch.AppendSplit(msgs[:0], packed) },
		"Reassembler":  func() { _, _, _ = r.Add(packed) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func BenchmarkAppendBinary(b *testing.B) {
	datagram := bytes.Repeat([]byte{0x42}, 1200)
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(datagram)))
	for b.Loop() {
		buf, _ = AppendBinary(buf[:0], datagram)
	}
}

func BenchmarkUnpackMap(b *testing.B) {
	msg, _ := Pack(map[string]any{"type": "chat", "text": "hello there", "n": 42, "tags": []any{"a", "b"}})
	for b.Loop() {
		_, _ = Unpack(msg)
	}
}
