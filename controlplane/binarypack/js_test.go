package binarypack

// Checks against the JavaScript implementation: peerjs-js-binarypack and
// the PeerJS client's BinaryPack data connection, run under node by
// testdata/jsbp.cjs.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// desc is a value as testdata/jsbp.cjs exchanges it.
type desc = map[string]any

type jsResult struct {
	Hex        string    `json:"hex"`
	V          desc      `json:"v"`
	Msgs       []string  `json:"msgs"`
	Events     []jsEvent `json:"events"`
	Err        string    `json:"err"`
	ChunkedMTU int       `json:"chunkedMTU"`
}

type jsEvent struct {
	Data  desc   `json:"data"`
	Close bool   `json:"close"`
	Err   string `json:"err"`
}

// runJS runs ops through the JavaScript oracle.
func runJS(t *testing.T, ops []desc) []jsResult {
	t.Helper()
	modules, err := filepath.Abs(filepath.Join("..", "..", "testdata", "npm", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"peerjs-js-binarypack", "peerjs"} {
		if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s: run make deps", pkg, modules)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): run make deps", err)
	}
	in, err := json.Marshal(desc{"ops": ops})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "jsbp.cjs"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.Bytes())
	}
	var res struct{ Results []jsResult }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output: %v", err)
	}
	if len(res.Results) != len(ops) {
		t.Fatalf("node returned %d results for %d ops", len(res.Results), len(ops))
	}
	return res.Results
}

func numDesc(f float64) desc {
	return desc{"t": "num", "bits": fmt.Sprintf("%016x", math.Float64bits(f))}
}

// asNumber converts any Go number to the JavaScript number it stands for.
func asNumber(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// toDesc describes a Go value for JavaScript; map pairs go in the order
// Pack writes them.
func toDesc(v any) desc {
	switch v := v.(type) {
	case nil:
		return desc{"t": "null"}
	case Undefined:
		return desc{"t": "undef"}
	case bool:
		return desc{"t": "bool", "v": v}
	case string:
		return desc{"t": "str", "v": v}
	case []byte:
		return desc{"t": "bin", "hex": hex.EncodeToString(v)}
	case []any:
		arr := make([]any, len(v))
		for i, e := range v {
			arr[i] = toDesc(e)
		}
		return desc{"t": "arr", "v": arr}
	case map[string]any:
		pairs := make([]any, 0, len(v))
		for _, k := range jsKeyOrder(v) {
			pairs = append(pairs, []any{k, toDesc(v[k])})
		}
		return desc{"t": "map", "v": pairs}
	}
	if f, ok := asNumber(v); ok {
		return numDesc(f)
	}
	panic(fmt.Sprintf("toDesc(%T)", v))
}

// fromDesc turns a JavaScript value back into Go, numbers as float64.
func fromDesc(t testing.TB, d any) any {
	t.Helper()
	m, ok := d.(map[string]any)
	if !ok {
		t.Fatalf("bad desc %v", d)
	}
	switch m["t"] {
	case "null":
		return nil
	case "undef":
		return Undefined{}
	case "bool", "str":
		return m["v"]
	case "num":
		b, _ := hex.DecodeString(m["bits"].(string))
		var bits uint64
		for _, c := range b {
			bits = bits<<8 | uint64(c)
		}
		return math.Float64frombits(bits)
	case "bin":
		b, _ := hex.DecodeString(m["hex"].(string))
		return b
	case "arr":
		var arr []any
		for _, e := range m["v"].([]any) {
			arr = append(arr, fromDesc(t, e))
		}
		if arr == nil {
			arr = []any{}
		}
		return arr
	case "map":
		out := map[string]any{}
		for _, p := range m["v"].([]any) {
			pair := p.([]any)
			out[pair[0].(string)] = fromDesc(t, pair[1])
		}
		return out
	}
	t.Fatalf("bad desc %v", d)
	return nil
}

// sameJS compares values as JavaScript sees them: all numbers as float64,
// NaN equal to NaN.
func sameJS(a, b any) bool {
	if fa, ok := asNumber(a); ok {
		fb, ok := asNumber(b)
		return ok && (fa == fb || fa != fa && fb != fb)
	}
	switch a := a.(type) {
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJS(a[i], b[i]) {
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
			if w, ok := b[k]; !ok || !sameJS(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}

// jsView returns v as JavaScript's unpacker reads Pack(v). It reads 64-bit
// integers by summing their bytes in float64 and, for int64, subtracting
// 2^64 from values at or above 2^63: rounding makes every negative integer
// below -2^31 arrive as a multiple of 2048 (JS packs those as int64 too, so
// they do not survive a JS-to-JS trip either).
func jsView(t testing.TB, v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsView(t, e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsView(t, e)
		}
		return out
	}
	f, ok := asNumber(v)
	if !ok {
		return v
	}
	b := packed(t, v)
	if b[0] != 0xcf && b[0] != 0xd3 {
		return f
	}
	u := 0.0
	for _, c := range b[1:9] {
		u = u*256 + float64(c)
	}
	if b[0] == 0xd3 && u >= 1<<63 {
		u -= 1 << 64
	}
	return u
}

// jsValues are values the JavaScript packer handles correctly, so Pack must
// produce exactly its bytes.
func jsValues() []any {
	vs := []any{nil, true, false, "", "a", "é", "日本語", "\U0001F600 emoji", strings.Repeat("é", 7) + "a", strings.Repeat("é", 8),
		strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 255), strings.Repeat("x", 256),
		strings.Repeat("é", 32767) + "a", strings.Repeat("é", 32768), "nul\x00byte"}
	for _, n := range []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt32, math.MaxInt32 + 1, 1 << 40, 1<<53 - 1} {
		vs = append(vs, n, -n, n+1, -n-1, n-1, -n+1)
	}
	// Beyond 2^53 only doubles can travel to JavaScript.
	for _, n := range []int64{1 << 53, 1 << 60, 1<<63 - 1024} {
		vs = append(vs, n, -n)
	}
	vs = append(vs, int64(math.MinInt64), uint64(1<<63)+4096, uint64(math.MaxUint64)-2047, 1e19, float32(0.5),
		0.5, -0.5, 0.1, -0.1, 1.0/3, math.Pi, -math.E, 1e-7, 123456.789, -1e-300, 2.5e-308, 1234567890123.25, -0.75)
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		f := (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(39)-20)) // |f| < 2^63
		vs = append(vs, f)
	}
	for _, n := range []int{0, 1, 15, 16, 255, 256, 65535, 65536, 70000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31 + 7)
		}
		vs = append(vs, b)
	}
	// The JS packer recurses per element and overflows node's stack near
	// 10000 elements, so arrays and objects stay smaller here.
	for _, n := range []int{0, 1, 15, 16, 255, 256, 4000} {
		arr := make([]any, n)
		obj := make(map[string]any, n)
		for i := range n {
			arr[i] = []any{i, "s", nil}[i%3]
			obj[fmt.Sprintf("key%d", i)] = i
		}
		vs = append(vs, arr, obj)
	}
	vs = append(vs,
		map[string]any{"b": 1, "a": 2, "10": 3, "9": 4, "01": 5, "4294967294": 6, "4294967295": 7, "": 8, "-0": 9},
		map[string]any{"nested": []any{map[string]any{"x": []byte{1, 2}, "y": []any{}}, 1.5, "z"}, "empty": map[string]any{}},
		[]any{[]any{[]any{[]any{"deep"}}}},
	)
	return vs
}

