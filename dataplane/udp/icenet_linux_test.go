package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// icePair is two ICE sockets of one ICENet, as gw A's and gw B's would be.
type icePair struct {
	g      *ICENet
	tx, rx *iceConn
	dst    netip.AddrPort
}

func newICEPair(t *testing.T) *icePair {
	t.Helper()
	g := NewICENet(4<<20, 0, 0)
	open := func() *iceConn { return openICE(t, g).(*iceConn) }
	p := &icePair{g: g, tx: open(), rx: open()}
	p.dst = p.rx.LocalAddr().(*net.UDPAddr).AddrPort()
	return p
}

// A burst written during a hold leaves with GSO and, with UDP_GRO on the
// receiving socket, arrives coalesced; reads hand it out one datagram at a
// time, intact, in order, from the sender's address, the short last one
// of a run included. Datagrams sent one by one come as they are.
func TestICEReceiveCoalesced(t *testing.T) {
	p := newICEPair(t)
	if !p.rx.rx.on {
		t.Skip("no UDP_GRO on this kernel")
	}
	src := p.tx.LocalAddr().(*net.UDPAddr).AddrPort()
	sizes := []int{}
	for i := range 150 {
		switch {
		case i%50 == 49:
			sizes = append(sizes, 300) // ends a run
		default:
			sizes = append(sizes, 1200)
		}
	}
	p.g.Hold()
	for i, size := range sizes {
		if _, err := p.tx.WriteToAddrPort(icePacket(uint32(i), size), p.dst); err != nil {
			t.Fatal(err)
		}
	}
	p.g.Release()
	// Then lone datagrams of other sizes.
	for i := len(sizes); i < 155; i++ {
		sizes = append(sizes, 100+i)
		if _, err := p.tx.WriteToAddrPort(icePacket(uint32(i), 100+i), p.dst); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8192)
	_ = p.rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, size := range sizes {
		n, from, err := p.rx.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if from != src {
			t.Fatalf("datagram %d from %v, want %v", i, from, src)
		}
		if n != size || string(buf[:n]) != string(icePacket(uint32(i), size)) {
			t.Fatalf("datagram %d: %d bytes (number %d), want %d bytes", i, n, binary.BigEndian.Uint32(buf), size)
		}
	}
	t.Logf("gso %v coalesced %d", p.tx.tx.b.gso.Load(), p.rx.rx.coalesced.Load())
	if p.tx.tx.b.gso.Load() && p.rx.rx.coalesced.Load() == 0 {
		t.Error("a GSO burst over loopback to a UDP_GRO socket arrived uncoalesced")
	}
	if idle, all := p.g.rxPool.Idle(), p.g.rxPool.Allocated(); idle != all {
		t.Errorf("%d of %d receive buffers held with nothing left to read", all-idle, all)
	}
}

// Every read method goes through the same queue: none skips what is left
// of a coalesced buffer. A buffer too small for a datagram gets its head,
// as with a plain UDP read.
func TestICEReceiveEveryMethod(t *testing.T) {
	p := newICEPair(t)
	const n = 60
	p.g.Hold()
	for i := range uint32(n) {
		_, _ = p.tx.WriteToAddrPort(icePacket(i, 1000), p.dst)
	}
	p.g.Release()
	_ = p.rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for i := range uint32(n) {
		var k int
		var err error
		switch i % 4 {
		case 0:
			k, _, err = p.rx.ReadFromAddrPort(buf)
		case 1:
			k, _, err = p.rx.ReadFromUDPAddrPort(buf)
		case 2:
			k, _, err = p.rx.ReadFrom(buf)
		case 3:
			k, _, err = p.rx.ReadFromUDP(buf[:10]) // too small
			if err == nil && (k != 10 || binary.BigEndian.Uint32(buf) != i) {
				t.Fatalf("short read of datagram %d: %d bytes, number %d", i, k, binary.BigEndian.Uint32(buf))
			}
			continue
		}
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if got := binary.BigEndian.Uint32(buf); k != 1000 || got != i {
			t.Fatalf("datagram %d: %d bytes, number %d", i, k, got)
		}
	}
}

// Close ends a read that waits, with net.ErrClosed (pion's reader stops
// quietly on it), and the buffer goes back.
func TestICEReceiveClose(t *testing.T) {
	p := newICEPair(t)
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.rx.ReadFromAddrPort(make([]byte, 1500))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.rx.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the read")
	}
	if p.g.rxPool != nil {
		if idle, all := p.g.rxPool.Idle(), p.g.rxPool.Allocated(); idle != all {
			t.Errorf("%d of %d receive buffers not returned", all-idle, all)
		}
	}
}

