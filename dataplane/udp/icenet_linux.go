package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/dataplane/bufpool"
)

const iceBatching = true

// open moves u's socket to a descriptor the netpoller does not know, the
// way the dataplane's ports do (package doc, Linger): a registered socket
// wakes the netpoller's thread on every datagram even while its reader
// polls on the linger tick. Reads wait on a registered duplicate instead,
// closed while polling; writes skip the netpoller (MSG_DONTWAIT, and a full
// send buffer is tried again a millisecond later, as on the dataplane's
// ports). u is closed; its address stays readable. On failure u is left as
// it was.
func (c *iceConn) open(u *net.UDPConn, rc syscall.RawConn) error {
	fd, err := dupSocket(rc, false)
	if err != nil {
		return err
	}
	sock := os.NewFile(uintptr(fd), "udp") // blocking: not registered
	src, err := sock.SyscallConn()
	if err == nil {
		err = c.tx.setup(src)
	}
	if err != nil {
		sock.Close()
		return err
	}
	c.rx.setup(sock, src, c.g)
	u.Close()
	return nil
}

// writeNow sends b alone; c.mu is held.
func (c *iceConn) writeNow(b []byte, dst netip.AddrPort) (int, error) {
	c.tx.one[0] = b
	_, _, _, err := c.tx.b.sendBatch(c.tx.one[:], dst)
	c.tx.one[0] = nil
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(dst), Err: err}
	}
	return len(b), nil
}

func (c *iceConn) closeSocket() error { return c.rx.close() }

// SetDeadline sets the read deadline; writes have none (SetWriteDeadline).
func (c *iceConn) SetDeadline(t time.Time) error { return c.rx.setDeadline(t) }

func (c *iceConn) SetReadDeadline(t time.Time) error { return c.rx.setDeadline(t) }

// SetWriteDeadline does nothing: a write waits only while the kernel's send
// buffer is full, which a UDP socket's rarely is for long.
func (c *iceConn) SetWriteDeadline(time.Time) error { return nil }

func (c *iceConn) SetReadBuffer(n int) error { return c.setsockopt(unix.SO_RCVBUF, n) }

func (c *iceConn) SetWriteBuffer(n int) error { return c.setsockopt(unix.SO_SNDBUF, n) }

func (c *iceConn) setsockopt(opt, n int) error {
	var serr error
	if err := c.rx.rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, n) }); err != nil {
		return err
	}
	return serr
}

// SyscallConn is the socket's.
func (c *iceConn) SyscallConn() (syscall.RawConn, error) { return c.rx.rc, nil }

// iceSender sends an ICE socket's queue with the dataplane's batch sender.
type iceSender struct {
	b   batchSender
	one [1][]byte // writeNow's batch
}