func TestJSPackerBytes(t *testing.T) {
	vs := jsValues()
	ops := make([]desc, len(vs))
	for i, v := range vs {
		ops[i] = desc{"op": "pack", "v": toDesc(v)}
	}
	for i, r := range runJS(t, ops) {
		if r.Err != "" {
			t.Errorf("JS pack(%.60v): %s", vs[i], r.Err)
			continue
		}
		got, err := Pack(vs[i])
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != r.Hex {
			t.Errorf("Pack(%.60v) = %.80x\n                JS packs %.80s", vs[i], got, r.Hex)
		}
		// And Unpack reads what JS wrote.
		jsBytes, _ := hex.DecodeString(r.Hex)
		v, err := Unpack(jsBytes)
		if err != nil || !sameJS(v, vs[i]) {
			t.Errorf("Unpack(JS pack(%.60v)) = %.60v, %v", vs[i], v, err)
		}
	}
}

// goValues are what gw may pack, including what JavaScript cannot pack.
func goValues() []any {
	vs := jsValues()
	vs = append(vs, Undefined{}, []any{Undefined{}, nil}, map[string]any{"u": Undefined{}},
		math.Inf(1), math.Inf(-1), 1e20, -1e300, math.MaxFloat64, 4503599627370494.5, float64(1<<63), uint64(1<<63), uint64(math.MaxUint64),
		math.Ldexp(1, -59), math.Ldexp(1, -1022), math.Nextafter(2, 0)/4)
	for _, n := range []int{65536} { // 32-bit counts, which JS can unpack but not pack
		arr := make([]any, n)
		obj := make(map[string]any, n)
		for i := range n {
			arr[i] = i
			obj[fmt.Sprint(i)] = "v"
		}
		vs = append(vs, arr, obj)
	}
	return vs
}

