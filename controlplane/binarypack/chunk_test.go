package binarypack

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func packed(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Pack(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binOfPacked returns a binary value that packs to exactly size bytes.
func binOfPacked(t testing.TB, size int) []byte {
	t.Helper()
	hdr := 3 // da + 16-bit length
	if size-3 > 0xffff {
		hdr = 5 // db + 32-bit length
	}
	payload := make([]byte, size-hdr)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	b := packed(t, payload)
	if len(b) != size {
		t.Fatalf("packed %d bytes, want %d", len(b), size)
	}
	return b
}

func TestChunkerSplit(t *testing.T) {
	var c Chunker
	whole := binOfPacked(t, ChunkMTU)
	if msgs := c.Split(whole); len(msgs) != 1 || &msgs[0][0] != &whole[0] {
		t.Fatalf("a %d-byte message was split or copied", ChunkMTU)
	}
	for i, size := range []int{ChunkMTU + 1, 2 * ChunkMTU, 2*ChunkMTU + 15, 5*ChunkMTU + 100} {
		p := binOfPacked(t, size)
		msgs := c.Split(p)
		total := (size + ChunkMTU - 1) / ChunkMTU
		if len(msgs) != total {
			t.Fatalf("size %d: %d chunks, want %d", size, len(msgs), total)
		}
		var joined []byte
		for n, m := range msgs {
			v, err := Unpack(m)
			if err != nil {
				t.Fatal(err)
			}
			data := p[n*ChunkMTU : min(size, (n+1)*ChunkMTU)]
			want := map[string]any{"__peerData": int64(i + 1), "n": int64(n), "data": data, "total": int64(total)}
			if !equal(v, want) {
				t.Fatalf("size %d chunk %d = %.80v", size, n, v)
			}
			// Key order as PeerJS writes it.
			wantPrefix := append([]byte("\x84\xba__peerData"), byte(i+1), 0xb1, 'n')
			if !bytes.HasPrefix(m, wantPrefix) {
				t.Fatalf("chunk starts %x", m[:16])
			}
			joined = append(joined, v.(map[string]any)["data"].([]byte)...)
		}
		if !bytes.Equal(joined, p) {
			t.Fatalf("size %d: chunks do not join to the message", size)
		}
	}
}

func TestChunkerIDsAcrossGoroutines(t *testing.T) {
	var c Chunker
	big := binOfPacked(t, ChunkMTU+1)
	ids := make(chan int64, 100)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 25 {
				v, _ := Unpack(c.Split(big)[0])
				ids <- v.(map[string]any)["__peerData"].(int64)
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if id < 1 || id > 100 || seen[id] {
			t.Fatalf("id %d repeated or out of range", id)
		}
		seen[id] = true
	}
}

func TestReassembleInAnyOrder(t *testing.T) {
	var c Chunker
	var r Reassembler
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{ChunkMTU + 1, 3 * ChunkMTU, 7*ChunkMTU + 5} {
		p := binOfPacked(t, size)
		msgs := c.Split(p)
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		for i, m := range msgs {
			got, closeReq, err := r.Add(m)
			if err != nil || closeReq {
				t.Fatalf("Add: %v %v", closeReq, err)
			}
			if last := i == len(msgs)-1; last != (got != nil) {
				t.Fatalf("chunk %d/%d: got %d bytes", i, len(msgs), len(got))
			}
			if got != nil && !bytes.Equal(got, p) {
				t.Fatalf("reassembled message differs")
			}
		}
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Fatalf("Pending = %d, %d after completion", n, b)
	}
}

func TestReassembleInterleaved(t *testing.T) {
	var c Chunker
	var r Reassembler
	a, b := binOfPacked(t, 2*ChunkMTU), binOfPacked(t, 3*ChunkMTU-1)
	ma, mb := c.Split(a), c.Split(b)
	order := [][]byte{mb[0], ma[0], mb[1], ma[1], mb[2]}
	var got [][]byte
	for _, m := range order {
		p, _, err := r.Add(m)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil {
			got = append(got, p)
		}
	}
	if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("interleaved reassembly failed: %d messages", len(got))
	}
}

func TestReassemblerPassesOrdinaryMessages(t *testing.T) {
	var r Reassembler
	for _, v := range []any{
		[]byte("datagram"), "text", int64(5), nil, []any{1},
		map[string]any{"type": "chat"},
		map[string]any{"__peerData": nil, "x": 1},
		map[string]any{"__peerData": 0},
		map[string]any{"__peerData": false},
		map[string]any{"__peerData": ""},
		map[string]any{"__peerData": Undefined{}},
		map[string]any{"__peerData": 0.0},
		map[string]any{"__peerData": []byte("x")[:0], "n": 0, "data": []byte{}, "total": 1}, // truthy, not an integer
	} {
		msg := packed(t, v)
		got, closeReq, err := r.Add(msg)
		wantErr := false
		if m, ok := v.(map[string]any); ok {
			if _, isBin := m["__peerData"].([]byte); isBin {
				wantErr = true
			}
		}
		if wantErr {
			if !errors.Is(err, ErrBadChunk) {
				t.Errorf("Add(%v) err = %v, want ErrBadChunk", v, err)
			}
			continue
		}
		if err != nil || closeReq || !bytes.Equal(got, msg) {
			t.Errorf("Add(%v) = %x, %v, %v; want the message back", v, got, closeReq, err)
		}
	}
	// NaN is falsy too.
	msg := mustHex(t, "81 ba5f5f7065657244617461 cb7ff8000000000001")
	if got, _, err := r.Add(msg); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("NaN __peerData: %v", err)
	}
}

