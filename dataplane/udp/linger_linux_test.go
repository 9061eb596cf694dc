package udp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
)

func TestHotter(t *testing.T) {
	for _, c := range []struct {
		on         bool
		rate, want float64
		result     bool
	}{
		{false, 100, 100, true},
		{false, 99, 100, false},
		{true, 99, 100, true},
		{true, 75, 100, true},
		{true, 74, 100, false},
		{false, 0, 100, false},
	} {
		if got := hotter(c.on, c.rate, c.want); got != c.result {
			t.Errorf("hotter(%v, %v, %v) = %v", c.on, c.rate, c.want, got)
		}
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		s    portLinger
		want bool
	}{
		{portLinger{reads: 100, hits: 100}, true},             // waiting, 1,000 wake-ups/s: poll
		{portLinger{reads: 19, hits: 19}, false},              // 190 wake-ups/s (runs, or sparse): wait
		{portLinger{reads: 100, hits: 16, poll: true}, true},  // polling, 16% of ticks bring some: poll
		{portLinger{reads: 100, hits: 14, poll: true}, false}, // 14% (runs, or sparse): wait
	} {
		if got := c.s.judge(100 * time.Millisecond); got != c.want {
			t.Errorf("%+v: judge = %v", c.s, got)
		}
	}
}

// timed is a sink recording, per datagram, how long it took from the send
// time it carries to its delivery, and the size of each batch; it checks
// that the sequence numbers have no gap.
type timed struct {
	mu      sync.Mutex
	next    uint64
	holds   []time.Duration
	batches []int
	gaps    int
	got     atomic.Int64
}

func (s *timed) Receive(batch []dataplane.Packet) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(batch))
	for _, p := range batch {
		seq := binary.BigEndian.Uint64(p.Data)
		if seq != s.next {
			s.gaps++
		}
		s.next = seq + 1
		s.holds = append(s.holds, time.Duration(now-int64(binary.BigEndian.Uint64(p.Data[8:]))))
	}
	s.got.Add(int64(len(batch)))
}

// take returns what was recorded since the last take.
func (s *timed) take() (holds []time.Duration, batches []int, gaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	holds, batches, gaps = s.holds, s.batches, s.gaps
	s.holds, s.batches, s.gaps = nil, nil, 0
	return
}

