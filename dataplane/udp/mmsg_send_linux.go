package udp

import (
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/dataplane"
)

const (
	maxSendMsgs = 64   // messages per sendmmsg
	maxSendIovs = 1024 // datagrams per round of building messages
	maxGSOSegs  = 64   // datagrams per GSO message
	// maxGSOBytes is the most payload one GSO message may carry: it must
	// fit one (IPv4) datagram before the kernel splits it.
	maxGSOBytes = 65535 - 20 - 8
)

var errAddrFamily = errors.New("dataplane: destination address family does not match the socket")

// batchSender sends batches of datagrams to one destination on a socket
// with sendmmsg, coalescing runs of equal-size datagrams with GSO while the
// kernel takes it. Dataplane ports and gw's ICE sockets both send with it.
type batchSender struct {
	rc      syscall.RawConn
	polled  bool // rc is registered with the netpoller (else see write)
	family  int  // AF_INET or AF_INET6, for sockaddrs
	gso     atomic.Bool
	failGSO atomic.Int32 // tests: fail this many GSO messages with EIO
	states  chan *sendState
	gsoOff  func() // called when the kernel refuses GSO and it goes off
}

func (b *batchSender) init(rc syscall.RawConn, polled bool, family int, gso bool, gsoOff func()) {
	b.rc, b.polled, b.family, b.gsoOff = rc, polled, family, gsoOff
	b.states = make(chan *sendState, sendStates)
	b.gso.Store(gso)
}

// sendState is one send call's preallocated sendmmsg arrays. A sender
// keeps a few for reuse, so concurrent sends need no lock and steady state
// needs no allocation.
type sendState struct {
	name    unix.RawSockaddrInet6
	namelen uint32
	hdrs    [maxSendMsgs]unix.Mmsghdr
	iovs    [maxSendIovs]unix.Iovec
	first   [maxSendMsgs]int // index in the round's packets of a message's first datagram
	segs    [maxSendMsgs]int // datagrams in a message
	bytes   [maxSendMsgs]int
	ctrl    []byte // one UDP_SEGMENT control message per message
	csp     int    // control space per message

	// writeFn's arguments and results.
	off, cnt int
	ret      int
	errno    syscall.Errno
	calls    int
	hi       int // iovecs used so far, to clear
	writeFn  func(fd uintptr) bool
	ctlFn    func(fd uintptr) // writeFn for RawConn.Control, result in done
	done     bool
}

func newSendState() *sendState {
	s := &sendState{csp: unix.CmsgSpace(2)}
	words := make([]uint64, (maxSendMsgs*s.csp+7)/8)
	s.ctrl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), maxSendMsgs*s.csp)
	for i := range s.hdrs {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&s.ctrl[i*s.csp]))
		c.Level = unix.IPPROTO_UDP
		c.Type = unix.UDP_SEGMENT
		c.SetLen(unix.CmsgLen(2))
	}
	s.writeFn = func(fd uintptr) bool {
		for {
			// Raw: with MSG_DONTWAIT it cannot block (package doc).
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[s.off])),
				uintptr(s.cnt), unix.MSG_DONTWAIT, 0, 0)
			s.calls++
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // socket buffer full: wait in the netpoller
			}
			s.ret, s.errno = int(r), e
			return true
		}
	}
	s.ctlFn = func(fd uintptr) { s.done = s.writeFn(fd) }
	return s
}

// write makes one sendmmsg call of s. A socket the netpoller does not know
// (a detached port's) cannot wait there for room in its send buffer: it
// tries again a millisecond later, which a local UDP socket rarely needs.
func (b *batchSender) write(s *sendState) error {
	if b.polled {
		return b.rc.Write(s.writeFn)
	}
	for {
		if err := b.rc.Control(s.ctlFn); err != nil || s.done {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

func (b *batchSender) getState() *sendState {
	select {
	case s := <-b.states:
		return s
	default:
		return newSendState()
	}
}

func (b *batchSender) putState(s *sendState) {
	// Hold no pointers into the caller's buffers.
	clear(s.iovs[:s.hi])
	s.calls, s.hi = 0, 0
	select {
	case b.states <- s:
	default:
	}
}

// setDst encodes dst for the socket's family.
func (s *sendState) setDst(dst netip.AddrPort, family int) error {
	a := dst.Addr()
	if !a.IsValid() {
		return errAddrFamily
	}
	if family == unix.AF_INET {
		a = a.Unmap()
		if !a.Is4() {
			return errAddrFamily
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.name))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(dst.Port()), Addr: a.As4()}
		s.namelen = unix.SizeofSockaddrInet4
		return nil
	}
	s.name = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(dst.Port()), Addr: a.As16()}
	s.namelen = unix.SizeofSockaddrInet6
	return nil
}

