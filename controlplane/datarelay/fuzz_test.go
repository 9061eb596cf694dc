package datarelay

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/gw-project/gw/controlplane/binarypack"
)

// FuzzRoundTrip: every datagram survives a trip between two gw peers in
// every serialization (json: every valid UTF-8 one), and what goes out on a
// json connection is always a JSON text.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "x", `"q"`, `{"a":1}`, "null", "\xff", "[1,", " 1 ", "\\u0000", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		for _, ser := range allSerializations {
			var ch binarypack.Chunker
			enc, dec := NewEncoder(ser, &ch), NewDecoder(ser)
			msgs := enc.Encode(d)
			if ser == JSON && (len(msgs) != 1 || !json.Valid(msgs[0])) {
				t.Fatalf("json: %q sent as %q", d, msgs)
			}
			if ser == JSON && !utf8.Valid(d) {
				continue
			}
			var got []byte
			for _, m := range msgs {
				out, closeReq, err := dec.Decode(bytes.Clone(m), false)
				if err != nil || closeReq {
					t.Fatalf("%v: %q: %v %v", ser, d, err, closeReq)
				}
				if out != nil {
					got = out
				}
			}
			if !bytes.Equal(got, d) {
				t.Fatalf("%v: %q came back as %q", ser, d, got)
			}
		}
	})
}

// FuzzDecode: arbitrary messages never panic, and a JSON string's decoding
// agrees with encoding/json's.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud800"`, `"\u00e9\n"`, `{"__peerData":{"type":"close"}}`, "\x81\xba__peerData\x81\xb4type\xb5close", "\xa3abc", "\xc1"} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, msg []byte, isString bool) {
		for _, ser := range allSerializations {
			NewDecoder(ser).Decode(bytes.Clone(msg), isString)
		}
		got, ok := appendJSONStringValue(nil, msg)
		var want string
		err := json.Unmarshal(msg, &want)
		if ok != (err == nil) {
			// encoding/json accepts invalid UTF-8 inside strings, as we do;
			// any other disagreement is a bug.
			t.Fatalf("%q: ours ok=%v, encoding/json %v", msg, ok, err)
		}
		if ok && utf8.Valid(msg) && string(got) != want {
			t.Fatalf("%q: ours %q, encoding/json %q", msg, got, want)
		}
	})
}
