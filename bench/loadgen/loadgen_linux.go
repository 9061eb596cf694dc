package loadgen

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ThreadCPU is the CPU time the calling OS thread has used.
func ThreadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxGSOBytes is the most one GSO message may carry (one IPv4 datagram).
const maxGSOBytes = 65535 - 20 - 8

// SenderConfig configures a Sender.
type SenderConfig struct {
	Dst  netip.AddrPort
	Size int // datagram size, >= MinSize
	// GSO sends each burst as one UDP_SEGMENT message. It makes the sender
	// cheap, but a receiver with UDP_GRO then gets the burst as one
	// coalesced buffer, which local apps (sending datagram by datagram) do
	// not produce: leave it off to offer app-like traffic.
	GSO bool
	// Burst is how many datagrams one sendmmsg carries; 0 means 64. With
	// GSO it is capped to what fits one 64 KiB message.
	Burst int
}

// Sender sends numbered datagrams at a paced rate from its own socket.
//
// The socket is blocking and pacing sleeps in the kernel (nanosleep): the
// sender's locked thread never waits in the Go netpoller or on a Go timer,
// where every wake-up of a locked thread costs two thread hand-offs (CPU
// that would otherwise be charged to the process, muddying the measure of
// what is under test).
type Sender struct {
	cfg SenderConfig
	fd  int
	gso bool

	buf    []byte
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	gsoHdr unix.Mmsghdr
	gsoIov unix.Iovec
	ctrl   []byte
	name   unix.RawSockaddrInet4
	hp     *unix.Mmsghdr // what sendmmsg sends
	cnt    int
	ret    int
	errno  unix.Errno

	next    uint64 // next sequence number
	sent    atomic.Uint64
	behind  atomic.Uint64
	Sampler ThreadSampler
}

// NewSender opens a sender socket on the loopback address towards cfg.Dst
// (IPv4).
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Size < MinSize {
		return nil, fmt.Errorf("loadgen: size %d < %d", cfg.Size, MinSize)
	}
	if !cfg.Dst.Addr().Unmap().Is4() {
		return nil, errors.New("loadgen: IPv4 destinations only")
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 64
	}
	if cfg.GSO {
		cfg.Burst = min(cfg.Burst, 64, maxGSOBytes/cfg.Size)
		if cfg.Burst < 2 {
			cfg.GSO = false
			cfg.Burst = 1
		}
	}
	fd, err := LoopbackSocket()
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	s := &Sender{cfg: cfg, fd: fd, gso: cfg.GSO}
	s.buf = make([]byte, cfg.Burst*cfg.Size)
	for i := range cfg.Burst {
		b := s.buf[i*cfg.Size : (i+1)*cfg.Size]
		for j := MinSize; j < len(b); j++ {
			b[j] = byte(j)
		}
	}
	s.name = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: cfg.Dst.Addr().Unmap().As4()}
	pb := (*[2]byte)(unsafe.Pointer(&s.name.Port))
	pb[0], pb[1] = byte(cfg.Dst.Port()>>8), byte(cfg.Dst.Port())

	s.hdrs = make([]unix.Mmsghdr, cfg.Burst)
	s.iovs = make([]unix.Iovec, cfg.Burst)
	for i := range s.hdrs {
		s.iovs[i].Base = &s.buf[i*cfg.Size]
		s.iovs[i].SetLen(cfg.Size)
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.name))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
	}
	csp := unix.CmsgSpace(2)
	words := make([]uint64, (csp+7)/8)
	s.ctrl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), csp)
	c := (*unix.Cmsghdr)(unsafe.Pointer(&s.ctrl[0]))
	c.Level, c.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	c.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&s.ctrl[unix.CmsgLen(0)])) = uint16(cfg.Size)
	s.gsoIov.Base = &s.buf[0]
	s.gsoIov.SetLen(len(s.buf))
	g := &s.gsoHdr.Hdr
	g.Name = (*byte)(unsafe.Pointer(&s.name))
	g.Namelen = unix.SizeofSockaddrInet4
	g.Iov = &s.gsoIov
	g.SetIovlen(1)
	g.Control = &s.ctrl[0]
	g.SetControllen(csp)

	return s, nil
}