// Reading allocates nothing, coalesced or not.
func TestICEReceiveDoesNotAllocate(t *testing.T) {
	p := newICEPair(t)
	buf := make([]byte, 2048)
	pkt := icePacket(1, 1200)
	burst := func() {
		p.g.Hold()
		for range 8 {
			_, _ = p.tx.WriteToAddrPort(pkt, p.dst)
		}
		p.g.Release()
		for range 8 {
			_, _, _ = p.rx.ReadFromAddrPort(buf)
		}
	}
	burst()
	if a := testing.AllocsPerRun(100, burst); a != 0 {
		t.Errorf("%v allocations per burst sent and read", a)
	}
	lone := func() {
		_, _ = p.tx.WriteToAddrPort(pkt, p.dst)
		_, _, _ = p.rx.ReadFromAddrPort(buf)
	}
	if a := testing.AllocsPerRun(100, lone); a != 0 {
		t.Errorf("%v allocations per datagram sent and read", a)
	}
}

// A read deadline ends a waiting read with a timeout (pion's STUN
// gathering reads this way), and the socket reads on afterwards.
func TestICEReceiveDeadline(t *testing.T) {
	p := newICEPair(t)
	_ = p.rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 1500)
	_, _, err := p.rx.ReadFromAddrPort(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	_ = p.rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.tx.WriteToAddrPort(icePacket(7, 500), p.dst); err != nil {
		t.Fatal(err)
	}
	n, _, err := p.rx.ReadFromAddrPort(buf)
	if err != nil || n != 500 || binary.BigEndian.Uint32(buf) != 7 {
		t.Fatalf("read after a timeout: %d bytes, %v", n, err)
	}
	if p.g.rxPool != nil {
		if idle, all := p.g.rxPool.Idle(), p.g.rxPool.Allocated(); idle != all {
			t.Errorf("%d of %d receive buffers held", all-idle, all)
		}
	}
}

// A datagram from a link-local IPv6 address comes with its interface as
// the zone, as the net package gives it: pion matches link-local
// candidates with the zone.
func TestICEReceiveLinkLocalZone(t *testing.T) {
	var ip net.IP
	var name string
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsLinkLocalUnicast() && ifi.Flags&net.FlagUp != 0 {
				ip, name = n.IP, ifi.Name
			}
		}
	}
	if ip == nil {
		t.Skip("no interface with a link-local IPv6 address")
	}
	g := NewICENet(1<<20, 0, 0)
	n, err := g.Net()
	if err != nil {
		t.Fatal(err)
	}
	laddr := &net.UDPAddr{IP: ip, Zone: name}
	c, err := n.ListenUDP("udp6", laddr)
	if err != nil {
		t.Skip("cannot bind", laddr, err)
	}
	defer c.Close()
	rx := c.(*iceConn)
	tx, err := net.ListenUDP("udp6", laddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := tx.WriteToUDP(icePacket(3, 200), rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Skip("cannot send over", name, err)
	}
	_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	k, from, err := rx.ReadFromAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := tx.LocalAddr().(*net.UDPAddr).AddrPort(); from != want || k != 200 {
		t.Errorf("from %v (%d bytes), want %v", from, k, want)
	}
}

// On a dual-stack socket an IPv4 source comes in the form the net package
// gives (IPv4-mapped), as pion saw it before GRO reads.
func TestICEReceiveMappedSourceAsNetGivesIt(t *testing.T) {
	g := NewICENet(1<<20, 0, 0)
	n, err := g.Net()
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		t.Skip("no dual-stack socket:", err)
	}
	defer c.Close()
	plain, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	tx := sender(t)
	port := func(a net.Addr) int { return a.(*net.UDPAddr).Port }
	buf := make([]byte, 1500)
	var got [2]netip.AddrPort
	for i, rx := range []interface {
		ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
		SetReadDeadline(time.Time) error
		LocalAddr() net.Addr
	}{c.(*iceConn), plain} {
		if _, err := tx.WriteToUDP(icePacket(1, 100), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port(rx.LocalAddr())}); err != nil {
			t.Fatal(err)
		}
		_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got[i], err = rx.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	if got[0] != got[1] {
		t.Errorf("ICE socket: source %v; the net package gives %v", got[0], got[1])
	}
}

