package mediarelay

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gw-project/gw/dataplane"
)

// Writer takes one RTP packet and does not keep b past the call: pion's
// TrackLocalStaticRTP (whose Write parses, rewrites SSRC and payload type,
// and encrypts synchronously).
type Writer interface {
	Write(b []byte) (int, error)
}

// Fanout is the sink of one media port: every RTP packet the app sends is
// read once and written to each Writer (one per media connection using the
// media), synchronously on the port's worker. Writers are added and removed
// copy-on-write, so the packet path takes no lock.
type Fanout struct {
	mu      sync.Mutex // serializes Add and Remove
	writers atomic.Pointer[[]Writer]
	ssrc    atomic.Uint32
	// Counters, read by metrics later.
	packets atomic.Uint64 // RTP packets received from the app
	dropped atomic.Uint64 // datagrams that were not RTP
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
	for i := range batch {
		b := batch[i].Data
		if !IsRTP(b) {
			f.dropped.Add(1)
			continue
		}
		f.packets.Add(1)
		if s := SSRC(b); s != f.ssrc.Load() {
			f.ssrc.Store(s)
		}
		for _, w := range ws {
			// A write fails only when a connection is closing; the others
			// must not miss the packet for it, and nothing logs per packet.
			_, _ = w.Write(b)
		}
	}
}
