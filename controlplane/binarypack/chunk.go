package binarypack

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
)

// ChunkMTU is PeerJS's chunk size: a packed message longer than this is
// sent as chunk messages carrying ChunkMTU-byte slices of it (the last one
// shorter). A message of exactly ChunkMTU bytes is sent whole.
const ChunkMTU = 16300

// chunkOverhead bounds the bytes a chunk message adds to its slice: the map
// header, the four keys, three integers of up to 9 bytes and the binary
// header.
const chunkOverhead = 1 + 11 + 9 + 2 + 9 + 5 + 5 + 6 + 9

// Errors returned by Reassembler.Add.
var (
	ErrBadChunk = errors.New("binarypack: malformed chunk message")
	ErrOverflow = errors.New("binarypack: chunked messages dropped over the memory limit")
)

// closeMessage is {__peerData: {type: "close"}} as PeerJS packs it.
var closeMessage = []byte("\x81\xba__peerData\x81\xb4type\xb5close")

// CloseMessage returns {__peerData: {type: "close"}}, the message with which
// a PeerJS peer asks the other end to close the connection.
func CloseMessage() []byte { return slices.Clone(closeMessage) }

// Chunker numbers and splits one connection's outgoing messages the way a
// PeerJS client does. The zero value is ready: the first chunked message
// gets id 1. It is safe for concurrent use.
type Chunker struct {
	last atomic.Uint64
}

// Split returns the data-channel messages that carry the packed value: the
// value itself if it fits in one message, otherwise its chunk messages in
// order.
func (c *Chunker) Split(packed []byte) [][]byte {
	return c.AppendSplit(nil, packed)
}

// AppendSplit is Split appending to dst, so that a caller reusing dst
// allocates nothing for messages that need no chunking. Chunk messages of
// one value share one new buffer; they do not alias packed.
func (c *Chunker) AppendSplit(dst [][]byte, packed []byte) [][]byte {
	if len(packed) <= ChunkMTU {
		return append(dst, packed)
	}
	id := c.last.Add(1)
	total := (len(packed) + ChunkMTU - 1) / ChunkMTU
	buf := make([]byte, 0, len(packed)+total*chunkOverhead)
	for n := range total {
		start := len(buf)
		buf = appendChunk(buf, id, n, total, packed[n*ChunkMTU:min(len(packed), (n+1)*ChunkMTU)])
		dst = append(dst, buf[start:len(buf):len(buf)])
	}
	return dst
}

// appendChunk writes {__peerData: id, n: n, data: data, total: total}, in
// the key order of PeerJS's BinaryPackChunker.
func appendChunk(dst []byte, id uint64, n, total int, data []byte) []byte {
	dst = append(dst, "\x84\xba__peerData"...)
	dst = appendUint(dst, id)
	dst = append(dst, "\xb1n"...)
	dst = appendInt(dst, int64(n))
	dst = append(dst, "\xb4data"...)
	dst, _ = AppendBinary(dst, data) // len(data) <= ChunkMTU
	dst = append(dst, "\xb5total"...)
	return appendInt(dst, int64(total))
}

// Reassembler defaults.
const (
	DefaultMaxBytes   = 16 << 20
	DefaultMaxPending = 16
)

// droppedMemory is how many dropped message ids a Reassembler remembers so
// as to discard their remaining chunks.
const droppedMemory = 64

// partOverhead is what a Reassembler charges for each chunk a pending
// message expects, received or not: the slice header that will hold it.
const partOverhead = 24

// Reassembler receives one connection's messages and joins chunked ones, as
// a PeerJS client does. It bounds what it holds: at most MaxBytes, counting
// chunk data plus 24 bytes per expected chunk, for at most MaxPending
// incomplete messages. To make room it drops the oldest incomplete messages
// (chunks get lost on unreliable channels, and PeerJS never expires them).
// The zero value uses the defaults. It is not safe for concurrent use.
type Reassembler struct {
	MaxBytes   int // default DefaultMaxBytes
	MaxPending int // default DefaultMaxPending

	pending map[int64]*partial
	order   []int64 // pending ids, oldest first
	held    int     // total cost of the pending messages

	dropped  [droppedMemory]int64 // ring of recently dropped ids
	ndropped int
}

type partial struct {
	parts [][]byte // by index; nil until received
	have  int      // parts received
	size  int      // bytes received
}

func (p *partial) cost() int { return p.size + len(p.parts)*partOverhead }

