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
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/dataplane/bufpool"
)

const iceBatching = true

// iceSender sends an ICE socket's queue with the dataplane's batch sender.
type iceSender struct{ b batchSender }

func (s *iceSender) setup(_ *net.UDPConn, rc syscall.RawConn) error {
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
	s.b.init(rc, true, family, gso, nil)
	return nil
}

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	_, _, _, _ = s.b.sendBatch(pkts, dst)
}

// iceReceiver reads an ICE socket with UDP_GRO on: a run of equal-size
// datagrams from one peer that sent them with GSO (gw does, for a burst of
// RTP) arrives as one buffer, read with one system call, and is handed out
// one datagram per read. On loopback the kernel then never splits the
// sender's GSO message at all. Where the kernel refuses UDP_GRO, reads go
// straight to the socket.
type iceReceiver struct {
	on     bool
	rc     syscall.RawConn
	pool   *bufpool.Pool // groBufSize buffers, shared by an ICENet's sockets
	readFn func(fd uintptr) bool

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

	coalesced atomic.Uint64 // buffers that held more than one datagram (tests)
}

// groBufSize holds the largest coalesced buffer (a 64 KiB IP datagram's
// payload) and so any single datagram.
const groBufSize = 64 << 10

func (r *iceReceiver) setup(rc syscall.RawConn, pool *bufpool.Pool) {
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); cerr != nil || err != nil {
		return
	}
	r.on, r.rc, r.pool = true, rc, pool
	r.hdr.Name = (*byte)(unsafe.Pointer(&r.name))
	r.hdr.Iov = &r.iov
	r.hdr.SetIovlen(1)
	r.hdr.Control = (*byte)(unsafe.Pointer(&r.ctrl[0]))
	// Created once: a fresh closure per read would allocate.
	r.readFn = func(fd uintptr) bool {
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
				return false // wait in the netpoller until readable
			default:
				r.drop()
				r.rerr = e
				return true
			}
		}
	}
}

// drop gives the buffer back.
func (r *iceReceiver) drop() {
	r.pool.Put(r.buf)
	r.buf, r.iov.Base, r.n, r.off = nil, nil, 0, 0
}

// read returns the next datagram: the rest of the last buffer, or what
// the socket has next.
func (r *iceReceiver) read(c *net.UDPConn, b []byte) (int, netip.AddrPort, error) {
	if !r.on {
		return c.ReadFromUDPAddrPort(b)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		if err := r.rc.Read(r.readFn); err != nil {
			if r.buf != nil {
				r.drop()
			}
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