// build lays out messages for pkts, from the start, until the arrays are
// full: with gso, a run of datagrams of one size (ended early by a shorter
// one) becomes one message. It returns how many messages and datagrams.
func (s *sendState) build(pkts [][]byte, gso bool) (nmsg, used int) {
	iv := 0
	for used < len(pkts) && nmsg < maxSendMsgs && iv < maxSendIovs {
		first, size := used, len(pkts[used])
		s.setIov(iv, pkts[used])
		used++
		iv++
		segs, total := 1, size
		if gso && size > 0 {
			for used < len(pkts) && segs < maxGSOSegs && iv < maxSendIovs {
				l := len(pkts[used])
				if l > size || l == 0 || total+l > maxGSOBytes {
					break
				}
				s.setIov(iv, pkts[used])
				used++
				iv++
				segs++
				total += l
				if l < size {
					break // only the last may be shorter
				}
			}
		}
		h := &s.hdrs[nmsg].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.name))
		h.Namelen = s.namelen
		h.Iov = &s.iovs[iv-segs]
		h.SetIovlen(segs)
		if segs > 1 {
			at := nmsg * s.csp
			*(*uint16)(unsafe.Pointer(&s.ctrl[at+unix.CmsgLen(0)])) = uint16(size)
			h.Control = &s.ctrl[at]
			h.SetControllen(s.csp)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		s.first[nmsg], s.segs[nmsg], s.bytes[nmsg] = first, segs, total
		nmsg++
	}
	s.hi = max(s.hi, iv)
	return nmsg, used
}

func (s *sendState) setIov(i int, b []byte) {
	if len(b) == 0 {
		s.iovs[i].Base = nil
	} else {
		s.iovs[i].Base = &b[0]
	}
	s.iovs[i].SetLen(len(b))
}

// Send writes pkts to dst with sendmmsg, coalescing runs of equal-size
// datagrams with GSO.
func (p *mmsgPort) Send(pkts [][]byte, dst netip.AddrPort) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	sent, nbytes, calls, err := p.tx.sendBatch(pkts, dst)
	p.c.txCalls.Add(uint64(calls))
	p.c.txPackets.Add(uint64(sent))
	p.c.txBytes.Add(uint64(nbytes))
	if err != nil {
		p.c.drops[dataplane.DropSendError].Add(uint64(len(pkts) - sent))
	}
	return sent, err
}

// sendBatch sends pkts to dst: how many datagrams and bytes went, in how
// many system calls.
func (b *batchSender) sendBatch(pkts [][]byte, dst netip.AddrPort) (sent, nbytes, calls int, err error) {
	s := b.getState()
	sent, nbytes, err = b.send(s, pkts, dst)
	calls = s.calls
	b.putState(s)
	return sent, nbytes, calls, err
}

func (b *batchSender) send(s *sendState, pkts [][]byte, dst netip.AddrPort) (sent, nbytes int, err error) {
	if err := s.setDst(dst, b.family); err != nil {
		return 0, 0, err
	}
	for len(pkts) > 0 {
		nmsg, used := s.build(pkts, b.gso.Load())
		for m := 0; m < nmsg; {
			s.off, s.cnt = m, nmsg-m
			if s.segs[m] > 1 && b.failGSO.Load() > 0 {
				b.failGSO.Add(-1)
				s.ret, s.errno = 0, unix.EIO
			} else if err := b.write(s); err != nil {
				return sent, nbytes, err // closed
			}
			if s.errno == 0 {
				for k := m; k < m+s.ret; k++ {
					sent += s.segs[k]
					nbytes += s.bytes[k]
				}
				m += s.ret
				continue
			}
			if s.segs[m] > 1 && (s.errno == unix.EIO || s.errno == unix.EINVAL) {
				// The kernel (or the device) refuses GSO: off for good on
				// this socket; rebuild from this message without it.
				if b.gso.Swap(false) && b.gsoOff != nil {
					b.gsoOff()
				}
				used = s.first[m]
				break
			}
			return sent, nbytes, os.NewSyscallError("sendmmsg", s.errno)
		}
		pkts = pkts[used:]
	}
	return sent, nbytes, nil
}

// WriteTo writes one datagram, as a Send of one.
func (p *mmsgPort) WriteTo(b []byte, dst netip.AddrPort) error {
	one := [1][]byte{b}
	_, err := p.Send(one[:], dst)
	return err
}
