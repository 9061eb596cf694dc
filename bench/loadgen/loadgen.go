// Package loadgen is the benchmark suite's traffic harness: a paced UDP
// sender of numbered datagrams, a counting receiver that checks their
// numbers, and per-thread CPU accounting so a scenario can tell the cost of
// the thing under test from the cost of the harness around it.
//
// Datagrams carry their sequence number big-endian in their first 8 bytes
// (so the smallest is 8 bytes); the rest is filler.
//
// Sender and Receiver each run on their own goroutine locked to an OS
// thread, which is what makes their CPU time measurable (RUSAGE_THREAD on
// Linux). On Linux they use sendmmsg/recvmmsg (optionally GSO/GRO) so that
// the harness stays cheap next to what it measures; elsewhere they fall back
// to the net package, and thread CPU time is unknown.
package loadgen

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// MinSize is the smallest datagram: the sequence number.
const MinSize = 8

// Stamp writes seq into b.
func Stamp(b []byte, seq uint64) { binary.BigEndian.PutUint64(b, seq) }

// Seq reads the sequence number of b (len(b) >= MinSize).
func Seq(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// Clock is one sample of a thread's CPU time together with a count the
// thread keeps (datagrams so far), taken at the same instant.
type Clock struct {
	CPU   time.Duration // user+system CPU of the thread; -1 if unknown
	Count uint64
}

// ThreadSampler reads the CPU time of a thread that only the thread itself
// can read (RUSAGE_THREAD). The owner calls Poll in its loop, which costs
// one atomic load while nobody asks; Sample asks from any goroutine and
// waits for the owner to answer.
type ThreadSampler struct {
	req, ans atomic.Uint32
	cpu      atomic.Int64
	count    atomic.Uint64
}

// Poll answers a pending Sample; count is the owner's running count.
func (t *ThreadSampler) Poll(count uint64) {
	r := t.req.Load()
	if r == t.ans.Load() {
		return
	}
	t.cpu.Store(int64(ThreadCPU()))
	t.count.Store(count)
	t.ans.Store(r)
}

// Sample asks the owner for a sample and waits up to timeout for it (the
// owner only answers while it is busy, e.g. while traffic flows).
func (t *ThreadSampler) Sample(timeout time.Duration) (Clock, bool) {
	r := t.req.Add(1)
	deadline := time.Now().Add(timeout)
	for t.ans.Load() != r {
		if time.Now().After(deadline) {
			return Clock{CPU: -1}, false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return Clock{CPU: time.Duration(t.cpu.Load()), Count: t.count.Load()}, true
}

// ReceiverStats are what a Receiver counted.
type ReceiverStats struct {
	Datagrams uint64 // received
	Bytes     uint64
	Late      uint64 // arrived with a number lower than one already seen
	Gaps      uint64 // numbers skipped (lost, or late ones still to come)
	Stale     uint64 // numbered below the floor (SetFloor): not counted above
}