func TestReassemblerClose(t *testing.T) {
	var r Reassembler
	for _, msg := range [][]byte{
		CloseMessage(),
		packed(t, map[string]any{"__peerData": map[string]any{"type": "close", "extra": 1}, "other": true}),
	} {
		got, closeReq, err := r.Add(msg)
		if err != nil || !closeReq || got != nil {
			t.Errorf("Add(%x) = %x, %v, %v; want close", msg, got, closeReq, err)
		}
	}
	if want := packed(t, map[string]any{"__peerData": map[string]any{"type": "close"}}); !bytes.Equal(CloseMessage(), want) {
		t.Errorf("CloseMessage = %x, want %x", CloseMessage(), want)
	}
	for _, v := range []any{
		map[string]any{"__peerData": map[string]any{"type": "open"}},
		map[string]any{"__peerData": map[string]any{}},
		map[string]any{"__peerData": map[string]any{"type": []byte("close")}},
	} {
		if _, closeReq, err := r.Add(packed(t, v)); closeReq || !errors.Is(err, ErrBadChunk) {
			t.Errorf("Add(%v) = %v, %v; want ErrBadChunk", v, closeReq, err)
		}
	}
}

func chunkMsg(t testing.TB, id, n, total any, data any) []byte {
	t.Helper()
	m := map[string]any{"__peerData": id, "n": n, "total": total}
	if data != nil {
		m["data"] = data
	}
	return packed(t, m)
}