func (s *iceSender) setup(rc syscall.RawConn) error {
	var family int
	var gso bool
	var ferr error
	err := rc.Control(func(fd uintptr) {
		family, ferr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		_, e := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = e == nil
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	s.b.init(rc, false, family, gso, nil)
	return nil
}

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	_, _, _, _ = s.b.sendBatch(pkts, dst)
}

// iceReceiver reads an ICE socket with UDP_GRO on where the kernel has it:
// a run of equal-size datagrams from one peer that sent them with GSO (gw
// does, for a burst of RTP) arrives as one buffer, read with one system
// call, and is handed out one datagram per read. On loopback the kernel
// then never splits the sender's GSO message at all.
//
// With the ICENet's linger, a socket of a busy ICENet whose reader would
// wake up over lingerPortWakes times a second polls instead: after a read
// that found nothing, its reader sleeps to the next tick (the dataplane's
// ticks) and reads again without waiting. So the datagrams of every such
// socket, and the pion goroutines each wakes, run on one thread wake-up a
// tick, not one per datagram.
type iceReceiver struct {
	on     bool // UDP_GRO is on (tests)
	sock   *os.File
	rc     syscall.RawConn // sock's
	pool   *bufpool.Pool   // groBufSize buffers, shared by an ICENet's sockets
	readFn func(fd uintptr) bool
	pollFn func(fd uintptr)
	l      *linger // nil: reads always wait

	mu   sync.Mutex // one reader at a time; the rest under it
	buf  []byte     // holds what recvmsg got, while any of it is unread
	n    int        // bytes in buf
	seg  int        // datagram size in buf (the last may be shorter)
	off  int        // next datagram
	from netip.AddrPort
	rerr syscall.Errno
	hdr  unix.Msghdr
	iov  unix.Iovec
	name unix.RawSockaddrInet6
	ctrl [4]uint64 // a UDP_GRO control message, cmsghdr-aligned
	// zones names interface indexes for link-local sources: pion matches
	// them to candidates with the zone, as the net package gives it.
	zones map[uint32]string
	lg    portLinger
	poll  bool // reads on the tick
	read1 bool // a read happened: lg has something to judge
	found bool // the last read found a message

	wmu    sync.Mutex      // guards waiter and waitRC; closed and dl change under it
	waiter *os.File        // registered duplicate of sock, while reads wait
	waitRC syscall.RawConn // waiter's
	dl     atomic.Int64    // the read deadline in Unix ns, 0 if none
	closed atomic.Bool

	coalesced atomic.Uint64 // buffers that held more than one datagram (tests)
	polls     atomic.Uint64 // reads made on the tick (tests)
}

// groBufSize holds the largest coalesced buffer (a 64 KiB IP datagram's
// payload) and so any single datagram.
const groBufSize = 64 << 10

func (r *iceReceiver) setup(sock *os.File, rc syscall.RawConn, g *ICENet) {
	r.sock, r.rc, r.pool, r.l = sock, rc, g.rxPool, g.linger
	_ = rc.Control(func(fd uintptr) {
		r.on = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	})
	r.hdr.Name = (*byte)(unsafe.Pointer(&r.name))
	r.hdr.Iov = &r.iov
	r.hdr.SetIovlen(1)
	r.hdr.Control = (*byte)(unsafe.Pointer(&r.ctrl[0]))
	// Created once: a fresh closure per read would allocate.
	r.readFn = r.recv(true)
	poll := r.recv(false)
	r.pollFn = func(fd uintptr) { poll(fd) }
}

// recv is a read function: recvmsg without waiting, and when the socket
// is empty, false (park in the netpoller until readable) if wait, else no
// buffer.
func (r *iceReceiver) recv(wait bool) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		r.buf = r.pool.Get()
		r.iov.Base = &r.buf[0]
		r.iov.SetLen(len(r.buf))
		r.hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdr.SetControllen(len(r.ctrl) * 8)
		r.hdr.Flags = 0
		for {
			// Raw, as the dataplane's: it cannot block.
			n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.hdr)), unix.MSG_DONTWAIT)
			switch e {
			case 0:
				r.n, r.rerr = int(n), 0
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				r.drop()
				return !wait
			default:
				r.drop()
				r.rerr = e
				return true
			}
		}
	}
}

// fill reads the socket's next message into buf (or an error into rerr):
// waiting for it, or on the linger tick.
func (r *iceReceiver) fill(c *net.UDPConn) error {
	for {
		r.pace()
		var err error
		if r.poll {
			r.polls.Add(1)
			if err = r.checkDeadline(); err == nil {
				err = r.rc.Control(r.pollFn)
			}
		} else {
			err = r.wait()
		}
		r.read1 = true
		r.found = r.buf != nil
		if r.closed.Load() {
			err = net.ErrClosed // whatever the closed descriptor said
		}
		if err != nil {
			if r.buf != nil {
				r.drop()
			}
			return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
		}
		if r.found || r.rerr != 0 {
			return nil
		}
	}
}

// pace hands linger what the last read found; a socket that polls sleeps
// there to the next tick after a read that found nothing.
func (r *iceReceiver) pace() {
	if r.l == nil || !r.read1 || r.closed.Load() {
		return
	}
	n := 0
	if r.found {
		n = 1
	}
	next := r.l.next(&r.lg, n, r.found)
	switch {
	case next && !r.poll:
		r.closeWaiter()
		r.l.polling.Add(1)
	case !next && r.poll:
		r.l.polling.Add(-1)
	}
	r.poll = next
}

// wait reads, parked on the registered duplicate until there is something.
func (r *iceReceiver) wait() error {
	r.wmu.Lock()
	if r.closed.Load() {
		r.wmu.Unlock()
		return net.ErrClosed
	}
	if r.waiter == nil {
		fd, err := dupSocket(r.rc, true)
		if err != nil {
			r.wmu.Unlock()
			return err
		}
		r.waiter = os.NewFile(uintptr(fd), "udp") // non-blocking: registered
		if r.waitRC, err = r.waiter.SyscallConn(); err == nil && r.dl.Load() != 0 {
			err = r.waiter.SetReadDeadline(time.Unix(0, r.dl.Load()))
		}
		if err != nil {
			r.waiter.Close()
			r.waiter, r.waitRC = nil, nil
			r.wmu.Unlock()
			return err
		}
	}
	rc := r.waitRC
	r.wmu.Unlock()
	return rc.Read(r.readFn)
}