// LoopbackSocket is a blocking UDP socket on 127.0.0.1, ephemeral port
// (also the RTP load generator's, bench/rtpload).
func LoopbackSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// sendmmsg sends s.cnt messages from s.hp, blocking if the buffer is full.
func (s *Sender) sendmmsg() {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(s.hp)), uintptr(s.cnt), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		s.ret, s.errno = int(r), e
		return
	}
}

// Sent is how many datagrams the sender has sent.
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// Behind counts the times the sender could not keep up with its rate and
// gave up on the backlog (so it never sends a catch-up flood).
func (s *Sender) Behind() uint64 { return s.behind.Load() }

// Burst is the datagrams per send call in effect.
func (s *Sender) Burst() int { return s.cfg.Burst }

// GSO reports whether the sender uses GSO (it stops if the kernel refuses).
func (s *Sender) GSO() bool { return s.gso }

// Close closes the socket. Run must have returned.
func (s *Sender) Close() error { return unix.Close(s.fd) }

// Run sends bursts at rate datagrams per second (0: as fast as it can) until
// stop is closed, on a locked OS thread. Sequence numbers continue across
// calls. Only one Run at a time.
func (s *Sender) Run(rate float64, stop <-chan struct{}) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	burst := uint64(s.cfg.Burst)
	start := time.Now()
	var paced uint64             // datagrams sent since start
	maxLag := uint64(rate / 100) // 10 ms worth
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		s.Sampler.Poll(s.sent.Load())
		if rate > 0 {
			due := uint64(rate * time.Since(start).Seconds())
			if paced+burst > due {
				wait := time.Duration(float64(paced+burst-due) / rate * float64(time.Second))
				if wait > 20*time.Microsecond {
					ts := unix.NsecToTimespec(int64(wait))
					_ = unix.Nanosleep(&ts, nil)
				}
				continue
			}
			if due-paced > maxLag+burst {
				// Descheduled for a while: drop the backlog instead of
				// flooding to catch up.
				s.behind.Add(1)
				paced = due - burst
			}
		}
		if err := s.sendBurst(); err != nil {
			return err
		}
		paced += burst
	}
}

func (s *Sender) sendBurst() error {
	n := s.cfg.Burst
	for i := range n {
		Stamp(s.buf[i*s.cfg.Size:], s.next+uint64(i))
	}
	if s.gso {
		s.hp, s.cnt = &s.gsoHdr, 1
		s.sendmmsg()
		switch s.errno {
		case 0:
			s.next += uint64(n)
			s.sent.Add(uint64(n))
			return nil
		case unix.EIO, unix.EINVAL:
			s.gso = false // refused: send datagram by datagram from now on
		default:
			return os.NewSyscallError("sendmmsg", s.errno)
		}
	}
	for off := 0; off < n; {
		s.hp, s.cnt = &s.hdrs[off], n-off
		s.sendmmsg()
		if s.errno != 0 {
			return os.NewSyscallError("sendmmsg", s.errno)
		}
		off += s.ret
	}
	s.next += uint64(n)
	s.sent.Add(uint64(n))
	return nil
}

// Receiver counts numbered datagrams arriving on its own socket. Like the
// Sender, it blocks in the kernel (recvmmsg on a blocking socket with a
// receive timeout, so Close is noticed), not in the Go netpoller.
type Receiver struct {
	fd   int
	port uint16
	gro  bool
	slot int
	buf  []byte
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	ctrl []byte
	csp  int

	next                         uint64
	datagrams, bytes, late, gaps atomic.Uint64
	stale, floor                 atomic.Uint64
	Sampler                      ThreadSampler
	started, closing             atomic.Bool
	done                         chan struct{}
}

