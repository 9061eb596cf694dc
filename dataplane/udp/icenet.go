package udp

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/bufpool"
)

// ICENet is the network pion's ICE agents open their UDP sockets through:
// the standard one, with four differences.
//
// Its sockets get a receive buffer of sockBuf bytes, like the dataplane's
// ports. With the kernel's default (about 200 KiB, some 90 datagrams of
// video), a reader that the scheduler holds off for a few milliseconds at
// 10,000 packets/s loses packets; a busy board does that.
//
// And writes can be held: between Hold and Release, what is written on any
// of its sockets waits in that socket's queue, and goes out at Release (or
// when a queue fills) with one sendmmsg per destination, runs of equal-size
// datagrams coalesced with GSO where the kernel has it. A dataplane worker
// holds around a batch from an app's port, so a burst of RTP (a video
// frame) costs the ICE socket a few system calls instead of one per
// packet. Writes from other goroutines during a hold wait too, at most
// until that Release. Off Linux, Hold does nothing.
//
// And on Linux its sockets read with UDP_GRO on: such a burst, sent with
// GSO by a peer (another gw, say), arrives as one buffer, read with one
// system call and handed to pion a datagram at a time; over loopback the
// sender's kernel then does not split it either.
//
// And on Linux, with a linger, a busy socket is read on the dataplane's
// linger tick rather than on each datagram's arrival (iceReceiver), so
// that paced SRTP from a peer costs the receiving gw one thread wake-up a
// tick for all its connections.
type ICENet struct {
	sockBuf int
	holds   atomic.Int32
	pool    *bufpool.Pool // queued datagrams' copies
	rxPool  *bufpool.Pool // receive buffers (iceReceiver), nil if none
	linger  *linger       // nil: reads always wait for a datagram
	mu      sync.Mutex
	dirty   []*iceConn // sockets with a queue since the last Release
}

// NewICENet makes the network; one serves every PeerConnection. Linger and
// lingerRate act on its sockets' reads as dataplane.Config's Linger and
// LingerRate do on a plane's ports (on Linux; 0 is off).
func NewICENet(sockBuf int, linger time.Duration, lingerRate int) *ICENet {
	n := &ICENet{sockBuf: sockBuf, pool: bufpool.New(dataplane.DefaultBufSize), linger: newLinger(linger, lingerRate)}
	if groBufSize > 0 {
		n.rxPool = bufpool.New(groBufSize)
	}
	return n
}

// Polling is how many of its sockets are read on the linger tick now.
func (n *ICENet) Polling() int {
	if n.linger == nil {
		return 0
	}
	return int(n.linger.polling.Load())
}

// Net is the transport.Net for one ICE agent (pion's SettingEngine.SetNet).
func (n *ICENet) Net() (transport.Net, error) {
	sn, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &iceNet{Net: sn, g: n}, nil
}

// Hold starts holding writes; every Hold needs its Release. Hold only
// around work that does not block, such as writing a batch of packets.
func (n *ICENet) Hold() {
	if iceBatching {
		n.holds.Add(1)
	}
}

// Release ends a Hold and sends everything queued on every socket.
func (n *ICENet) Release() {
	if !iceBatching {
		return
	}
	n.holds.Add(-1)
	n.mu.Lock()
	dirty := n.dirty
	n.dirty = nil
	n.mu.Unlock()
	for i, c := range dirty {
		c.mu.Lock()
		c.dirty = false
		c.flushLocked()
		c.mu.Unlock()
		dirty[i] = nil
	}
	n.mu.Lock()
	if n.dirty == nil {
		n.dirty = dirty[:0] // reuse the slice: no allocation per batch
	}
	n.mu.Unlock()
}

func (n *ICENet) held() bool { return n.holds.Load() > 0 }

// SetReadBuffer gives c a receive buffer of n bytes the way gw's own
// sockets get theirs: past the system's cap where the process may.
func SetReadBuffer(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		_ = c.SetReadBuffer(n)
		return
	}
	setRecvBuffer(rc, n, c.SetReadBuffer)
}

type iceNet struct {
	*stdnet.Net
	g *ICENet
}

