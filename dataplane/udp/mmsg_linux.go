package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/dataplane"
)

func init() {
	dataplane.Register("mmsg", func(cfg dataplane.Config) (dataplane.Dataplane, error) {
		return newPlane("mmsg", cfg, listenMmsg)
	})
}

const (
	// groSpill is the spill area behind each receive slot: the largest
	// coalesced buffer is a 64 KiB IP datagram's payload.
	groSpill = 64 << 10
	// sendStates is how many concurrent Send calls keep their own
	// preallocated state; beyond that a call builds a fresh one.
	sendStates = 8
)

// mmsgPort is the Linux batched implementation.
type mmsgPort struct {
	base
	tx      batchSender // send side
	bufSize int

	// Receive state, touched only by the worker.
	bufs    [][]byte // pool buffers, one per slot
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6 // big enough for either family
	ctrl    []byte
	ctrlLen int    // control space per slot
	spill   []byte // GRO spill areas (mmap), nil without GRO
	stride  int    // bytes per slot in spill: BufSize prefix + groSpill
	pkts    []dataplane.Packet
	readFn  func(fd uintptr) bool // for waitRC.Read: waits for a datagram
	pollFn  func(fd uintptr)      // for rc.Control: does not (linger)
	linger  portLinger

	sock    *os.File        // the socket, unknown to the netpoller (detach)
	wmu     sync.Mutex      // guards waiter against Close
	waiter  *os.File        // registered duplicate of sock, in wait mode
	waitRC  syscall.RawConn // waiter's, used by the worker only
	rn      int             // readFn result: messages read
	rerr    syscall.Errno   // readFn result: error
	rcalls  uint64          // recvmmsg calls since last counted
	ovfl    uint32          // last SO_RXQ_OVFL value seen
	groBufs atomic.Uint64   // coalesced buffers split (tests, bench)
}

func listenMmsg(pl *plane, num int, egress bool) (port, error) {
	conn, err := listenUDP(pl, num)
	if err != nil {
		return nil, err
	}
	p := &mmsgPort{bufSize: pl.cfg.BufSize}
	if err := p.init(pl, num, conn, egress); err != nil {
		conn.Close()
		return nil, err
	}
	if !egress {
		if err := p.detach(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	p.addFeature(dataplane.FeatureBatchSend)
	off := pl.cfg.Disable
	var gso, gro, ovfl bool
	var family int
	var domErr error
	err = p.rc.Control(func(fd uintptr) {
		s := int(fd)
		family, domErr = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN)
		// The kernel has UDP GSO if it knows the socket option.
		_, e := unix.GetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = e == nil && off&dataplane.FeatureGSO == 0
		if egress {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
			return
		}
		if off&dataplane.FeatureGRO == 0 {
			gro = unix.SetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		}
		if off&dataplane.FeatureRxqOvfl == 0 {
			ovfl = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) == nil
		}
	})
	if err == nil {
		err = domErr
	}
	if err != nil {
		p.closeSock()
		return nil, err
	}
	p.tx.init(p.rc, egress, family, gso, func() { p.dropFeature(dataplane.FeatureGSO) })
	if gso {
		p.addFeature(dataplane.FeatureGSO)
	}
	if egress {
		return p, nil
	}
	setRecvBuffer(p.rc, pl.cfg.SockBuf, func(n int) error {
		return p.rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n) })
	})
	p.addFeature(dataplane.FeatureBatchRecv)
	if ovfl {
		p.addFeature(dataplane.FeatureRxqOvfl)
	}
	if gro {
		if !p.mapSpill(pl.cfg.BatchSize) {
			gro = false
			_ = p.rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0)
			})
		} else {
			p.addFeature(dataplane.FeatureGRO)
		}
	}
	p.setupRecv(pl, gro)
	return p, nil
}

// mapSpill reserves the GRO spill areas: address space only, pages are
// touched only by coalesced datagrams.
func (p *mmsgPort) mapSpill(slots int) bool {
	p.stride = p.bufSize + groSpill
	m, err := unix.Mmap(-1, 0, slots*p.stride, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return false
	}
	p.spill = m
	return true
}

