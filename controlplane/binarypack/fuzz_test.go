package binarypack

import (
	"bytes"
	"testing"
)

func FuzzUnpack(f *testing.F) {
	for _, v := range boundaryValues() {
		if b, _ := Pack(v); len(b) <= 1024 {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "c1", "c4", "d7", "0102", "9201", "81 01 c3", "db ffffffff", "df ffffffff 0000",
		"ca 7fc00000", "ca 00000001", "cb 7ff8000000000001", "cb 8000000000000000",
		"cf 8000000000000000", "d3 8000000000000000", "82 b161 01 b161 02",
		"84 ba5f5f7065657244617461 01 b16e 00 b464617461 a3010203 b5746f74616c 02",
	} {
		f.Add(mustHex(f, s))
	}
	f.Add(CloseMessage())
	f.Add(nested(maxDepth + 1))

	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unpack(data)
		if b, ok := UnpackBinary(data); ok {
			if err != nil || !equal(v, b) {
				t.Fatalf("UnpackBinary = %x but Unpack = %v, %v", b, v, err)
			}
		}
		if err != nil {
			return
		}
		// What unpacks repacks, and unpacks the same (floats that are
		// integers come back as integers, as in JavaScript).
		packed, err := Pack(v)
		if err != nil {
			t.Fatalf("Pack(Unpack(%x)): %v", data, err)
		}
		v2, err := Unpack(packed)
		if err != nil {
			t.Fatalf("Unpack(Pack(Unpack(%x))) = %v (%x)", data, err, packed)
		}
		if !equal(v2, normalize(v)) {
			t.Fatalf("round trip of %x: %#v became %#v", data, v, v2)
		}
		if again, _ := Pack(v2); !bytes.Equal(again, packed) {
			t.Fatalf("repacking is not stable: %x then %x", packed, again)
		}
	})
}

// FuzzReassembler feeds a Reassembler messages cut from the input (each
// prefixed by its length byte) and checks its bounds.
func FuzzReassembler(f *testing.F) {
	seed := func(msgs ...[]byte) []byte {
		var b []byte
		for _, m := range msgs {
			b = append(append(b, byte(len(m))), m...)
		}
		return b
	}
	f.Add(seed(chunkMsg(f, 1, 0, 2, []byte("ab")), chunkMsg(f, 1, 1, 2, []byte("cd"))))
	f.Add(seed(chunkMsg(f, 1, 1, 3, []byte("ab")), chunkMsg(f, 2, 0, 2, []byte("xy")), chunkMsg(f, 1, 0, 3, []byte("z"))))
	f.Add(seed(chunkMsg(f, 5, 0, 1000, []byte("ab")), CloseMessage(), []byte{0xa1, 1}))
	f.Add(seed(chunkMsg(f, -1, 0, 1, []byte{}), chunkMsg(f, 1, 0, 2, "s")))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := Reassembler{MaxBytes: 4096, MaxPending: 3}
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			msg := data[1 : 1+n]
			data = data[1+n:]
			packed, closeReq, err := r.Add(msg)
			if closeReq && (packed != nil || err != nil) {
				t.Fatalf("close with %x, %v", packed, err)
			}
			if pending, held := r.Pending(); pending > 3 || held > 4096 || held < 0 {
				t.Fatalf("Pending = %d, %d over the limits", pending, held)
			}
			sum := 0
			for _, p := range r.pending {
				sum += p.cost()
			}
			if sum != r.held || len(r.order) != len(r.pending) {
				t.Fatalf("bookkeeping: held %d, costs %d, %d ids in order, %d pending", r.held, sum, len(r.order), len(r.pending))
			}
		}
	})
}
