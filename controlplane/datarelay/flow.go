package datarelay

import "sync/atomic"

// Buffered is what Flow needs of a data channel: how many bytes it holds
// that the remote has not yet taken.
type Buffered interface {
	BufferedAmount() uint64
}

// Flow is a connection's send policy. A reliable channel must not lose
// anything, so while it holds more than HighWater bytes Admit waits, and
// the port's worker, which calls it, stops reading: the kernel's socket
// buffer keeps the datagrams that arrive meanwhile. An unreliable channel
// (maxRetransmits or maxPacketLifeTime set) carries data that goes stale,
// so a datagram that finds the channel over HighWater is dropped and
// counted instead.
type Flow struct {
	ch        Buffered
	reliable  bool
	highWater uint64
	low       chan struct{}
	done      <-chan struct{}
	dropped   atomic.Uint64
	waits     atomic.Uint64
}

// NewFlow returns the policy for ch. done ends every wait (the connection
// closed).
func NewFlow(ch Buffered, reliable bool, highWater uint64, done <-chan struct{}) *Flow {
	return &Flow{ch: ch, reliable: reliable, highWater: highWater, low: make(chan struct{}, 1), done: done}
}

// LowThreshold is the buffered amount at which the channel should call
// Drained: half the high-water mark, so that a waiting sender resumes with
// room for a good batch.
func (f *Flow) LowThreshold() uint64 { return f.highWater / 2 }

// Drained wakes a waiting Admit; the channel's buffered-amount-low callback
// calls it. It never blocks.
func (f *Flow) Drained() {
	select {
	case f.low <- struct{}{}:
	default:
	}
}

// Admit reports whether the next datagram may be sent now, waiting on a
// reliable channel for room. false means drop it: counted on an unreliable
// channel; on a closed connection, not counted.
func (f *Flow) Admit() bool {
	for {
		select {
		case <-f.done:
			return false
		default:
		}
		if f.ch.BufferedAmount() <= f.highWater {
			return true
		}
		if !f.reliable {
			f.dropped.Add(1)
			return false
		}
		// A wake-up left from an earlier drain only costs a re-check.
		f.waits.Add(1)
		select {
		case <-f.low:
		case <-f.done:
			return false
		}
	}
}

// Drop counts a datagram lost for another reason (a failed send).
func (f *Flow) Drop() { f.dropped.Add(1) }

// Dropped is how many datagrams were dropped.
func (f *Flow) Dropped() uint64 { return f.dropped.Load() }

// Waits is how many times Admit waited for the channel to drain.
func (f *Flow) Waits() uint64 { return f.waits.Load() }

// Reliable reports the channel's kind.
func (f *Flow) Reliable() bool { return f.reliable }