// setupRecv builds the recvmmsg arrays once; the worker reuses them.
func (p *mmsgPort) setupRecv(pl *plane, gro bool) {
	n := pl.cfg.BatchSize
	p.bufs = make([][]byte, n)
	pl.pool.GetN(p.bufs)
	iovPer := 1
	if gro {
		iovPer = 2
	}
	p.hdrs = make([]unix.Mmsghdr, n)
	p.iovs = make([]unix.Iovec, n*iovPer)
	p.names = make([]unix.RawSockaddrInet6, n)
	p.ctrlLen = unix.CmsgSpace(4) + unix.CmsgSpace(4) // UDP_GRO int, SO_RXQ_OVFL uint32
	// Backed by uint64s so every slot's control area is aligned for cmsghdr.
	words := make([]uint64, (n*p.ctrlLen+7)/8)
	p.ctrl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n*p.ctrlLen)
	for i := range n {
		iov := p.iovs[i*iovPer : (i+1)*iovPer]
		iov[0].Base = &p.bufs[i][0]
		iov[0].SetLen(p.bufSize)
		if gro {
			iov[1].Base = &p.spill[i*p.stride+p.bufSize]
			iov[1].SetLen(groSpill)
		}
		h := &p.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&p.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &iov[0]
		h.SetIovlen(iovPer)
		h.Control = &p.ctrl[i*p.ctrlLen]
		h.SetControllen(p.ctrlLen)
	}
	p.pkts = make([]dataplane.Packet, 0, n)
	// Created once: handing a method value or a fresh closure to
	// RawConn.Read on every call would allocate.
	p.readFn = p.readPolled(true)
	poll := p.readPolled(false)
	p.pollFn = func(fd uintptr) { poll(fd) }
	p.release = func() {
		pl.pool.PutN(p.bufs)
		for i := range p.iovs {
			p.iovs[i].Base = nil
		}
		if p.spill != nil {
			_ = unix.Munmap(p.spill)
			p.spill = nil
		}
	}
}

// readPolled is the read function of a worker: recvmmsg without waiting,
// and when the socket is empty, false (park in the netpoller until
// readable) if wait, else a read of none.
func (p *mmsgPort) readPolled(wait bool) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		for {
			// Raw: with MSG_DONTWAIT it cannot block (package doc).
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&p.hdrs[0])),
				uintptr(len(p.hdrs)), unix.MSG_DONTWAIT, 0, 0)
			p.rcalls++
			switch e {
			case 0:
				p.rn, p.rerr = int(r), 0
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				if !wait {
					p.rn, p.rerr = 0, 0
					return true
				}
				return false // park in the netpoller until readable
			default:
				p.rn, p.rerr = 0, e
				return true
			}
		}
	}
}

func (p *mmsgPort) start() { p.startWorker(p.loop) }

func (p *mmsgPort) loop() {
	poll := false
	defer func() {
		if poll {
			p.pl.linger.polling.Add(-1)
		}
	}()
	for !p.closing.Load() {
		var err error
		switch {
		case poll:
			err = p.rc.Control(p.pollFn)
		case p.waitRC == nil:
			// Waiting needs the registered duplicate; a failure to make
			// one (out of descriptors) is retried like a failed read.
			if err = p.setWaiter(true); err == nil {
				continue
			}
		default:
			err = p.waitRC.Read(p.readFn)
		}
		if err != nil {
			if p.readFailed(err) {
				return
			}
			continue
		}
		if p.closing.Load() {
			return // woken by Close: what the wake returned is not traffic
		}
		if p.rerr != 0 {
			if p.readFailed(p.rerr) {
				return
			}
			continue
		}
		if !p.process(p.rn) {
			return
		}
		if l := p.pl.linger; l != nil {
			next := l.next(&p.linger, p.rn, p.rn == len(p.hdrs))
			switch {
			case next && !poll:
				// Only the waiter is registered with the netpoller: while
				// it exists, every datagram wakes the netpoller's thread
				// whether or not the worker waits.
				_ = p.setWaiter(false)
				l.polling.Add(1)
			case !next && poll:
				l.polling.Add(-1)
			}
			poll = next
		}
	}
}

// detach moves the socket from its net.UDPConn to a descriptor the
// netpoller does not know (sock): a registered socket wakes the netpoller's
// thread on every datagram even when no goroutine waits for it, which would
// undo what linger saves. The worker waits on a registered duplicate
// (waiter) while it is in wait mode, and closes it to poll.
func (p *mmsgPort) detach() error {
	// Blocking, so that os.NewFile does not register it (calls on it pass
	// MSG_DONTWAIT); the waiter sets the flag back.
	fd, err := dupSocket(p.rc, false)
	if err != nil {
		return err
	}
	p.conn.Close()
	p.conn = nil
	p.sock = os.NewFile(uintptr(fd), "udp")
	if p.rc, err = p.sock.SyscallConn(); err != nil {
		p.sock.Close()
		return err
	}
	p.closeSock = p.closeSockets
	return nil
}

// dupSocket duplicates rc's descriptor, setting O_NONBLOCK as asked: the
// flag is the socket's, shared by all its descriptors, and os.NewFile
// registers a descriptor with the netpoller if and only if it is set.
func dupSocket(rc syscall.RawConn, nonblock bool) (int, error) {
	fd, derr := -1, error(nil)
	err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err == nil {
		err = derr
	}
	if err == nil {
		if err = unix.SetNonblock(fd, nonblock); err != nil {
			unix.Close(fd)
		}
	}
	return fd, err
}

