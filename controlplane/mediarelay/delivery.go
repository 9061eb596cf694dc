package mediarelay

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gw-project/gw/dataplane/bufpool"
)

// Sender sends a batch of datagrams to one address (a dataplane.Port).
type Sender interface {
	Send(pkts [][]byte, dst netip.AddrPort) (int, error)
}

// MaxQueued bounds what a Delivery holds for a sender that has stalled
// (about a second of a 4 Mbit/s camera); beyond it packets are dropped and
// counted, as a full socket would. The buffers stay in the pool after an
// overload, so the bound is also what one stream can cost in memory.
const MaxQueued = 512

// Delivery sends one remote track's packets to the app. Write queues a
// copy; a goroutine of the Delivery's own sends all that has queued in one
// Send (sendmmsg, GSO on the mmsg dataplane). While it sends, the track's
// reader goes on reading, so a burst (a video frame) leaves in a few
// system calls instead of one per packet, and a lone packet waits only for
// a goroutine switch.
type Delivery struct {
	out  Sender
	dst  netip.AddrPort
	pool *bufpool.Pool

	mu      sync.Mutex
	queue   [][]byte
	closed  bool
	wake    chan struct{} // capacity 1: work queued
	done    chan struct{} // the goroutine has ended
	dropped atomic.Uint64
}

// NewDelivery starts delivering to dst through out; copies come from pool,
// whose buffers must hold the largest packet written.
func NewDelivery(out Sender, dst netip.AddrPort, pool *bufpool.Pool) *Delivery {
	d := &Delivery{out: out, dst: dst, pool: pool, queue: make([][]byte, 0, 64),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// Write queues a copy of b; b is free again when Write returns. Packets
// larger than the pool's buffers, and those beyond MaxQueued, are dropped.
func (d *Delivery) Write(b []byte) {
	if len(b) > d.pool.Size() {
		d.dropped.Add(1)
		return
	}
	buf := d.pool.Get()
	buf = buf[:copy(buf, b)]
	d.mu.Lock()
	if d.closed || len(d.queue) >= MaxQueued {
		d.mu.Unlock()
		d.pool.Put(buf)
		d.dropped.Add(1)
		return
	}
	d.queue = append(d.queue, buf)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // already signalled
	}
}

// Dropped counts packets Write could not queue.
func (d *Delivery) Dropped() uint64 { return d.dropped.Load() }

// Close sends what is queued, stops the goroutine and waits for it.
func (d *Delivery) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.done
		return
	}
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
	batch := make([][]byte, 0, 64)
	for range d.wake {
		d.mu.Lock()
		batch, d.queue = d.queue, batch[:0]
		closed := d.closed
		d.mu.Unlock()
		if len(batch) > 0 {
			// A failed send is counted by the port (dataplane drops).
			_, _ = d.out.Send(batch, d.dst)
			d.pool.PutN(batch)
			clear(batch)
		}
		if closed {
			return
		}
	}
}