func (n *iceNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil || laddr != nil && laddr.IP.IsMulticast() {
		// mDNS wants the *net.UDPConn itself (x/net/ipv4 takes nothing
		// else), and carries no media.
		return c, err
	}
	return n.wrap(c), nil
}

func (n *iceNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		return n.wrap(u), nil
	}
	return c, nil
}

// wrap grows c's receive buffer, puts the write queue in front of it and
// reads it coalesced where the kernel can. stdnet hands out *net.UDPConn;
// anything else goes as it is.
func (n *iceNet) wrap(c transport.UDPConn) transport.UDPConn {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return c
	}
	setRecvBuffer(rc, n.g.sockBuf, u.SetReadBuffer)
	ic := &iceConn{UDPConn: u, g: n.g}
	if err := ic.open(u, rc); err != nil {
		return c
	}
	return ic
}

// maxQueue is the most datagrams a socket queues before it sends anyway.
const maxQueue = 64

// iceConn is one ICE socket. Pion uses ReadFromAddrPort and
// WriteToAddrPort where a connection has them (ice.AddrPortReaderWriter);
// every write method goes through write, so nothing overtakes the queue,
// and the read methods pion's stack uses go through rx, so none skips a
// datagram of a coalesced buffer.
type iceConn struct {
	*net.UDPConn
	g  *ICENet
	tx iceSender
	rx iceReceiver

	mu     sync.Mutex
	bufs   [][]byte // queued datagrams (pool buffers)
	dsts   []netip.AddrPort
	dirty  bool // in g.dirty
	closed bool
}

func (c *iceConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.rx.read(c.UDPConn, b)
}

func (c *iceConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.rx.read(c.UDPConn, b)
}

func (c *iceConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDP(b)
	if from == nil {
		return n, nil, err // not a typed nil in the interface
	}
	return n, from, err
}

func (c *iceConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, from, err := c.rx.read(c.UDPConn, b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (c *iceConn) WriteToAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	return c.write(b, dst)
}

func (c *iceConn) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	return c.write(b, dst)
}

func (c *iceConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: syscall.EINVAL}
	}
	return c.WriteToUDP(b, ua)
}

func (c *iceConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.write(b, addr.AddrPort())
}

func (c *iceConn) write(b []byte, dst netip.AddrPort) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if !c.g.held() && len(c.bufs) == 0 {
		return c.writeNow(b, dst)
	}
	if len(b) > c.g.pool.Size() || !dst.IsValid() {
		c.flushLocked() // keep the order, then this one alone
		return c.writeNow(b, dst)
	}
	buf := c.g.pool.Get()
	c.bufs = append(c.bufs, buf[:copy(buf, b)])
	c.dsts = append(c.dsts, dst)
	if len(c.bufs) >= maxQueue {
		c.flushLocked()
		return len(b), nil
	}
	if !c.dirty {
		c.dirty = true
		c.g.mu.Lock()
		c.g.dirty = append(c.g.dirty, c)
		c.g.mu.Unlock()
	}
	// If every hold ended while this was queued, the last Release may have
	// looked before it was: send now rather than wait for the next hold.
	if !c.g.held() {
		c.flushLocked()
	}
	return len(b), nil
}

// flushLocked sends the queue, each run of one destination in one call.
// Errors are dropped, as they are for any UDP write pion makes (it logs
// and goes on). c.mu is held.
func (c *iceConn) flushLocked() {
	for i := 0; i < len(c.bufs); {
		j := i + 1
		for j < len(c.bufs) && c.dsts[j] == c.dsts[i] {
			j++
		}
		if !c.closed {
			c.tx.send(c.bufs[i:j], c.dsts[i])
		}
		i = j
	}
	c.g.pool.PutN(c.bufs)
	clear(c.bufs)
	c.bufs, c.dsts = c.bufs[:0], c.dsts[:0]
}

// Close sends what is queued (a DTLS close alert, say) and closes.
func (c *iceConn) Close() error {
	c.mu.Lock()
	c.flushLocked()
	c.closed = true
	c.mu.Unlock()
	return c.closeSocket()
}