// Add takes one message received on the data channel. It returns the
// packed value the message completes: msg itself if it is not a chunk, the
// joined value when it is the last missing chunk, nil while chunks are
// missing. closeReq reports PeerJS's close request, after which the caller
// should close the connection. packed may alias msg; Add keeps no reference
// to msg. (PeerJS would inspect a joined value for __peerData again; its
// senders never chunk control messages, and Add does not.)
//
// A malformed control message (a map with a truthy __peerData that is
// neither a close request nor a well-formed chunk) yields ErrBadChunk or a
// decoding error. ErrOverflow reports that Add dropped incomplete messages
// to stay within its limits; msg itself was still stored unless it belongs
// to a dropped message. Later chunks of a dropped message are discarded
// without error.
func (r *Reassembler) Add(msg []byte) (packed []byte, closeReq bool, err error) {
	if len(msg) == 0 {
		return nil, false, fmt.Errorf("%w at offset 0", ErrTruncated)
	}
	if t := msg[0]; !(t >= 0x80 && t <= 0x8f || t == 0xde || t == 0xdf) {
		return msg, false, nil // not a map: the hot path
	}
	ctl, err := parseControl(msg)
	switch {
	case err != nil:
		return nil, false, err
	case ctl.kind == ctlNone:
		return msg, false, nil
	case ctl.kind == ctlClose:
		return nil, true, nil
	}
	return r.addChunk(ctl)
}

// Pending reports the incomplete messages held and their cost in bytes.
func (r *Reassembler) Pending() (messages, bytes int) {
	return len(r.pending), r.held
}

func (r *Reassembler) limits() (maxBytes, maxPending int) {
	maxBytes, maxPending = r.MaxBytes, r.MaxPending
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	return maxBytes, maxPending
}

func (r *Reassembler) addChunk(c control) ([]byte, bool, error) {
	maxBytes, maxPending := r.limits()
	if c.total < 1 || c.n < 0 || c.n >= c.total {
		return nil, false, fmt.Errorf("%w: chunk %d of %d", ErrBadChunk, c.n, c.total)
	}
	if slices.Contains(r.dropped[:min(r.ndropped, droppedMemory)], c.id) {
		return nil, false, nil
	}
	if c.total > int64(maxBytes/partOverhead) {
		r.drop(c.id)
		return nil, false, fmt.Errorf("%w: message %d has %d chunks", ErrOverflow, c.id, c.total)
	}
	n, total := int(c.n), int(c.total)
	p := r.pending[c.id]
	switch {
	case p == nil && total == 1:
		return c.data, false, nil
	case p != nil && len(p.parts) != total:
		r.drop(c.id)
		return nil, false, fmt.Errorf("%w: message %d claims %d then %d chunks", ErrBadChunk, c.id, len(p.parts), total)
	case p != nil && p.parts[n] != nil:
		return nil, false, fmt.Errorf("%w: duplicate chunk %d of message %d", ErrBadChunk, n, c.id)
	case p != nil && p.have+1 == total:
		// Complete: the result goes to the caller, so it needs no room.
		out := make([]byte, 0, p.size+len(c.data))
		for i, part := range p.parts {
			if i == n {
				part = c.data
			}
			out = append(out, part...)
		}
		r.remove(c.id)
		return out, false, nil
	}

	// An incomplete message grows: make room first.
	grow, cost := len(c.data), len(c.data)
	if p == nil {
		grow += total * partOverhead
		cost = grow
	} else {
		cost += p.cost()
	}
	if cost > maxBytes {
		r.drop(c.id)
		return nil, false, fmt.Errorf("%w: message %d exceeds %d bytes", ErrOverflow, c.id, maxBytes)
	}
	evicted := 0
	for p == nil && len(r.pending) >= maxPending {
		r.drop(r.order[0])
		evicted++
	}
	for r.held+grow > maxBytes {
		r.drop(r.oldestExcept(c.id))
		evicted++
	}
	if p == nil {
		if r.pending == nil {
			r.pending = make(map[int64]*partial)
		}
		p = &partial{parts: make([][]byte, total)}
		r.pending[c.id] = p
		r.order = append(r.order, c.id)
	}
	p.parts[n] = append(make([]byte, 0, len(c.data)), c.data...)
	p.have++
	p.size += len(c.data)
	r.held += grow
	if evicted > 0 {
		return nil, false, fmt.Errorf("%w: %d incomplete messages", ErrOverflow, evicted)
	}
	return nil, false, nil
}