func TestReassemblerRejectsBadChunks(t *testing.T) {
	var r Reassembler
	for _, msg := range [][]byte{
		chunkMsg(t, 1, 2, 2, []byte{1}),
		chunkMsg(t, 1, -1, 2, []byte{1}),
		chunkMsg(t, 1, 0, 0, []byte{1}),
		chunkMsg(t, 1, 0, 2, nil),
		chunkMsg(t, 1, 0, 2, "text"),
		chunkMsg(t, 1, "0", 2, []byte{1}),
		chunkMsg(t, 1, 0, 2.5, []byte{1}),
		chunkMsg(t, "id", 0, 2, []byte{1}),
		chunkMsg(t, 1.5, 0, 2, []byte{1}),
		chunkMsg(t, true, 0, 2, []byte{1}),
	} {
		if _, _, err := r.Add(msg); !errors.Is(err, ErrBadChunk) {
			t.Errorf("Add(%x) err = %v, want ErrBadChunk", msg, err)
		}
	}
	for _, in := range []string{"", "81", "81 b161", "81 b161 01 00", "81 01 01", "de 0001"} {
		if _, _, err := r.Add(mustHex(t, in)); err == nil {
			t.Errorf("Add(%s) accepted", in)
		}
	}
	// Duplicates and inconsistent totals.
	if _, _, err := r.Add(chunkMsg(t, 9, 0, 3, []byte{1})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Add(chunkMsg(t, 9, 0, 3, []byte{1})); !errors.Is(err, ErrBadChunk) {
		t.Errorf("duplicate: %v", err)
	}
	if _, _, err := r.Add(chunkMsg(t, 9, 1, 4, []byte{2})); !errors.Is(err, ErrBadChunk) {
		t.Errorf("inconsistent total: %v", err)
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Errorf("Pending = %d, %d; the inconsistent message should be dropped", n, b)
	}
	// A single-chunk message is returned at once, aliasing the message.
	msg := chunkMsg(t, 10, 0, 1, []byte("whole"))
	if got, _, err := r.Add(msg); err != nil || string(got) != "whole" {
		t.Errorf("single chunk: %q, %v", got, err)
	}
}

func TestReassemblerLimits(t *testing.T) {
	const chunk = 1000
	data := bytes.Repeat([]byte{1}, chunk)
	const cost2 = chunk + 2*partOverhead // first chunk of a 2-chunk message

	t.Run("pending", func(t *testing.T) {
		r := Reassembler{MaxPending: 2}
		for id := 1; id <= 2; id++ {
			if _, _, err := r.Add(chunkMsg(t, id, 0, 2, data)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.Add(chunkMsg(t, 3, 0, 2, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("third pending message: %v, want ErrOverflow", err)
		}
		if n, b := r.Pending(); n != 2 || b != 2*cost2 {
			t.Fatalf("Pending = %d, %d", n, b)
		}
		// Id 1 was the oldest: dropped, and its late chunk is discarded quietly.
		if got, _, err := r.Add(chunkMsg(t, 1, 1, 2, data)); got != nil || err != nil {
			t.Fatalf("late chunk of a dropped message: %x, %v", got, err)
		}
		for _, id := range []int{2, 3} {
			if got, _, err := r.Add(chunkMsg(t, id, 1, 2, data)); err != nil || len(got) != 2*chunk {
				t.Fatalf("message %d: %d bytes, %v", id, len(got), err)
			}
		}
		if n, b := r.Pending(); n != 0 || b != 0 {
			t.Fatalf("Pending = %d, %d", n, b)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		r := Reassembler{MaxBytes: 3 * cost2}
		for id := 1; id <= 3; id++ {
			if _, _, err := r.Add(chunkMsg(t, id, 0, 2, data)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.Add(chunkMsg(t, 4, 0, 2, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("over the byte limit: %v, want ErrOverflow", err)
		}
		if n, b := r.Pending(); n != 3 || b != 3*cost2 {
			t.Fatalf("Pending = %d, %d", n, b)
		}
		// Completing needs no room.
		if got, _, err := r.Add(chunkMsg(t, 4, 1, 2, data)); err != nil || len(got) != 2*chunk {
			t.Fatalf("completion: %d bytes, %v", len(got), err)
		}
		if n, b := r.Pending(); n != 2 || b != 2*cost2 {
			t.Fatalf("Pending = %d, %d", n, b)
		}
	})

	t.Run("too large", func(t *testing.T) {
		r := Reassembler{MaxBytes: 3000}
		if _, _, err := r.Add(chunkMsg(t, 7, 0, 2, data)); err != nil { // 1048
			t.Fatal(err)
		}
		if _, _, err := r.Add(chunkMsg(t, 1, 0, 4, data)); err != nil { // 1096
			t.Fatal(err)
		}
		if _, _, err := r.Add(chunkMsg(t, 1, 1, 4, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("making room: %v, want ErrOverflow", err) // drops 7
		}
		if n, b := r.Pending(); n != 1 || b != 2*chunk+4*partOverhead {
			t.Fatalf("Pending = %d, %d", n, b)
		}
		if _, _, err := r.Add(chunkMsg(t, 1, 2, 4, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("message over MaxBytes: %v", err)
		}
		if n, b := r.Pending(); n != 0 || b != 0 {
			t.Fatalf("Pending = %d, %d", n, b)
		}
		if got, _, err := r.Add(chunkMsg(t, 1, 3, 4, data)); got != nil || err != nil {
			t.Fatalf("rest of a dropped message: %x, %v", got, err)
		}
		if n, _ := r.Pending(); n != 0 {
			t.Fatalf("a dropped message was restarted")
		}
	})

	t.Run("too many chunks", func(t *testing.T) {
		r := Reassembler{MaxBytes: 24000 + chunk}
		if _, _, err := r.Add(chunkMsg(t, 1, 0, 1<<62, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("2^62 chunks: %v", err)
		}
		if _, _, err := r.Add(chunkMsg(t, 2, 0, 1000, data)); err != nil {
			t.Fatalf("1000 chunks: %v", err)
		}
		if _, _, err := r.Add(chunkMsg(t, 3, 0, 1001, data)); !errors.Is(err, ErrOverflow) {
			t.Fatalf("1001 chunks: %v", err)
		}
	})
}
