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
	buf := make([]byte, 1500)
	for i := range uint32(n) {
		size := 100 + int(i%12)*100
		copy(buf, numbered(i, size))
		r.d.Write(buf[:size])
		clear(buf) // the Delivery must have copied
		if i%500 == 0 {
			time.Sleep(2 * time.Millisecond) // lone packets too
		}
	}
	r.d.Close()
	got := make([]byte, 2048)
	for i := range uint32(n) {
		_ = r.rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := r.rx.Read(got)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := numbered(i, 100+int(i%12)*100); string(got[:k]) != string(want) {
			t.Fatalf("datagram %d: got number %d, %d bytes", i, binary.BigEndian.Uint32(got), k)
		}
	}
	if r.d.Dropped() != 0 {
		t.Errorf("%d dropped", r.d.Dropped())
	}
	if idle, all := r.pool.Idle(), r.pool.Allocated(); idle != all {
		t.Errorf("%d of %d buffers not returned", all-idle, all)
	}
	r.d.Close() // again: no effect
}

// stalled blocks every Send until released.
type stalled struct {
	release chan struct{}
	mu      sync.Mutex
	sent    int
}

func (s *stalled) Send(pkts [][]byte, _ netip.AddrPort) (int, error) {
	<-s.release
	s.mu.Lock()
	s.sent += len(pkts)
	s.mu.Unlock()
	return len(pkts), nil
}

// A sender that stalls costs at most MaxQueued packets of memory; the rest
// are dropped and counted; Write never blocks on it.
func TestDeliveryBoundsAStalledSender(t *testing.T) {
	s := &stalled{release: make(chan struct{})}
	r := newDeliveryRig(t, s)
	p := numbered(1, 200)
	r.d.Write(p)
	time.Sleep(20 * time.Millisecond) // the goroutine now waits in Send with one packet
	const extra = 100
	for range MaxQueued + extra {
		r.d.Write(p)
	}
	if got := r.d.Dropped(); got != extra {
		t.Errorf("dropped %d, want %d", got, extra)
	}
	close(s.release)
	r.d.Close()
	if s.sent != 1+MaxQueued {
		t.Errorf("sent %d, want %d", s.sent, 1+MaxQueued)
	}
	r.d.Write(p) // after Close: dropped, not queued
	if got := r.d.Dropped(); got != extra+1 {
		t.Errorf("write after close: dropped %d, want %d", got, extra+1)
	}
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