// stamped sends datagram seq to dst carrying its send time.
func stamped(t *testing.T, from interface {
	WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
}, dst netip.AddrPort, seq uint64) {
	var b [100]byte
	binary.BigEndian.PutUint64(b[:], seq)
	binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	if _, err := from.WriteToUDPAddrPort(b[:], dst); err != nil {
		t.Error(err)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestLinger drives two ports of a plane with Linger on: over the rate
// they are read on the tick, in batches, losing nothing; below it each
// datagram is handed on as it arrives; Close while polling stops the
// worker and leaves no descriptor behind.
func TestLinger(t *testing.T) {
	const tick = 20 * time.Millisecond
	fds := openFDs(t)
	lo, hi := freeRange(t, 2)
	dp, err := dataplane.New("mmsg", dataplane.Config{Addr: loopback, PortMin: lo, PortMax: hi,
		Linger: tick, LingerRate: 500})
	if err != nil {
		t.Fatal(err)
	}
	ports := []dataplane.Port{openPort(t, dp), openPort(t, dp)}
	sinks := []*timed{{}, {}}
	for i, p := range ports {
		p.SetSink(sinks[i])
	}
	s := sender(t)
	var seq uint64
	// send paces one datagram to each port every gap, for d.
	send := func(d, gap time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(gap) {
			for _, p := range ports {
				stamped(t, s, p.LocalAddr(), seq)
			}
			seq++
		}
	}
	settle := func() {
		waitFor(t, "every datagram", func() bool {
			return sinks[0].got.Load() == int64(seq) && sinks[1].got.Load() == int64(seq)
		})
	}

	// Warm up past both rates, then measure.
	send(300*time.Millisecond, time.Millisecond)
	settle()
	for _, k := range sinks {
		k.take()
	}
	var most atomic.Int64 // ports seen polling at once
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for end := time.Now().Add(800 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			most.Store(max(most.Load(), int64(dp.Totals().Polling)))
		}
	}()
	send(time.Second, time.Millisecond)
	settle()
	<-sampled
	if n := most.Load(); n != 2 {
		t.Errorf("Totals().Polling was at most %d while both ports were busy", n)
	}
	for i, k := range sinks {
		holds, batches, gaps := k.take()
		if gaps != 0 {
			t.Errorf("port %d: %d gaps in the sequence", i, gaps)
		}
		// At about 1,000 datagrams/s a 20 ms tick gathers about 20.
		if mean := float64(len(holds)) / float64(len(batches)); mean < 5 {
			t.Errorf("port %d: %.1f datagrams per batch while busy, want batches gathered over the tick", i, mean)
		}
		if m := median(holds); m > tick+10*time.Millisecond {
			t.Errorf("port %d: median hold %v while busy, want at most about the tick (%v)", i, m, tick)
		}
	}

	// Quiet: the workers go back to waiting, so a sparse datagram is not
	// held until a tick.
	time.Sleep(300 * time.Millisecond)
	send(400*time.Millisecond, 20*time.Millisecond)
	settle()
	if n := dp.Totals().Polling; n != 0 {
		t.Errorf("Totals().Polling = %d with sparse traffic", n)
	}
	for i, k := range sinks {
		holds, batches, _ := k.take()
		if m := median(holds); m > tick/4 {
			t.Errorf("port %d: median delay %v of sparse datagrams (%d in %d batches), want them handed on as they arrive", i, m, len(holds), len(batches))
		}
	}

	// A full batch is read again at once, not after the tick: 2,000
	// datagrams sent back to back arrive in far less than the 31 ticks
	// that 64 a tick would take.
	send(300*time.Millisecond, time.Millisecond)
	settle()
	start := time.Now()
	for range 2000 {
		stamped(t, s, ports[0].LocalAddr(), seq)
		stamped(t, s, ports[1].LocalAddr(), seq)
		seq++
	}
	settle()
	if d := time.Since(start); d > 31*tick/2 {
		t.Errorf("2,000 datagrams a port took %v to arrive while busy", d)
	}

	// Close while busy (polling).
	send(200*time.Millisecond, time.Millisecond)
	if err := dp.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := dp.Totals().Polling; n != 0 {
		t.Errorf("Totals().Polling = %d after Close", n)
	}
	for i, k := range sinks {
		if _, _, gaps := k.take(); gaps != 0 {
			t.Errorf("port %d: %d gaps", i, gaps)
		}
	}
	if n := openFDs(t); n != fds+1 { // + the sender's socket
		t.Errorf("%d descriptors open after Close, %d before the dataplane (and one for the sender)", n, fds)
	}
}

// TestLingerRuns: a port whose datagrams come in runs (a camera's frames),
// over the plane's rate, wakes once a run or so; polling it would leave
// most ticks empty and hold each run until one. Having polled during a
// paced warm-up, it goes back to waiting.
func TestLingerRuns(t *testing.T) {
	const tick = 4 * time.Millisecond
	lo, hi := freeRange(t, 1)
	dp, err := dataplane.New("mmsg", dataplane.Config{Addr: loopback, PortMin: lo, PortMax: hi,
		Linger: tick, LingerRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	p := openPort(t, dp)
	k := &timed{}
	p.SetSink(k)
	s := sender(t)
	var seq uint64
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
		stamped(t, s, p.LocalAddr(), seq)
		seq++
	}
	// Runs of 40, 30 ticks apart, as 30 frames a second would be to a
	// 1 ms tick.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(30 * tick) {
		for range 40 {
			stamped(t, s, p.LocalAddr(), seq)
			seq++
		}
	}
	waitFor(t, "every datagram", func() bool { return k.got.Load() == int64(seq) })
	holds, batches, gaps := k.take()
	if gaps != 0 {
		t.Errorf("%d gaps", gaps)
	}
	if m := median(holds); m > tick/4 {
		t.Errorf("median delay %v (%d datagrams in %d batches), want runs handed on as they arrive", m, len(holds), len(batches))
	}
}