func TestJSUnpacksGoBytes(t *testing.T) {
	vs := goValues()
	var ops []desc
	packed := make([][]byte, len(vs))
	for i, v := range vs {
		b, err := Pack(v)
		if err != nil {
			t.Fatal(err)
		}
		packed[i] = b
		ops = append(ops, desc{"op": "unpack", "hex": hex.EncodeToString(b)})
		ops = append(ops, desc{"op": "pack", "v": toDesc(v)})
	}
	res := runJS(t, ops)
	var repackOps []desc
	var repackIdx []int
	for i, v := range vs {
		u, p := res[2*i], res[2*i+1]
		if u.Err != "" {
			t.Errorf("JS unpack(Pack(%.60v)): %s", v, u.Err)
			continue
		}
		got := fromDesc(t, u.V)
		if !sameJS(got, jsView(t, v)) {
			t.Errorf("JS unpack(Pack(%.60v)) = %.60v", v, got)
		}
		// Where JS packs the value alike and reads it back exactly, its
		// repacking of what it unpacked is a fixed point: same bytes, same
		// key order.
		if p.Err == "" && p.Hex == hex.EncodeToString(packed[i]) && sameJS(got, v) {
			repackOps = append(repackOps, desc{"op": "pack", "v": u.V})
			repackIdx = append(repackIdx, i)
		}
	}
	if len(repackOps) < len(vs)*3/4 {
		t.Fatalf("only %d of %d values to repack", len(repackOps), len(vs))
	}
	for j, r := range runJS(t, repackOps) {
		if i := repackIdx[j]; r.Hex != hex.EncodeToString(packed[i]) {
			t.Errorf("JS pack(unpack(Pack(%.60v))) = %.80s, want %.80x", vs[i], r.Hex, packed[i])
		}
	}
}