// NewReceiver binds 127.0.0.1 on an ephemeral port. With gro, the kernel
// may hand it coalesced buffers (cheaper for the harness). rcvbuf is the
// socket buffer asked for (forced past rmem_max when allowed).
func NewReceiver(gro bool, rcvbuf int) (*Receiver, error) {
	fd, err := LoopbackSocket()
	if err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	r := &Receiver{fd: fd, port: uint16(sa.(*unix.SockaddrInet4).Port), done: make(chan struct{})}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if gro {
		r.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	}
	const n = 64
	r.slot = 2048
	if r.gro {
		r.slot = 65536
	}
	r.buf = make([]byte, n*r.slot)
	r.hdrs = make([]unix.Mmsghdr, n)
	r.iovs = make([]unix.Iovec, n)
	r.csp = unix.CmsgSpace(4)
	words := make([]uint64, (n*r.csp+7)/8)
	r.ctrl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n*r.csp)
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*r.slot]
		r.iovs[i].SetLen(r.slot)
		h := &r.hdrs[i].Hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		if r.gro {
			h.Control = &r.ctrl[i*r.csp]
			h.SetControllen(r.csp)
		}
	}
	return r, nil
}

// Addr is where to send to.
func (r *Receiver) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), r.port)
}

// GRO reports whether the kernel accepted UDP_GRO.
func (r *Receiver) GRO() bool { return r.gro }

// Stats returns the counts so far.
func (r *Receiver) Stats() ReceiverStats {
	return ReceiverStats{Datagrams: r.datagrams.Load(), Bytes: r.bytes.Load(), Late: r.late.Load(), Gaps: r.gaps.Load(), Stale: r.stale.Load()}
}

// SetFloor makes the receiver count, from now on, only datagrams numbered
// seq or higher; older ones (stragglers of an earlier run still queued
// somewhere) count as Stale.
func (r *Receiver) SetFloor(seq uint64) { r.floor.Store(seq) }

// SockDrops is the kernel's count of datagrams it dropped for the receiver's
// socket (full buffer): loss that is the harness's, not the dataplane's.
func (r *Receiver) SockDrops() uint64 { return sockDrops(r.fd) }

// Run receives until Close, on a locked OS thread.
func (r *Receiver) Run() error {
	r.started.Store(true)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(r.done)
	for !r.closing.Load() {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_WAITFORONE, 0, 0)
		switch e {
		case 0:
		case unix.EINTR, unix.EAGAIN: // EAGAIN: the receive timeout, to look at closing
			r.Sampler.Poll(r.datagrams.Load())
			continue
		default:
			return os.NewSyscallError("recvmmsg", e)
		}
		var dg, nb, stale uint64
		floor := r.floor.Load()
		r.next = max(r.next, floor)
		for i := range int(n) {
			h := &r.hdrs[i]
			ln := int(h.Len)
			seg := ln
			if r.gro && h.Hdr.Controllen > 0 {
				c := (*unix.Cmsghdr)(unsafe.Pointer(&r.ctrl[i*r.csp]))
				if c.Level == unix.IPPROTO_UDP && c.Type == unix.UDP_GRO {
					seg = int(*(*int32)(unsafe.Pointer(&r.ctrl[i*r.csp+unix.CmsgLen(0)])))
				}
				h.Hdr.SetControllen(r.csp)
			}
			b := r.buf[i*r.slot : i*r.slot+ln]
			for off := 0; off < ln; off += seg {
				if off+MinSize > ln {
					continue
				}
				seq := Seq(b[off:])
				if seq < floor {
					stale++
					continue
				}
				r.count(seq)
				dg++
				nb += uint64(min(seg, ln-off))
			}
		}
		if stale > 0 {
			r.stale.Add(stale)
		}
		r.datagrams.Add(dg)
		r.bytes.Add(nb)
		r.Sampler.Poll(r.datagrams.Load())
	}
	return nil
}

func (r *Receiver) count(seq uint64) {
	switch {
	case seq == r.next:
		r.next++
	case seq > r.next:
		r.gaps.Add(seq - r.next)
		r.next = seq + 1
	default:
		r.late.Add(1)
	}
}

// Close stops Run (waiting for it, if it was started: up to the receive
// timeout) and closes the socket.
func (r *Receiver) Close() error {
	r.closing.Store(true)
	if r.started.Load() {
		<-r.done
	}
	return unix.Close(r.fd)
}

// sockDrops reads SK_MEMINFO_DROPS of a socket.
func sockDrops(fd int) uint64 {
	var mem [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(mem))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0
	}
	return uint64(mem[unix.SK_MEMINFO_DROPS])
}
