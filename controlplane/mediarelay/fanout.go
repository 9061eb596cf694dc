package mediarelay

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/metrics/rtpstats"
)

// Writer takes one RTP packet and does not keep b past the call: pion's
// TrackLocalStaticRTP (whose Write parses, rewrites SSRC and payload type,
// and encrypts synchronously).
type Writer interface {
	Write(b []byte) (int, error)
}

// Batcher holds the writes a batch makes until it is done, so that they
// leave in few system calls (udp.ICENet).
type Batcher interface {
	Hold()
	Release()
}

// Fanout is the sink of one media port: every RTP packet the app sends is
// read once and written to each Writer (one per media connection using the
// media), synchronously on the port's worker. Writers are added and removed
// copy-on-write, so the packet path takes no lock.
//
// Once SetClockRate has been called, it also measures the app's stream as
// RFC 3550 defines it (rtpstats: jitter, packets lost): the app-to-gw leg,
// one measurement per media port whichever connections it feeds. Arrival
// times are taken once per batch (the dataplane gives none per datagram),
// so on a batched dataplane packets received in one call count as arriving
// together.
type Fanout struct {
	mu      sync.Mutex // serializes Add and Remove
	writers atomic.Pointer[[]Writer]
	ssrc    atomic.Uint32
	// Counters, read by metrics later.
	packets atomic.Uint64 // RTP packets received from the app
	dropped atomic.Uint64 // datagrams that were not RTP
	// rx measures the app's stream; nil until SetClockRate. Only the
	// port's worker calls its Update and Restart.
	rx   atomic.Pointer[rtpstats.Receiver]
	rate atomic.Uint32
	// Batch, if set before the port starts, holds the writes of each
	// batch from the app.
	Batch Batcher
}

// SetClockRate starts measuring the app's stream at the RTP clock rate of
// its codec, or starts over if the rate changes (another codec). Call it
// when a connection starts using the port; it is not for the packet path
// (it allocates when the rate changes).
func (f *Fanout) SetClockRate(rate uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rx.Load() != nil && f.rate.Load() == rate {
		return
	}
	f.rate.Store(rate)
	f.rx.Store(rtpstats.New(rtpstats.Config{ClockRate: rate}))
}

// Stats is the last published measurement of the app's stream; false
// before SetClockRate.
func (f *Fanout) Stats() (rtpstats.Snapshot, bool) {
	rx := f.rx.Load()
	if rx == nil {
		return rtpstats.Snapshot{}, false
	}
	return rx.Snapshot(), true
}

// Add makes w receive every later packet.
func (f *Fanout) Add(w Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next []Writer
	if cur := f.writers.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, w)
	f.writers.Store(&next)
}

// Remove stops writing to w. A batch being written may still reach it once.
func (f *Fanout) Remove(w Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.writers.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x Writer) bool { return x == w })
	f.writers.Store(&next)
}

// Len is how many writers there are.
func (f *Fanout) Len() int {
	if cur := f.writers.Load(); cur != nil {
		return len(*cur)
	}
	return 0
}

// SSRC is the SSRC of the app's latest RTP packet (0 before the first).
func (f *Fanout) SSRC() uint32 { return f.ssrc.Load() }

// Packets and Dropped count the RTP packets taken and the other datagrams.
func (f *Fanout) Packets() uint64 { return f.packets.Load() }
func (f *Fanout) Dropped() uint64 { return f.dropped.Load() }

// Receive implements dataplane.Sink.
func (f *Fanout) Receive(batch []dataplane.Packet) {
	var ws []Writer
	if cur := f.writers.Load(); cur != nil {
		ws = *cur
	}
	if f.Batch != nil && len(ws) > 0 {
		f.Batch.Hold()
		defer f.Batch.Release()
	}
	rx := f.rx.Load()
	var now time.Time
	if rx != nil {
		now = time.Now()
	}
	for i := range batch {
		b := batch[i].Data
		if !IsRTP(b) {
			f.dropped.Add(1)
			continue
		}
		f.packets.Add(1)
		if s := SSRC(b); s != f.ssrc.Load() {
			if rx != nil && f.ssrc.Load() != 0 {
				rx.Restart() // the app restarted its sender: a new source
			}
			f.ssrc.Store(s)
		}
		if rx != nil {
			seq, ts := SeqTS(b)
			rx.Update(seq, ts, PayloadLen(b), now)
		}
		for _, w := range ws {
			// A write fails only when a connection is closing; the others
			// must not miss the packet for it, and nothing logs per packet.
			_, _ = w.Write(b)
		}
	}
}
