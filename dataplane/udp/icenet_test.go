package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5"
)

// iceRig is an ICE socket of an ICENet and a plain receiver.
type iceRig struct {
	g    *ICENet
	conn transport.UDPConn
	rx   *net.UDPConn
	dst  netip.AddrPort
}

func newICERig(t *testing.T) *iceRig {
	t.Helper()
	g := NewICENet(4<<20, 0, 0)
	c := openICE(t, g)
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadBuffer(4 << 20)
	t.Cleanup(func() { rx.Close() })
	return &iceRig{g: g, conn: c, rx: rx, dst: rx.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// openICE opens a loopback socket the way an ICE agent of g would; the
// test closes it.
func openICE(t *testing.T, g *ICENet) transport.UDPConn {
	t.Helper()
	n, err := g.Net()
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// packet is datagram number i of size bytes.
func icePacket(i uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, i)
	for k := 4; k < size; k++ {
		b[k] = byte(int(i) + k)
	}
	return b
}

// receive reads until n datagrams came or nothing comes for wait; it
// checks each against icePacket and returns their numbers.
func (r *iceRig) receive(t *testing.T, n int, wait time.Duration) []uint32 {
	t.Helper()
	var got []uint32
	buf := make([]byte, 65536)
	for len(got) < n {
		_ = r.rx.SetReadDeadline(time.Now().Add(wait))
		k, err := r.rx.Read(buf)
		if err != nil {
			break
		}
		i := binary.BigEndian.Uint32(buf)
		if want := icePacket(i, k); string(want) != string(buf[:k]) {
			t.Fatalf("datagram %d (%d bytes) damaged", i, k)
		}
		got = append(got, i)
	}
	return got
}

func inOrder(t *testing.T, got []uint32, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("received %d datagrams, want %d", len(got), n)
	}
	for k, i := range got {
		if i != uint32(k) {
			t.Fatalf("datagram %d arrived as number %d: out of order", i, k)
		}
	}
}

// Writes during a hold wait for the release, then all arrive intact and in
// order, whatever the write method; without a hold they leave at once.
func TestICENetHoldRelease(t *testing.T) {
	if !iceBatching {
		t.Skip("no write batching on " + runtime.GOOS)
	}
	r := newICERig(t)
	ap := r.conn.(interface {
		WriteToAddrPort([]byte, netip.AddrPort) (int, error)
	})
	ua := net.UDPAddrFromAddrPort(r.dst)
	const n = 200 // more than one queue's worth
	r.g.Hold()
	for i := range uint32(n) {
		size := 1200
		if i%50 == 49 {
			size = 300 // a short one ends a GSO run
		}
		if i == 120 {
			size = 3000 // bigger than a pool buffer: sent alone, in order
		}
		p := icePacket(i, size)
		var err error
		switch i % 3 {
		case 0:
			_, err = ap.WriteToAddrPort(p, r.dst)
		case 1:
			_, err = r.conn.WriteTo(p, ua)
		case 2:
			_, err = r.conn.WriteToUDP(p, ua)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Full queues and the big datagram went out early; the rest waits.
	early := r.receive(t, n, 100*time.Millisecond)
	if len(early) == n {
		t.Fatal("everything was sent during the hold")
	}
	r.g.Release()
	inOrder(t, append(early, r.receive(t, n-len(early), time.Second)...), n)

	// No hold: sent at once.
	if _, err := ap.WriteToAddrPort(icePacket(0, 100), r.dst); err != nil {
		t.Fatal(err)
	}
	inOrder(t, r.receive(t, 1, time.Second), 1)
	if idle, all := r.g.pool.Idle(), r.g.pool.Allocated(); idle != all {
		t.Errorf("%d of %d queue buffers not back in the pool", all-idle, all)
	}
}

// Writers on other goroutines while holds begin and end all the time, then
// with no hold at all: nothing is left in a queue.
func TestICENetConcurrentHolds(t *testing.T) {
	r := newICERig(t)
	const writers, each = 4, 500
	stop := make(chan struct{})
	var holders sync.WaitGroup
	for range 2 {
		holders.Add(1)
		go func() {
			defer holders.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.g.Hold()
				runtime.Gosched()
				r.g.Release()
			}
		}()
	}
	write := func(from, to int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from; i < to; i++ {
					p := icePacket(uint32(w*each+i), 200)
					if _, err := r.conn.WriteTo(p, net.UDPAddrFromAddrPort(r.dst)); err != nil {
						t.Error(err)
						return
					}
					if i%64 == 0 {
						time.Sleep(100 * time.Microsecond)
					}
				}
			}()
		}
		wg.Wait()
	}
	write(0, each-10)
	close(stop)
	holders.Wait()
	write(each-10, each)
	got := r.receive(t, writers*each, time.Second)
	seen := map[uint32]bool{}
	for _, i := range got {
		seen[i] = true
	}
	if len(got) != writers*each || len(seen) != writers*each {
		t.Fatalf("received %d datagrams (%d distinct), want %d", len(got), len(seen), writers*each)
	}
}

// Closing a socket sends what it queued, then writes fail.
func TestICENetCloseSendsQueue(t *testing.T) {
	if !iceBatching {
		t.Skip("no write batching on " + runtime.GOOS)
	}
	r := newICERig(t)
	r.g.Hold()
	defer r.g.Release()
	for i := range uint32(5) {
		if _, err := r.conn.WriteTo(icePacket(i, 500), net.UDPAddrFromAddrPort(r.dst)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.conn.Close(); err != nil {
		t.Fatal(err)
	}
	inOrder(t, r.receive(t, 5, time.Second), 5)
	if _, err := r.conn.WriteTo(icePacket(9, 500), net.UDPAddrFromAddrPort(r.dst)); err == nil {
		t.Error("write after close succeeded")
	}
}

// A held write and a release allocate nothing once the queue has grown.
func TestICENetHoldDoesNotAllocate(t *testing.T) {
	if !iceBatching {
		t.Skip("no write batching on " + runtime.GOOS)
	}
	r := newICERig(t)
	ap := r.conn.(interface {
		WriteToAddrPort([]byte, netip.AddrPort) (int, error)
	})
	p := icePacket(0, 1200)
	batch := func() {
		r.g.Hold()
		for range 8 {
			_, _ = ap.WriteToAddrPort(p, r.dst)
		}
		r.g.Release()
	}
	batch()
	if a := testing.AllocsPerRun(100, batch); a != 0 {
		t.Errorf("%v allocations per held batch", a)
	}
}

// The mDNS socket stays a *net.UDPConn: pion's mDNS reads through
// x/net/ipv4, which fails on anything else.
func TestICENetLeavesMulticastAlone(t *testing.T) {
	n, err := NewICENet(1<<20, 0, 0).Net()
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	if err != nil {
		t.Skip("no multicast socket here:", err)
	}
	defer c.Close()
	if _, ok := c.(*net.UDPConn); !ok {
		t.Errorf("multicast socket is a %T", c)
	}
}
