package udp

import (
	"errors"
	"math/bits"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gw-project/gw/dataplane"
)

// counters are a port's statistics. Receive counters are written by the
// worker only, send counters by senders; padding keeps them on separate
// cache lines.
type counters struct {
	rxPackets, rxBytes, rxCalls atomic.Uint64
	hist                        [len(dataplane.BatchBuckets)]atomic.Uint64
	drops                       [dataplane.NumDropReasons]atomic.Uint64
	_                           [64]byte
	txPackets, txBytes, txCalls atomic.Uint64
	_                           [64]byte
}

// histIndex is the BatchHist bucket of a receive of n datagrams (n >= 1):
// the buckets are powers of two, so it is the bit length of n-1.
func histIndex(n int) int {
	i := bits.Len(uint(n - 1))
	if i >= len(dataplane.BatchBuckets) {
		i = len(dataplane.BatchBuckets) - 1
	}
	return i
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

type sinkRef struct{ s dataplane.Sink }

// base is the part of a port both implementations share: identity, sink,
// counters, worker lifecycle.
type base struct {
	pl     *plane
	num    int // port number from the allocator; 0 for egress
	local  netip.AddrPort
	conn   *net.UDPConn    // nil once an mmsg port has detached its socket
	rc     syscall.RawConn // the socket, for system calls
	egress bool            // send-only: no worker
	cpu    int             // CPU to pin the worker to, -1 for none

	sink atomic.Pointer[sinkRef]
	feat atomic.Uint32
	c    counters

	closeOnce sync.Once
	closing   atomic.Bool
	done      chan struct{} // closed when the worker has exited and cleaned up
	tid       atomic.Int64  // worker's OS thread while in the sink (Linux), else 0

	// release frees the implementation's resources (buffers, mappings); it
	// runs once, after the worker has exited.
	release func()
	// closeSock closes the socket, waking a worker that waits on it.
	closeSock func() error
}

func (b *base) init(pl *plane, num int, conn *net.UDPConn, egress bool) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	b.pl, b.num, b.conn, b.rc, b.egress = pl, num, conn, rc, egress
	b.closeSock = conn.Close
	b.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	b.local = netip.AddrPortFrom(b.local.Addr().Unmap(), b.local.Port())
	b.done = make(chan struct{})
	b.cpu = -1
	if !egress {
		b.cpu = pl.cpuFor()
	}
	return nil
}

func (b *base) b() *base { return b }

func (b *base) LocalAddr() netip.AddrPort { return b.local }

func (b *base) SetSink(s dataplane.Sink) {
	if s == nil {
		b.sink.Store(nil)
		return
	}
	b.sink.Store(&sinkRef{s})
}

func (b *base) addFeature(f dataplane.Features) {
	for {
		old := b.feat.Load()
		if b.feat.CompareAndSwap(old, old|uint32(f)) {
			return
		}
	}
}

func (b *base) dropFeature(f dataplane.Features) {
	for {
		old := b.feat.Load()
		if b.feat.CompareAndSwap(old, old&^uint32(f)) {
			return
		}
	}
}

// deliver hands one batch to the sink, or counts it dropped. It returns
// false once the port is closing: the worker then stops without calling the
// sink again.
func (b *base) deliver(r *sinkRef, batch []dataplane.Packet, nbytes int) bool {
	if b.closing.Load() {
		return false
	}
	if r == nil {
		b.c.drops[dataplane.DropNoSink].Add(uint64(len(batch)))
		return true
	}
	// Locked to its thread for the call, the worker is the only goroutine
	// that can run there, so Close can tell it is called from the sink by
	// comparing thread ids. Locking and unlocking a goroutine that does not
	// park in between costs no thread switch.
	runtime.LockOSThread()
	b.tid.Store(int64(gettid()))
	r.s.Receive(batch)
	b.tid.Store(0)
	runtime.UnlockOSThread()
	b.c.rxPackets.Add(uint64(len(batch)))
	b.c.rxBytes.Add(uint64(nbytes))
	return true
}

// startWorker runs loop on a goroutine of its own, locked to its thread and
// pinned to a CPU if configured, then cleans up.
//
// An unpinned worker is not locked: a locked goroutine that parks (waiting
// for datagrams) costs two thread switches per wake-up, the netpoller's
// thread handing its P to the locked thread, which the profile of a paced
// stream showed as close to half the app-facing gw's cycles.
func (b *base) startWorker(loop func()) {
	go func() {
		if b.cpu >= 0 {
			runtime.LockOSThread()
			if setAffinity(b.cpu) == nil {
				b.addFeature(dataplane.FeaturePinned)
			} else {
				runtime.UnlockOSThread()
			}
		}
		loop()
		b.finish()
		// A pinned worker returns locked: the runtime then ends the thread
		// rather than run other goroutines with its narrowed CPU mask.
	}()
}

// finish releases everything once no worker can touch it any more.
func (b *base) finish() {
	if b.release != nil {
		b.release()
	}
	if b.num != 0 {
		b.pl.ports.Release(b.num)
		b.pl.forget(b)
	}
	close(b.done)
}

// Close closes the socket, waits for the worker and frees the port number.
func (b *base) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closing.Store(true)
		err = b.closeSock()
		if b.egress {
			b.finish()
		}
	})
	if t := b.tid.Load(); t != 0 && t == int64(gettid()) {
		return err // called by our own sink: the worker ends when it returns
	}
	<-b.done
	return err
}

// readFailed decides what the worker does after a failed read: stop if the
// port is closing, else pause briefly (so a persistent error cannot spin a
// core) and go on.
func (b *base) readFailed(err error) (stop bool) {
	if b.closing.Load() || errors.Is(err, net.ErrClosed) {
		return true
	}
	time.Sleep(time.Millisecond)
	return false
}

// Stats snapshots the counters. The kernel's drop count is read fresh
// (SO_MEMINFO), not only as it last rode along with a datagram.
func (b *base) Stats() dataplane.Stats {
	if dataplane.Features(b.feat.Load())&dataplane.FeatureRxqOvfl != 0 {
		if d, ok := sockDrops(b.rc); ok {
			storeMax(&b.c.drops[dataplane.DropOverflow], d)
		}
	}
	var s dataplane.Stats
	s.RxPackets = b.c.rxPackets.Load()
	s.RxBytes = b.c.rxBytes.Load()
	s.RxSyscalls = b.c.rxCalls.Load()
	s.TxPackets = b.c.txPackets.Load()
	s.TxBytes = b.c.txBytes.Load()
	s.TxSyscalls = b.c.txCalls.Load()
	for i := range s.Drops {
		s.Drops[i] = b.c.drops[i].Load()
	}
	for i := range s.BatchHist {
		s.BatchHist[i] = b.c.hist[i].Load()
	}
	s.Features = dataplane.Features(b.feat.Load())
	return s
}