// TestJSDifferences pins down where the JavaScript implementation differs
// from this package, so that a change in peerjs-js-binarypack shows up.
func TestJSDifferences(t *testing.T) {
	type diff struct {
		v      desc   // packed by JS
		jsHex  string // JS output ("" with jsErr)
		jsErr  string
		goV    any // the same value packed by Go
		goHex  string
		reason string
	}
	diffs := []diff{
		{v: desc{"t": "undef"}, jsHex: "c0", goV: Undefined{}, goHex: "c1", reason: "JS packs undefined as null"},
		{v: numDesc(math.NaN()), jsHex: "cb0000000000000000", goV: math.NaN(), goHex: "cb7ff8000000000001", reason: "JS writes NaN as 0 bits"},
		{v: numDesc(math.Inf(1)), jsErr: "Invalid integer", goV: math.Inf(1), goHex: "cb7ff0000000000000", reason: "JS cannot pack Infinity"},
		{v: numDesc(1e20), jsErr: "Invalid integer", goV: 1e20, goHex: "cb4415af1d78b58c40", reason: "JS cannot pack integral numbers >= 2^64"},
		{v: numDesc(1 << 63), jsHex: "d38000000000000000", goV: uint64(1 << 63), goHex: "cf8000000000000000", reason: "JS packs 2^63 as int64 -2^63"},
		{v: numDesc(1 << 64), jsHex: "cf0000000000000000", goV: float64(1 << 64), goHex: "cb43f0000000000000", reason: "JS packs 2^64 as 0"},
		{v: numDesc(math.Ldexp(1, -59)), jsHex: "cb3c30000000000000", goV: math.Ldexp(1, -59), goHex: "cb3c40000000000000", reason: "JS's log2 exponent is off by one next to powers of two"},
		{v: numDesc(math.Nextafter(1, 0) / (1 << 52)), jsHex: "cb3cb00000ffffffff", goV: math.Nextafter(1, 0) / (1 << 52), goHex: "cb3cafffffffffffff", reason: "same, just below a power of two"},
		{v: numDesc(5e-324), jsHex: "cbfcd0000000000000", goV: 5e-324, goHex: "cb0000000000000001", reason: "JS cannot pack subnormals"},
		{v: numDesc(math.Copysign(0, -1)), jsHex: "00", goV: math.Copysign(0, -1), goHex: "00", reason: "-0 is integral: both write 0"},
		{v: desc{"t": "bin", "hex": "0100feff", "as": "Int16Array"}, jsHex: "a40100feff", goV: []byte{1, 0, 0xfe, 0xff}, goHex: "a40100feff", reason: "typed arrays pack their bytes"},
		{v: desc{"t": "bin", "hex": "010203", "as": "view"}, jsHex: "a3010203", goV: []byte{1, 2, 3}, goHex: "a3010203", reason: "a view packs only its window"},
		{v: desc{"t": "bin", "hex": "0102", "as": "Buffer"}, jsHex: "a20102", goV: []byte{1, 2}, goHex: "a20102", reason: "Node Buffers are Uint8Arrays"},
		{v: desc{"t": "bin", "hex": "0102", "as": "Blob"}, jsHex: "a20102", goV: []byte{1, 2}, goHex: "a20102", reason: "Blobs pack asynchronously, as binary"},
		{v: desc{"t": "bin", "hex": "0102", "as": "DataView"}, jsErr: "not yet supported", reason: "JS cannot pack a DataView"},
	}
	var ops []desc
	for _, d := range diffs {
		ops = append(ops, desc{"op": "pack", "v": d.v})
	}
	// Lenient JavaScript unpacking that Unpack rejects.
	lenient := []struct {
		hex   string
		js    any
		goErr error
	}{
		{"", 0.0, ErrTruncated},                 // a missing byte reads as 0
		{"9201", []any{1.0, 0.0}, ErrTruncated}, // likewise
		{"0102", 1.0, ErrTrailingBytes},
		{"c4", Undefined{}, ErrReservedType},
		{"d4", Undefined{}, ErrReservedType},
		{"81c0c3", map[string]any{"null": true}, ErrMapKey},  // keys become strings
		{"cb0000000000000000", 1.1125369292536007e-308, nil}, // JS reads 0.0 as 2^-1023; Go as 0
		{"cb0000000000000001", 1.1125369292536007e-308, nil}, // nor subnormals
		{"cb7ff8000000000001", math.Inf(1), nil},             // and NaN as Infinity
	}
	for _, l := range lenient {
		ops = append(ops, desc{"op": "unpack", "hex": l.hex})
	}
	// A Date packs as its toString(); this also checks the string path.
	ops = append(ops, desc{"op": "pack", "v": desc{"t": "date", "ms": 0}})
	res := runJS(t, ops)
	for i, d := range diffs {
		r := res[i]
		if d.jsErr != "" {
			if !strings.Contains(r.Err, d.jsErr) {
				t.Errorf("%s: JS gave %q %q, want error %q", d.reason, r.Hex, r.Err, d.jsErr)
			}
		} else if r.Hex != d.jsHex {
			t.Errorf("%s: JS packs %s, expected %s", d.reason, r.Hex, d.jsHex)
		}
		if d.goV == nil {
			continue
		}
		if got, err := Pack(d.goV); err != nil || hex.EncodeToString(got) != d.goHex {
			t.Errorf("%s: Pack = %x, %v; want %s", d.reason, got, err, d.goHex)
		}
	}
	for j, l := range lenient {
		r := res[len(diffs)+j]
		if got := fromDesc(t, r.V); r.Err != "" || !sameJS(got, l.js) && !equal(got, l.js) {
			t.Errorf("JS unpack(%s) = %v %s, expected %v", l.hex, got, r.Err, l.js)
		}
		b, _ := hex.DecodeString(l.hex)
		if _, err := Unpack(b); !errors.Is(err, l.goErr) {
			t.Errorf("Unpack(%s) = %v, want %v", l.hex, err, l.goErr)
		}
	}
	date := res[len(res)-1]
	b, _ := hex.DecodeString(date.Hex)
	if s, err := Unpack(b); err != nil || !strings.HasPrefix(fmt.Sprint(s), "Thu Jan 01 1970") {
		t.Errorf("Date packs as %q, %v", s, err)
	}
}

func bigBinary(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i ^ i>>8)
	}
	return b
}

