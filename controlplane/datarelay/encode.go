package datarelay

import (
	"github.com/gw-project/gw/controlplane/binarypack"
)

// Encoder turns datagrams into the messages of one connection. Each
// feeding port has its own (it reuses its buffers, so it is not safe for
// concurrent use); the connection's Chunker is shared, so that chunked
// messages get distinct ids whichever port they come from.
type Encoder struct {
	ser     Serialization
	chunker *binarypack.Chunker
	buf     []byte
	msgs    [][]byte
}

// NewEncoder returns an Encoder for ser. chunker numbers chunked messages;
// it is needed only for the binary serializations.
func NewEncoder(ser Serialization, chunker *binarypack.Chunker) *Encoder {
	return &Encoder{ser: ser, chunker: chunker, msgs: make([][]byte, 0, 8)}
}

// Encode returns the messages that carry datagram d, each to be sent as a
// binary frame, in order. They may alias d and the Encoder's buffers, so
// they are valid until the next Encode or until d changes. Only a datagram
// that needs chunking allocates (one buffer for its chunks).
func (e *Encoder) Encode(d []byte) [][]byte {
	e.msgs = e.msgs[:0]
	switch {
	case e.ser.packed():
		// len(d) < 2^32 for any datagram, so AppendBinary cannot fail.
		e.buf, _ = binarypack.AppendBinary(e.buf[:0], d)
		if len(e.buf) <= binarypack.ChunkMTU {
			e.msgs = append(e.msgs, e.buf)
		} else {
			e.msgs = e.chunker.AppendSplit(e.msgs, e.buf)
		}
	case e.ser == JSON && !passJSON(d):
		e.buf = appendJSONString(e.buf[:0], d)
		e.msgs = append(e.msgs, e.buf)
	default:
		e.msgs = append(e.msgs, d)
	}
	e.shrink()
	return e.msgs
}

// maxKeep bounds the buffer an Encoder keeps between datagrams; the
// largest UDP datagram packs into less.
const maxKeep = 128 << 10

func (e *Encoder) shrink() {
	if cap(e.buf) > maxKeep {
		e.buf = nil
	}
}
