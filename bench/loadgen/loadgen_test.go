package loadgen

import (
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSendReceive paces a few thousand datagrams through loopback in every
// mode and checks the receiver counts them all, in order.
func TestSendReceive(t *testing.T) {
	for _, tc := range []struct {
		name     string
		gso, gro bool
		size     int
	}{
		{"plain", false, false, 200},
		{"gso", true, false, 1200},
		{"gso-gro", true, true, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReceiver(tc.gro, 8<<20)
			if err != nil {
				t.Fatal(err)
			}
			go r.Run()
			defer r.Close()
			s, err := NewSender(SenderConfig{Dst: r.Addr(), Size: tc.size, GSO: tc.gso})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stop := make(chan struct{})
			errc := make(chan error, 1)
			go func() { errc <- s.Run(50000, stop) }()
			deadline := time.Now().Add(30 * time.Second)
			for s.Sent() < 5000 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(stop)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			sent := s.Sent()
			for r.Stats().Datagrams < sent && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			st := r.Stats()
			if st.Datagrams != sent || st.Gaps != 0 || st.Late != 0 {
				t.Errorf("sent %d, received %+v (drops %d)", sent, st, r.SockDrops())
			}
			if st.Bytes != sent*uint64(tc.size) {
				t.Errorf("bytes %d, want %d", st.Bytes, sent*uint64(tc.size))
			}
			if runtime.GOOS == "linux" && tc.gro && !r.GRO() {
				t.Log("kernel refused UDP_GRO")
			}
		})
	}
}

// TestSampler checks that a thread's CPU clock moves while it works.
func TestSampler(t *testing.T) {
	var ts ThreadSampler
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		n := uint64(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 10000 {
				n++
			}
			ts.Poll(n)
		}
	}()
	a, ok1 := ts.Sample(5 * time.Second)
	time.Sleep(20 * time.Millisecond)
	b, ok2 := ts.Sample(5 * time.Second)
	close(stop)
	<-done
	if !ok1 || !ok2 || b.Count <= a.Count {
		t.Fatalf("samples %+v %+v", a, b)
	}
	if runtime.GOOS == "linux" && b.CPU <= a.CPU {
		t.Errorf("thread CPU did not move: %v → %v", a.CPU, b.CPU)
	}
	if _, ok := ts.Sample(10 * time.Millisecond); ok {
		t.Error("a sample with nobody polling succeeded")
	}
}