func (r *iceReceiver) closeWaiter() {
	r.wmu.Lock()
	if r.waiter != nil {
		r.waiter.Close()
		r.waiter, r.waitRC = nil, nil
	}
	r.wmu.Unlock()
}

// checkDeadline is a timeout error once the read deadline has passed.
func (r *iceReceiver) checkDeadline() error {
	if dl := r.dl.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (r *iceReceiver) setDeadline(t time.Time) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed.Load() {
		return net.ErrClosed
	}
	var dl int64
	if !t.IsZero() {
		dl = max(t.UnixNano(), 1)
	}
	r.dl.Store(dl)
	if r.waiter != nil {
		return r.waiter.SetReadDeadline(t)
	}
	return nil
}

// close closes the waiter (waking a reader parked on it) and the socket.
// A reader asleep to the tick finds it closed when it wakes; once it has
// gone, the socket leaves the polling count.
func (r *iceReceiver) close() error {
	r.wmu.Lock()
	if r.closed.Load() {
		r.wmu.Unlock()
		return net.ErrClosed
	}
	r.closed.Store(true)
	if r.waiter != nil {
		r.waiter.Close()
		r.waiter, r.waitRC = nil, nil
	}
	err := r.sock.Close()
	r.wmu.Unlock()
	r.mu.Lock()
	if r.poll {
		r.poll = false
		r.l.polling.Add(-1)
	}
	r.mu.Unlock()
	return err
}

// drop gives the buffer back.
func (r *iceReceiver) drop() {
	r.pool.Put(r.buf)
	r.buf, r.iov.Base, r.n, r.off = nil, nil, 0, 0
}

// read returns the next datagram: the rest of the last buffer, or what
// the socket has next.
func (r *iceReceiver) read(c *net.UDPConn, b []byte) (int, netip.AddrPort, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		if err := r.fill(c); err != nil {
			return 0, netip.AddrPort{}, err
		}
		if r.rerr != 0 {
			return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError("recvmsg", r.rerr)}
		}
		r.from = r.source()
		r.seg = r.n
		if g := groSize(r.ctrl[:], int(r.hdr.Controllen)); g > 0 && g < r.n {
			r.seg = g
			r.coalesced.Add(1)
		}
	}
	end := min(r.off+r.seg, r.n)
	k := copy(b, r.buf[r.off:end])
	r.off = end
	from := r.from
	if r.off >= r.n {
		r.drop()
	}
	return k, from, nil
}

// source is where the last datagram came from, in the form the net
// package's ReadFromUDPAddrPort gives: IPv6 sources keep their zone, and
// IPv4-mapped ones stay mapped (unlike the dataplane's decodeSockaddr).
func (r *iceReceiver) source() netip.AddrPort {
	if r.name.Family != unix.AF_INET6 {
		return decodeSockaddr(&r.name)
	}
	a := netip.AddrFrom16(r.name.Addr)
	if r.name.Scope_id != 0 {
		a = a.WithZone(r.zone(r.name.Scope_id))
	}
	return netip.AddrPortFrom(a, ntohs(r.name.Port))
}

// zone is the name of interface i, as the net package would give it in a
// source address (the number if the interface is gone). r.mu is held.
func (r *iceReceiver) zone(i uint32) string {
	if z, ok := r.zones[i]; ok {
		return z
	}
	z := strconv.FormatUint(uint64(i), 10)
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		z = ifi.Name
	}
	if r.zones == nil {
		r.zones = map[uint32]string{}
	}
	r.zones[i] = z
	return z
}

// groSize is the segment size in a UDP_GRO control message, or 0.
func groSize(ctrl []uint64, n int) int {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&ctrl[0])), len(ctrl)*8)[:min(n, len(ctrl)*8)]
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return 0
		}
		if level == unix.IPPROTO_UDP && typ == unix.UDP_GRO && len(data) >= 4 {
			return int(binary.NativeEndian.Uint32(data))
		}
		b = rest
	}
}