// setWaiter opens (on) or closes the registered duplicate the worker waits
// on. Only the worker calls it; Close closes a waiter under the same lock.
func (p *mmsgPort) setWaiter(on bool) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if !on {
		if p.waiter == nil {
			return nil
		}
		err := p.waiter.Close()
		p.waiter, p.waitRC = nil, nil
		return err
	}
	if p.closing.Load() {
		return net.ErrClosed
	}
	fd, err := dupSocket(p.rc, true)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "udp") // non-blocking: registered
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	p.waiter, p.waitRC = f, rc
	return nil
}

// closeSockets closes the waiter (waking a worker parked on it) and the
// socket.
func (p *mmsgPort) closeSockets() error {
	p.wmu.Lock()
	if p.waiter != nil {
		_ = p.waiter.Close()
	}
	p.wmu.Unlock()
	return p.sock.Close()
}

// process turns the n messages of one recvmmsg into packets for the sink,
// splitting coalesced ones, and rearms the headers the kernel wrote into.
// It returns false once the port is closing.
func (p *mmsgPort) process(n int) bool {
	r := p.sink.Load()
	pk := p.pkts[:0]
	nbytes, datagrams := 0, 0
	var trunc uint64
	ok := true
	// add queues one datagram, handing a full batch to the sink.
	add := func(d []byte, addr netip.AddrPort) {
		pk = append(pk, dataplane.Packet{Data: d, Addr: addr})
		nbytes += len(d)
		datagrams++
		if len(pk) == cap(pk) {
			ok = p.deliver(r, pk, nbytes)
			pk, nbytes = pk[:0], 0
		}
	}
	for i := 0; i < n && ok; i++ {
		h := &p.hdrs[i]
		ln := int(h.Len)
		flags := h.Hdr.Flags
		gso := 0
		if h.Hdr.Controllen > 0 {
			gso = p.parseControl(i, int(h.Hdr.Controllen))
		}
		addr := decodeSockaddr(&p.names[i])
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.SetControllen(p.ctrlLen)
		h.Hdr.Flags = 0
		if flags&unix.MSG_TRUNC != 0 {
			trunc++
			continue
		}
		var data []byte
		switch {
		case ln <= p.bufSize:
			data = p.bufs[i][:ln]
		case gso > 0 && p.spill != nil:
			// Coalesced and spilled: move the head next to the rest.
			at := i * p.stride
			copy(p.spill[at:at+p.bufSize], p.bufs[i])
			data = p.spill[at : at+ln]
		default:
			trunc++ // one datagram longer than BufSize
			continue
		}
		if gso == 0 || gso >= ln {
			add(data, addr)
			continue
		}
		p.groBufs.Add(1)
		if gso > p.bufSize { // as if received one by one: each truncated
			trunc += uint64((ln + gso - 1) / gso)
			continue
		}
		for off := 0; off < ln && ok; off += gso {
			add(data[off:min(off+gso, ln)], addr)
		}
	}
	if ok && len(pk) > 0 {
		ok = p.deliver(r, pk, nbytes)
	}
	p.c.rxCalls.Add(p.rcalls)
	p.rcalls = 0
	if datagrams > 0 {
		p.c.hist[histIndex(datagrams)].Add(1)
	}
	if trunc > 0 {
		p.c.drops[dataplane.DropTruncated].Add(trunc)
	}
	return ok
}

// parseControl reads the control messages of slot i: the GRO segment size
// (returned, 0 if none) and the kernel's drop counter.
func (p *mmsgPort) parseControl(i, n int) (gso int) {
	b := p.ctrl[i*p.ctrlLen : i*p.ctrlLen+min(n, p.ctrlLen)]
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return gso
		}
		switch {
		case level == unix.IPPROTO_UDP && typ == unix.UDP_GRO && len(data) >= 4:
			gso = int(binary.NativeEndian.Uint32(data))
		case level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL && len(data) >= 4:
			if v := binary.NativeEndian.Uint32(data); v != p.ovfl {
				p.ovfl = v
				storeMax(&p.c.drops[dataplane.DropOverflow], uint64(v))
			}
		}
		b = rest
	}
}

// nextCmsg splits the first control message off b: its level, type and
// data, and what follows it. ok is false when b holds no whole message.
func nextCmsg(b []byte) (level, typ int32, data, rest []byte, ok bool) {
	hdrLen := unix.CmsgLen(0)
	if len(b) < hdrLen {
		return 0, 0, nil, nil, false
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	l := int(c.Len)
	if l < hdrLen || l > len(b) {
		return 0, 0, nil, nil, false
	}
	if next := unix.CmsgSpace(l - hdrLen); next < len(b) {
		rest = b[next:]
	}
	return c.Level, c.Type, b[hdrLen:l], rest, true
}

// decodeSockaddr reads a source address the kernel wrote, without
// allocating. IPv4-mapped IPv6 addresses (dual-stack sockets) come out as
// IPv4; IPv6 zones are not kept.
func decodeSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(s4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order.
func ntohs(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons stores a port in network byte order.
func htons(port uint16) uint16 {
	var v uint16
	b := (*[2]byte)(unsafe.Pointer(&v))
	b[0], b[1] = byte(port>>8), byte(port)
	return v
}
