package rtpload

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestDedupe(t *testing.T) {
	var st streamState
	for _, n := range []uint64{0, 1, 2, 2, 5, 3, 4, 4, 70000, 70000 - 65536, 69999} {
		st.take(n)
	}
	// 0,1,2,5,3,4,70000,4464 (too old: counted),69999
	if got := st.unique.Load(); got != 9 {
		t.Errorf("unique %d, want 9", got)
	}
	if got := st.dups.Load(); got != 2 {
		t.Errorf("dups %d, want 2", got)
	}
}

func TestSenderToSink(t *testing.T) {
	k, err := NewSink(3)
	if err != nil {
		t.Fatal(err)
	}
	go k.Run()
	defer k.Close()
	dst := k.Addr()
	s, err := NewSender([]netip.AddrPort{dst, dst, dst}, 200, 96)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k.Record(true)
	sendFor(t, s, 3000, 200*time.Millisecond)
	waitReceived(k, s)
	var got uint64
	for i := range 3 {
		if k.Received(i) != s.Next(i) {
			t.Errorf("stream %d: received %d of %d", i, k.Received(i), s.Next(i))
		}
		got += k.Received(i)
	}
	if got == 0 || got != s.Sent() || k.Latency.Count() != got || k.AppLatency.Count() != got {
		t.Errorf("sent %d, received %d, latencies %d and %d", s.Sent(), got, k.Latency.Count(), k.AppLatency.Count())
	}
	// A floor makes earlier packets stale.
	k.SetFloor(0, s.Next(0))
	if k.Received(0) != 0 {
		t.Error("floor did not reset the count")
	}
}

// sendFor runs s at rate for d.
func sendFor(t *testing.T, s *Sender, rate float64, d time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(rate, stop) }()
	time.Sleep(d)
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// waitReceived waits up to 5 s for k to receive all that s sent.
func waitReceived(k *Sink, s *Sender) {
	received := func() (n uint64) {
		for i := range s.Streams() {
			n += k.Received(i)
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && received() < s.Sent(); {
		time.Sleep(10 * time.Millisecond)
	}
}

// Latency ends when a packet arrives in the sink's socket, AppLatency when
// the sink reads it: packets that wait in the socket while the sink does
// not read have a short Latency and a long AppLatency.
func TestSinkArrivalTime(t *testing.T) {
	k, err := NewSink(1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	s, err := NewSender([]netip.AddrPort{k.Addr()}, 200, 96)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k.Record(true)
	sendFor(t, s, 1000, 100*time.Millisecond)
	const wait = 300 * time.Millisecond
	time.Sleep(wait) // every packet waits in the socket at least this long
	go k.Run()
	waitReceived(k, s)
	if n := k.Received(0); n == 0 || n != s.Sent() || k.Latency.Count() != n || k.AppLatency.Count() != n {
		t.Fatalf("sent %d, received %d, latencies %d and %d", s.Sent(), n, k.Latency.Count(), k.AppLatency.Count())
	}
	// Quantiles are bucket middles, a few percent off.
	if got := k.AppLatency.Quantile(0); got < wait*9/10 {
		t.Errorf("shortest read latency %v, want about %v or more", got, wait)
	}
	// Arrival follows the send within a loopback hop; allow a slow machine.
	if got := k.Latency.Quantile(1); got >= wait/2 {
		t.Errorf("longest arrival latency %v, want well under %v", got, wait)
	}
}

// In frames, each stream's share of a frame leaves as one run, stream after
// stream, as from cameras of their own; every stream gets its share.
func TestSenderFrames(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(4 << 20)
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	const streams, rate, frames = 3, 3000, 10
	s, err := NewSender([]netip.AddrPort{dst, dst, dst}, 200, 96)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Frames = frames
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(rate, stop) }()
	time.Sleep(450 * time.Millisecond) // 5 frames begun
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var order []int
	counts := make([]uint64, streams)
	buf := make([]byte, 1500)
	for uint64(len(order)) < s.Sent() {
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d packets: %v", len(order), s.Sent(), err)
		}
		st, _, _, ok := Parse(buf[:n])
		if !ok {
			t.Fatal("unparsable packet")
		}
		order = append(order, st)
		counts[st]++
	}
	runs := 1
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1] {
			runs++
		}
	}
	nframes := len(order) / (rate / frames)
	if nframes < 3 || runs > streams*(nframes+1) {
		t.Errorf("%d packets in %d runs over %d frames: streams interleaved", len(order), runs, nframes)
	}
	for i, c := range counts {
		if c != s.Next(i) || c != uint64(len(order)/streams) {
			t.Errorf("stream %d: %d packets, Next %d, of %d", i, c, s.Next(i), len(order))
		}
	}
}
