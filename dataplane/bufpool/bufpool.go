// Package bufpool keeps fixed-size packet buffers for reuse, so that moving a
// datagram costs no allocation once the pool has grown to the working set.
//
// # Ownership
//
// Get hands a buffer to the caller, who owns it until it calls Put; after
// Put the caller must not touch it (or any slice of it) again, since the next
// Get may hand it to someone else. Put each buffer once. A buffer may be
// resliced in between (b[:n] is fine) but Put must get a slice that starts
// where the buffer starts: Put recognises its buffers by capacity and ignores
// anything else, so a foreign or offset slice is simply not kept.
//
// In the dataplane, a port takes its receive buffers when it opens and puts
// them back when its worker exits; packets handed to a sink borrow them for
// the duration of one Receive call (see package dataplane).
package bufpool

import (
	"sync"
	"sync/atomic"
)

// slabBytes is roughly how much one refill allocates: buffers are carved out
// of one backing array, so a port's batch of buffers is one allocation and
// sits together in memory.
const slabBytes = 64 << 10

// Pool is a free list of buffers of one size. The zero value is not usable;
// use New. Safe for concurrent use.
//
// A mutex-guarded stack rather than sync.Pool: sync.Pool may drop its
// contents at any GC (so steady state would allocate again) and boxing a
// []byte into its interface allocates.
type Pool struct {
	size int
	per  int // buffers per slab

	mu   sync.Mutex
	free [][]byte

	allocated atomic.Int64 // buffers ever made
}

// New makes a pool of size-byte buffers. It panics if size < 1.
func New(size int) *Pool {
	if size < 1 {
		panic("bufpool: size < 1")
	}
	per := slabBytes / size
	if per < 1 {
		per = 1
	}
	return &Pool{size: size, per: per}
}

// Size is the length of every buffer Get returns.
func (p *Pool) Size() int { return p.size }

// Get returns a buffer of length and capacity Size. Its contents are
// whatever its last user left.
func (p *Pool) Get() []byte {
	p.mu.Lock()
	if len(p.free) == 0 {
		p.refill()
	}
	b := p.pop()
	p.mu.Unlock()
	return b
}

// GetN fills dst with buffers, as len(dst) calls of Get would, under one
// lock.
func (p *Pool) GetN(dst [][]byte) {
	p.mu.Lock()
	for i := range dst {
		if len(p.free) == 0 {
			p.refill()
		}
		dst[i] = p.pop()
	}
	p.mu.Unlock()
}

func (p *Pool) pop() []byte {
	n := len(p.free) - 1
	b := p.free[n]
	p.free[n] = nil
	p.free = p.free[:n]
	return b
}

// refill carves a slab into buffers. Each buffer's capacity ends where the
// next begins, so an append on one can never write into its neighbour.
func (p *Pool) refill() {
	slab := make([]byte, p.per*p.size)
	for i := 0; i < p.per; i++ {
		p.free = append(p.free, slab[i*p.size:(i+1)*p.size:(i+1)*p.size])
	}
	p.allocated.Add(int64(p.per))
}

// Put returns b to the pool. A slice whose capacity is not Size (not one of
// this pool's buffers, or not its start) is ignored.
func (p *Pool) Put(b []byte) {
	if cap(b) != p.size {
		return
	}
	b = b[:p.size]
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// PutN returns every buffer of bufs, as Put would, and clears bufs.
func (p *Pool) PutN(bufs [][]byte) {
	p.mu.Lock()
	for i, b := range bufs {
		if cap(b) == p.size {
			p.free = append(p.free, b[:p.size])
		}
		bufs[i] = nil
	}
	p.mu.Unlock()
}

// Allocated is how many buffers the pool has made; Idle how many it holds
// now. Allocated - Idle are in use (or were dropped by their users).
func (p *Pool) Allocated() int { return int(p.allocated.Load()) }

// Idle is how many buffers wait in the pool.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