// TestJSChunksToGo sends values through a real PeerJS BinaryPack
// connection and checks its data-channel messages byte for byte against a
// Chunker, then reassembles them.
func TestJSChunksToGo(t *testing.T) {
	vs := []any{
		bigBinary(ChunkMTU - 3), // packs to exactly ChunkMTU: sent whole
		bigBinary(ChunkMTU - 2), // one byte over: two chunks, the second of 1 byte
		"small",
		map[string]any{"name": "file.bin", "file": bigBinary(50000), "size": 50000},
		strings.Repeat("é", 40000),
		[]any{bigBinary(20000), bigBinary(20000)},
		bigBinary(5*ChunkMTU - 3), // exactly 5 chunks
		bigBinary(70000),          // 32-bit binary length
	}
	ops := []desc{{"op": "info"}}
	for _, v := range vs {
		ops = append(ops, desc{"op": "send", "conn": "js", "v": toDesc(v)})
	}
	// Blobs take PeerJS's asynchronous path; they share the counter.
	blob := bigBinary(40000)
	ops = append(ops, desc{"op": "send", "conn": "js", "v": desc{"t": "bin", "hex": hex.EncodeToString(blob), "as": "Blob"}})
	vs = append(vs, blob)
	ops = append(ops, desc{"op": "close", "conn": "js"})
	res := runJS(t, ops)
	if res[0].ChunkedMTU != ChunkMTU {
		t.Fatalf("PeerJS chunkedMTU = %d, ChunkMTU = %d", res[0].ChunkedMTU, ChunkMTU)
	}

	var ch Chunker
	var r Reassembler
	for i, v := range vs {
		got := res[1+i]
		if got.Err != "" {
			t.Fatalf("JS send: %s", got.Err)
		}
		want := ch.Split(packed(t, v))
		if len(got.Msgs) != len(want) {
			t.Fatalf("value %d: JS sent %d messages, Chunker %d", i, len(got.Msgs), len(want))
		}
		msgs := make([][]byte, len(got.Msgs))
		for j, h := range got.Msgs {
			msgs[j], _ = hex.DecodeString(h)
			if !bytes.Equal(msgs[j], want[j]) {
				t.Fatalf("value %d message %d: JS %.60x…, Chunker %.60x…", i, j, msgs[j], want[j])
			}
		}
		if i%2 == 1 {
			slicesReverse(msgs)
		}
		var whole []byte
		for j, m := range msgs {
			p, closeReq, err := r.Add(m)
			if err != nil || closeReq || (p != nil) != (j == len(msgs)-1) {
				t.Fatalf("value %d message %d: Add = %d bytes, %v, %v", i, j, len(p), closeReq, err)
			}
			whole = p
		}
		u, err := Unpack(whole)
		if err != nil || !sameJS(u, v) {
			t.Fatalf("value %d: reassembled %.60v, %v", i, u, err)
		}
	}
	closeMsgs := res[len(res)-1].Msgs
	if len(closeMsgs) != 1 || closeMsgs[0] != hex.EncodeToString(CloseMessage()) {
		t.Fatalf("JS close message %v, CloseMessage %x", closeMsgs, CloseMessage())
	}
	if _, closeReq, err := r.Add(CloseMessage()); !closeReq || err != nil {
		t.Fatalf("close not detected: %v", err)
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Fatalf("Pending = %d, %d", n, b)
	}
}

func slicesReverse(s [][]byte) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// TestGoChunksToJS delivers Chunker output to a real PeerJS BinaryPack
// connection, in order and reversed.
func TestGoChunksToJS(t *testing.T) {
	vs := []any{
		bigBinary(ChunkMTU - 2),
		map[string]any{"text": strings.Repeat("日本", 10000), "n": 1},
		int64(42),
		bigBinary(100000),
		bigBinary(3),
		[]any{"x", bigBinary(30000), map[string]any{"k": 1.5}},
	}
	var ch Chunker
	var msgs []string
	for i, v := range vs {
		split := ch.Split(packed(t, v))
		if i%2 == 1 {
			slicesReverse(split)
		}
		for _, m := range split {
			msgs = append(msgs, hex.EncodeToString(m))
		}
	}
	msgs = append(msgs, hex.EncodeToString(CloseMessage()))
	// PeerJS cannot receive a top-level null: it reads null.__peerData.
	nullMsg := hex.EncodeToString(packed(t, nil))
	res := runJS(t, []desc{
		{"op": "recv", "conn": "go", "msgs": msgs},
		{"op": "recv", "conn": "null", "msgs": []string{nullMsg}},
	})
	events := res[0].Events
	if len(events) != len(vs)+1 {
		t.Fatalf("JS emitted %d events, want %d: %.300v", len(events), len(vs)+1, events)
	}
	for i, v := range vs {
		if events[i].Err != "" || events[i].Data == nil {
			t.Fatalf("event %d: %+v", i, events[i])
		}
		if got := fromDesc(t, events[i].Data); !sameJS(got, v) {
			t.Errorf("event %d: JS received %.60v, want %.60v", i, got, v)
		}
	}
	if !events[len(vs)].Close {
		t.Errorf("CloseMessage did not close the JS connection: %+v", events[len(vs)])
	}
	if ev := res[1].Events; len(ev) != 1 || !strings.Contains(ev[0].Err, "null") {
		t.Errorf("top-level null: JS events %+v, expected a TypeError", ev)
	}
}