// The sockets ICE opens through ICENet get the receive buffer asked for
// (Linux reports twice the size set).
func TestICENetReceiveBuffer(t *testing.T) {
	const want = 1 << 20
	n, err := NewICENet(want, 0, 0).Net()
	if err != nil {
		t.Fatal(err)
	}
	u, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	p, err := n.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []any{u, p} {
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		_ = rc.Control(func(fd uintptr) { got, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
		if err != nil {
			t.Fatal(err)
		}
		if got < want {
			t.Errorf("%T: SO_RCVBUF %d, want at least %d", c, got, want)
		}
	}
}

// lingerState is what the socket's reader decided last: whether it polls,
// and whether it has a registered duplicate to wait on. Only while no read
// is running.
func (c *iceConn) lingerState() (poll, waiter bool) {
	c.rx.mu.Lock()
	defer c.rx.mu.Unlock()
	c.rx.wmu.Lock()
	defer c.rx.wmu.Unlock()
	return c.rx.poll, c.rx.waiter != nil
}

// TestICEReceiveLingers: with the ICENet's linger, a socket read once a
// millisecond or so polls on the tick, with nothing registered with the
// netpoller, and loses nothing; a read deadline still ends a polling read;
// and once the traffic stops it waits for each datagram again.
func TestICEReceiveLingers(t *testing.T) {
	const tick = 5 * time.Millisecond
	fds := openFDs(t)
	g := NewICENet(4<<20, tick, 200)
	tx, rx := openICE(t, g).(*iceConn), openICE(t, g).(*iceConn)
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	// One descriptor each until a read waits: the net.UDPConn the network
	// made is closed.
	if d := openFDs(t) - fds; d != 2 {
		t.Errorf("%d descriptors for two sockets before any read, want 2", d)
	}

	const n = 1000
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 1500)
		_ = rx.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := range uint32(n) {
			k, _, err := rx.ReadFromAddrPort(buf)
			if err != nil {
				errc <- err
				return
			}
			if got := binary.BigEndian.Uint32(buf); k != 200 || got != i {
				errc <- fmt.Errorf("datagram %d: %d bytes, number %d", i, k, got)
				return
			}
		}
		errc <- nil
	}()
	// 1,000 a second, caught up when a sleep runs long (a loaded machine),
	// so that the socket is read over 200 times a second whatever the
	// scheduler does.
	start := time.Now()
	for i := uint32(0); i < n; time.Sleep(time.Millisecond) {
		for due := min(n, uint32(time.Since(start)/time.Millisecond)+1); i < due; i++ {
			if _, err := tx.WriteToAddrPort(icePacket(i, 200), dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the paced datagrams were not all read")
	}
	polls := rx.rx.polls.Load()
	poll, waiter := rx.lingerState()
	t.Logf("%d reads on the tick for %d datagrams", polls, n)
	if polls == 0 || !poll {
		t.Fatalf("a socket read %d times a second never polled (%d polls; polling now: %v)", n, polls, poll)
	}
	if waiter {
		t.Error("a polling socket keeps a duplicate registered with the netpoller")
	}
	if n := g.Polling(); n != 1 {
		t.Errorf("Polling() = %d with one socket polling", n)
	}

	// A deadline ends a read that polls.
	_ = rx.SetReadDeadline(time.Now().Add(2 * tick))
	_, _, err := rx.ReadFromAddrPort(make([]byte, 1500))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("polling read past its deadline: %v, want a timeout", err)
	}

	// Quiet: the next read goes back to waiting, and gets a late datagram.
	_ = rx.SetReadDeadline(time.Time{})
	go func() {
		buf := make([]byte, 1500)
		k, _, err := rx.ReadFromAddrPort(buf)
		if err == nil && (k != 300 || binary.BigEndian.Uint32(buf) != n) {
			err = fmt.Errorf("late datagram: %d bytes, number %d", k, binary.BigEndian.Uint32(buf))
		}
		errc <- err
	}()
	waitFor(t, "the reader to wait again", func() bool {
		rx.rx.wmu.Lock()
		defer rx.rx.wmu.Unlock()
		return rx.rx.waiter != nil
	})
	quiet := rx.rx.polls.Load()
	time.Sleep(20 * tick)
	if p := rx.rx.polls.Load(); p != quiet {
		t.Errorf("%d polls while waiting", p-quiet)
	}
	if n := g.Polling(); n != 0 {
		t.Errorf("Polling() = %d with every socket waiting", n)
	}
	if _, err := tx.WriteToAddrPort(icePacket(n, 300), dst); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting socket did not read a late datagram")
	}
}

// Close while a socket polls ends its read with net.ErrClosed and leaves
// no descriptor open.
func TestICEReceiveLingerClose(t *testing.T) {
	const tick = 5 * time.Millisecond
	fds := openFDs(t)
	g := NewICENet(4<<20, tick, 200)
	n, err := g.Net()
	if err != nil {
		t.Fatal(err)
	}
	open := func() *iceConn {
		c, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c.(*iceConn)
	}
	tx, rx := open(), open()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := rx.ReadFromAddrPort(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	start := time.Now()
	for i := uint32(0); rx.rx.polls.Load() < 50; time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the socket never polled")
		}
		for due := uint32(time.Since(start)/time.Millisecond) + 1; i < due; i++ {
			_, _ = tx.WriteToAddrPort(icePacket(i, 200), dst)
		}
	}
	if n := g.Polling(); n != 1 {
		t.Errorf("Polling() = %d with one socket polling", n)
	}
	if err := rx.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := g.Polling(); n != 0 {
		t.Errorf("Polling() = %d after the polling socket closed", n)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("polling read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a polling read")
	}
	if err := rx.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	tx.Close()
	if got := openFDs(t); got != fds {
		t.Errorf("%d descriptors open after Close, %d before", got, fds)
	}
	if idle, all := g.rxPool.Idle(), g.rxPool.Allocated(); idle != all {
		t.Errorf("%d of %d receive buffers not returned", all-idle, all)
	}
}
