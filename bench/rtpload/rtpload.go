// Package rtpload is the media benchmark's traffic harness: a paced sender
// of synthetic RTP streams, each to its own destination, and a sink that
// checks what comes out of the relay under test: per-stream loss (by a
// sequence number carried in the payload, so a relay may rewrite RTP
// headers) and latency (by the send time carried in the payload, read on
// the same clock when the packet arrives).
//
// A packet is a 12-byte RTP header (version 2, the configured payload type,
// per-stream sequence number, a 90 kHz timestamp, per-stream SSRC) followed
// by the payload: Magic, the stream index (uint32), the stream's packet
// number (uint64) and the send time (uint64 nanoseconds on Clock), big
// endian, then filler up to the configured size.
//
// Like package loadgen, sender and sink each run on a goroutine locked to
// an OS thread and block in the kernel (nanosleep, blocking sendmmsg and
// recvmmsg with a receive timeout), not in the Go netpoller, so the harness
// stays cheap and its timing steady. Linux only.
package rtpload

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"time"
)

// Magic starts every payload.
const Magic = 0x47574231 // "GWB1"

// HeaderSize is the RTP header the sender writes; PayloadMin the smallest
// payload (magic, stream, number, time).
const (
	HeaderSize = 12
	PayloadMin = 24
	MinSize    = HeaderSize + PayloadMin
)

// Clock is the time packets carry: nanoseconds since 1970 on the system
// clock, the clock of the kernel's receive timestamps (SO_TIMESTAMPNS).
func Clock() uint64 { return uint64(time.Now().UnixNano()) }

// Stamp fills the header and payload fields of packet number n of stream
// s (the filler is left as it is).
func Stamp(b []byte, pt uint8, s int, n uint64, now uint64) {
	b[0] = 0x80
	b[1] = pt & 0x7f
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint32(b[4:], uint32(now/1e5*9)) // 90 kHz
	binary.BigEndian.PutUint32(b[8:], SSRC(s))
	p := b[HeaderSize:]
	binary.BigEndian.PutUint32(p, Magic)
	binary.BigEndian.PutUint32(p[4:], uint32(s))
	binary.BigEndian.PutUint64(p[8:], n)
	binary.BigEndian.PutUint64(p[16:], now)
}

// SSRC is the SSRC stream s is sent under.
func SSRC(s int) uint32 { return 0x6e000000 + uint32(s) }

// Parse reads the fields of a packet that arrived, with the RTP header of
// whatever length the relay left (CSRCs, header extensions). ok is false
// for anything else.
func Parse(b []byte) (s int, n uint64, sent uint64, ok bool) {
	if len(b) < HeaderSize || b[0]>>6 != 2 {
		return 0, 0, 0, false
	}
	off := HeaderSize + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension
		if len(b) < off+4 {
			return 0, 0, 0, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	if len(b) < off+PayloadMin {
		return 0, 0, 0, false
	}
	p := b[off:]
	if binary.BigEndian.Uint32(p) != Magic {
		return 0, 0, 0, false
	}
	return int(binary.BigEndian.Uint32(p[4:])), binary.BigEndian.Uint64(p[8:]), binary.BigEndian.Uint64(p[16:]), true
}

// Histogram counts durations in nanoseconds in log-linear buckets: exact
// below 64 ns, then 32 buckets per power of two (about 3% wide). Record and
// the readers may run concurrently (atomics); nothing allocates.
type Histogram struct {
	b [histBuckets]atomic.Uint64
	n atomic.Uint64
}

const histBuckets = 40 * 32 // up to 2^44 ns, about 5 hours

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	shift := bits.Len64(v) - 6
	i := shift*32 + int(v>>shift)
	if i >= histBuckets {
		i = histBuckets - 1
	}
	return i
}

// bucketRange is the values bucket i holds: [lo, hi).
func bucketRange(i int) (lo, hi uint64) {
	if i < 64 {
		return uint64(i), uint64(i) + 1
	}
	shift := i/32 - 1
	m := uint64(i%32 + 32)
	return m << shift, (m + 1) << shift
}

// Record counts one duration.
func (h *Histogram) Record(ns uint64) {
	h.b[bucketOf(ns)].Add(1)
	h.n.Add(1)
}

// Count is how many were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Reset forgets everything (call it while nothing records).
func (h *Histogram) Reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
	h.n.Store(0)
}

// Quantile is the duration below which a fraction q of the recorded ones
// lie (the middle of its bucket); 0 if none.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if rank >= n {
		rank = n - 1
	}
	var c uint64
	for i := range h.b {
		c += h.b[i].Load()
		if c > rank {
			lo, hi := bucketRange(i)
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	lo, _ := bucketRange(histBuckets - 1)
	return time.Duration(lo)
}
