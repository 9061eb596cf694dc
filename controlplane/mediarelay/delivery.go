package mediarelay

import (
	"net/netip"
	"sync"

	"github.com/gw-project/gw/dataplane/bufpool"
)

// Sender sends a batch of datagrams to one address (a dataplane.Port).
type Sender interface {
	Send(pkts [][]byte, dst netip.AddrPort) (int, error)
}

// MaxQueued bounds a Delivery's queue: a writer that finds it full waits
// for the send under way and then sends the queue itself, so a stalled
// send holds the track's reader back (pion buffers behind it) rather than
// growing the queue. The pool keeps buffers after a burst, so the bound is
// also what a stream can cost in memory: two batches, about 200 KiB.
const MaxQueued = 2 * flushAt

// flushAt is a batch's worth: a writer that finds this many queued sends
// them itself, unless a send is under way.
const flushAt = 64

// Delivery sends one remote track's packets to the app. Write queues a
// copy; a goroutine of the Delivery's own sends all that has queued in one
// Send (sendmmsg, GSO on the mmsg dataplane). While it sends, the track's
// reader goes on reading, so a burst (a video frame) leaves in a few
// system calls instead of one per packet, and a lone packet waits only for
// a goroutine switch. A reader that outruns the goroutine (a burst pion
// had buffered) sends batches itself, so the queue stays short.
type Delivery struct {
	out  Sender
	dst  netip.AddrPort
	pool *bufpool.Pool

	mu     sync.Mutex // guards queue and closed
	queue  [][]byte
	closed bool

	// sending is held across a swap of the queue and its Send, so
	// batches leave in the order they queued.
	sending sync.Mutex
	batch   [][]byte // the batch being sent; under sending

	wake chan struct{} // capacity 1: work queued
	done chan struct{} // the goroutine has ended
}

// NewDelivery starts delivering to dst through out; copies come from pool,
// whose buffers must hold the largest packet written.
func NewDelivery(out Sender, dst netip.AddrPort, pool *bufpool.Pool) *Delivery {
	d := &Delivery{out: out, dst: dst, pool: pool, queue: make([][]byte, 0, flushAt),
		batch: make([][]byte, 0, flushAt), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// Write queues a copy of b, which is free again when Write returns. b must
// fit the pool's buffers; writes after Close are ignored.
func (d *Delivery) Write(b []byte) {
	buf := d.pool.Get()
	buf = buf[:copy(buf, b)]
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.pool.Put(buf)
		return
	}
	d.queue = append(d.queue, buf)
	n := len(d.queue)
	d.mu.Unlock()
	if n >= MaxQueued {
		d.sending.Lock()
	} else if n < flushAt || !d.sending.TryLock() {
		select {
		case d.wake <- struct{}{}:
		default: // already signalled
		}
		return
	}
	d.send()
	d.sending.Unlock()
}

// Close sends what is queued, stops the goroutine and waits for it.
func (d *Delivery) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	<-d.done
}

func (d *Delivery) run() {
	defer close(d.done)
	for range d.wake {
		d.sending.Lock()
		closed := d.send()
		d.sending.Unlock()
		if closed {
			return
		}
	}
}

// send takes what has queued and sends it; it reports whether the
// Delivery is closed (nothing more will queue). d.sending is held.
func (d *Delivery) send() (closed bool) {
	d.mu.Lock()
	d.batch, d.queue = d.queue, d.batch[:0]
	closed = d.closed
	d.mu.Unlock()
	if len(d.batch) > 0 {
		// A failed send is counted by the port (dataplane drops).
		_, _ = d.out.Send(d.batch, d.dst)
		d.pool.PutN(d.batch)
		clear(d.batch)
	}
	return closed
}