// oldestExcept returns the oldest pending id other than id; the caller
// guarantees there is one.
func (r *Reassembler) oldestExcept(id int64) int64 {
	if r.order[0] != id {
		return r.order[0]
	}
	return r.order[1]
}

// drop discards a message and remembers its id.
func (r *Reassembler) drop(id int64) {
	r.remove(id)
	r.dropped[r.ndropped%droppedMemory] = id
	r.ndropped++
}

func (r *Reassembler) remove(id int64) {
	if p := r.pending[id]; p != nil {
		r.held -= p.cost()
		delete(r.pending, id)
		r.order = slices.DeleteFunc(r.order, func(x int64) bool { return x == id })
	}
}

type controlKind uint8

const (
	ctlNone  controlKind = iota // an ordinary value
	ctlClose                    // {__peerData: {type: "close"}}
	ctlChunk                    // {__peerData: id, n, data, total}
)

type control struct {
	kind         controlKind
	id, n, total int64
	data         []byte // aliases the message
}

// parseControl classifies a message whose top level is a map, as PeerJS's
// receiver does: a falsy or missing __peerData makes an ordinary value, an
// object whose type is "close" a close request, anything else a chunk.
// PeerJS ids are integers; other truthy ids are rejected. It validates the
// whole message without allocating.
func parseControl(msg []byte) (control, error) {
	fields, err := mapFields(msg, 0, "__peerData", "n", "data", "total")
	if err != nil {
		return control{}, err
	}
	peer := fields[0]
	if peer < 0 {
		return control{}, nil
	}
	h, _, _ := readHeader(msg, peer) // validated by mapFields
	switch {
	case falsy(h):
		return control{}, nil
	case h.kind == kMap:
		f, _ := mapFields(msg, peer, "type")
		if f[0] >= 0 {
			if th, j, _ := readHeader(msg, f[0]); th.kind == kStr && string(msg[j:j+int(th.n)]) == "close" {
				return control{kind: ctlClose}, nil
			}
		}
		return control{}, fmt.Errorf("%w: __peerData is an object but not a close request", ErrBadChunk)
	case h.kind != kInt:
		return control{}, fmt.Errorf("%w: __peerData is not an integer", ErrBadChunk)
	}
	c := control{kind: ctlChunk, id: int64(h.n)}
	var ok [3]bool
	c.n, ok[0] = intAt(msg, fields[1])
	c.total, ok[2] = intAt(msg, fields[3])
	if fields[2] >= 0 {
		if dh, j, _ := readHeader(msg, fields[2]); dh.kind == kBin {
			c.data, ok[1] = msg[j:j+int(dh.n)], true
		}
	}
	if !ok[0] || !ok[1] || !ok[2] {
		return control{}, fmt.Errorf("%w: chunk needs integer n and total and binary data", ErrBadChunk)
	}
	return c, nil
}

// mapFields validates the map at msg[i:], which must be all of msg when
// i is 0, and returns the offset of the value of each of keys (the last
// one if repeated; -1 if absent).
func mapFields(msg []byte, i int, keys ...string) ([4]int, error) {
	pos := [4]int{-1, -1, -1, -1}
	h, j, err := readHeader(msg, i)
	if err != nil {
		return pos, err
	}
	for range int(h.n) {
		var key []byte
		if key, j, err = readKey(msg, j); err != nil {
			return pos, err
		}
		for k, want := range keys {
			if string(key) == want {
				pos[k] = j
			}
		}
		if _, j, err = walk(msg, j, 1, false); err != nil {
			return pos, err
		}
	}
	if i == 0 && j != len(msg) {
		return pos, fmt.Errorf("%w at offset %d", ErrTrailingBytes, j)
	}
	return pos, nil
}

func intAt(msg []byte, i int) (int64, bool) {
	if i < 0 {
		return 0, false
	}
	h, _, _ := readHeader(msg, i)
	return int64(h.n), h.kind == kInt
}

// falsy reports whether a header is a JavaScript falsy value: null,
// undefined, false, 0, -0, NaN or "".
func falsy(h header) bool {
	switch h.kind {
	case kNil, kUndefined:
		return true
	case kBool, kInt, kStr:
		return h.n == 0
	case kFloat:
		f := math.Float64frombits(h.n)
		return f == 0 || f != f
	}
	return false
}
