package mediarelay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/bufpool"
	_ "github.com/gw-project/gw/dataplane/udp"
)

// deliveryRig is a Delivery sending through a real dataplane's egress port
// to a UDP socket.
type deliveryRig struct {
	d    *Delivery
	rx   *net.UDPConn
	pool *bufpool.Pool
}

func newDeliveryRig(t *testing.T, out Sender) *deliveryRig {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadBuffer(4 << 20)
	t.Cleanup(func() { rx.Close() })
	if out == nil {
		dp, err := dataplane.New(dataplane.DefaultName(), dataplane.Config{Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 47000, PortMax: 47009})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dp.Close() })
		out = dp.Egress()
	}
	pool := bufpool.New(1500)
	return &deliveryRig{d: NewDelivery(out, rx.LocalAddr().(*net.UDPAddr).AddrPort(), pool), rx: rx, pool: pool}
}

func numbered(i uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, i)
	for k := 4; k < size; k++ {
		b[k] = byte(int(i) * k)
	}
	return b
}

// Bursts and lone packets all arrive, intact and in order; the writer's
// buffer is free when Write returns; Close sends what is left and returns
// every buffer.
func TestDeliveryOrderAndIntegrity(t *testing.T) {
	r := newDeliveryRig(t, nil)
	const n = 3000
	size := func(i uint32) int { return 100 + int(i%12)*100 }
	// Read as it arrives: the test is of the Delivery, not of how much a
	// socket buffer holds.
	got := make(chan []byte, n)
	go func() {
		for {
			b := make([]byte, 2048)
			_ = r.rx.SetReadDeadline(time.Now().Add(3 * time.Second))
			k, err := r.rx.Read(b)
			if err != nil {
				close(got)
				return
			}
			got <- b[:k]
		}
	}()
	buf := make([]byte, 1500)
	for i := range uint32(n) {
		copy(buf, numbered(i, size(i)))
		r.d.Write(buf[:size(i)])
		clear(buf) // the Delivery must have copied
		if i%500 == 0 {
			time.Sleep(2 * time.Millisecond) // lone packets too
		}
	}
	r.d.Close()
	for i := range uint32(n) {
		b, ok := <-got
		if !ok {
			t.Fatalf("datagram %d never arrived", i)
		}
		if want := numbered(i, size(i)); string(b) != string(want) {
			t.Fatalf("datagram %d: got number %d, %d bytes", i, binary.BigEndian.Uint32(b), len(b))
		}
	}
	if idle, all := r.pool.Idle(), r.pool.Allocated(); idle != all {
		t.Errorf("%d of %d buffers not returned", all-idle, all)
	}
	r.d.Close() // again: no effect
}

// stalled blocks every Send until released; entered hears of each Send.
type stalled struct {
	release chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	sent    int
}

func (s *stalled) Send(pkts [][]byte, _ netip.AddrPort) (int, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	s.mu.Lock()
	s.sent += len(pkts)
	s.mu.Unlock()
	return len(pkts), nil
}

// A sender that stalls holds the writer back once MaxQueued packets wait
// (the queue, and its memory, stay bounded), and nothing is lost: when it
// resumes, everything goes, in order.
func TestDeliveryStalledSenderHoldsTheWriter(t *testing.T) {
	s := &stalled{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := newDeliveryRig(t, s)
	r.d.Write(numbered(0, 200))
	<-s.entered // the goroutine now waits in Send with one packet
	const total = 1 + MaxQueued + 100
	wrote := make(chan int, 1)
	go func() {
		i := 1
		for ; i < MaxQueued; i++ {
			r.d.Write(numbered(uint32(i), 200))
		}
		wrote <- i
		for ; i < total; i++ {
			r.d.Write(numbered(uint32(i), 200))
		}
		wrote <- i
	}()
	if got := <-wrote; got != MaxQueued {
		t.Fatalf("wrote %d", got)
	}
	select {
	case <-wrote:
		t.Fatal("the writer was not held back by the stalled sender")
	case <-time.After(100 * time.Millisecond):
	}
	if allocated := r.pool.Allocated(); allocated > MaxQueued+200 {
		t.Errorf("%d buffers for a queue bounded at %d", allocated, MaxQueued)
	}
	close(s.release)
	<-wrote
	r.d.Close()
	if s.sent != total {
		t.Errorf("sent %d, want %d", s.sent, total)
	}
	r.d.Write(numbered(1, 200)) // after Close: ignored
	if idle, all := r.pool.Idle(), r.pool.Allocated(); idle != all {
		t.Errorf("%d of %d buffers not returned", all-idle, all)
	}
}

// The packet path allocates nothing.
func TestDeliveryWriteDoesNotAllocate(t *testing.T) {
	r := newDeliveryRig(t, nil)
	defer r.d.Close()
	p := numbered(1, 1200)
	r.d.Write(p)
	if a := testing.AllocsPerRun(1000, func() { r.d.Write(p) }); a != 0 {
		t.Errorf("%v allocations per Write", a)
	}
}
