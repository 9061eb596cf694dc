package rtpload

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/bench/loadgen"
)

// maxBurst is the most packets one sendmmsg carries.
const maxBurst = 64

// Sender sends numbered RTP packets, round-robin over its streams, at a
// paced total rate, from one socket.
type Sender struct {
	fd    int
	size  int
	pt    uint8
	names []unix.RawSockaddrInet4 // per stream
	next  []uint64                // per stream: next packet number (sender thread)
	sent  []atomic.Uint64         // per stream: packets sent
	total atomic.Uint64
	rr    int // next stream, round-robin (paced)
	// The frame being sent (Frames > 0): packets [frameLo, frameHi) of the
	// run, each stream's share in one run, stream by stream.
	frameLo, frameHi uint64
	sts              []int // the stream of each packet of the batch
	buf              []byte
	hdrs             []unix.Mmsghdr
	iovs             []unix.Iovec
	// behind counts the times pacing fell more than 10 ms behind and the
	// backlog was dropped rather than sent in a flood.
	behind atomic.Uint64
	// Frames, when positive, makes Run send in that many bursts per second
	// (set it before Run), the way a camera's packetizer hands over a
	// whole frame at once: every stream's frame begins at the same time,
	// and each goes out as one run, stream after stream, as cameras of
	// their own would send them. 0 spreads packets evenly, round-robin.
	Frames float64
}

// NewSender sends packets of size bytes (header included, >= MinSize) with
// payload type pt, stream i to dsts[i] (IPv4).
func NewSender(dsts []netip.AddrPort, size int, pt uint8) (*Sender, error) {
	if size < MinSize || size > 1500 {
		return nil, fmt.Errorf("rtpload: packet size %d outside %d..1500", size, MinSize)
	}
	if len(dsts) == 0 {
		return nil, errors.New("rtpload: no streams")
	}
	fd, err := loadgen.LoopbackSocket()
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	s := &Sender{fd: fd, size: size, pt: pt, names: make([]unix.RawSockaddrInet4, len(dsts)),
		next: make([]uint64, len(dsts)), sent: make([]atomic.Uint64, len(dsts))}
	for i, d := range dsts {
		a := d.Addr().Unmap()
		if !a.Is4() {
			unix.Close(fd)
			return nil, errors.New("rtpload: IPv4 destinations only")
		}
		s.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		pb := (*[2]byte)(unsafe.Pointer(&s.names[i].Port))
		pb[0], pb[1] = byte(d.Port()>>8), byte(d.Port())
	}
	s.buf = make([]byte, maxBurst*size)
	for i := range s.buf {
		s.buf[i] = byte(i * 7)
	}
	s.sts = make([]int, maxBurst)
	s.hdrs = make([]unix.Mmsghdr, maxBurst)
	s.iovs = make([]unix.Iovec, maxBurst)
	for i := range s.hdrs {
		s.iovs[i].Base = &s.buf[i*size]
		s.iovs[i].SetLen(size)
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
		s.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	}
	return s, nil
}

// Streams is how many streams the sender feeds.
func (s *Sender) Streams() int { return len(s.names) }

// Next is the number the next packet of stream i will carry (= how many
// were sent on it so far). Read it only while Run is not running.
func (s *Sender) Next(i int) uint64 { return s.sent[i].Load() }

// Sent is how many packets were sent on all streams.
func (s *Sender) Sent() uint64 { return s.total.Load() }

// Behind counts pacing stalls (see Sender.behind).
func (s *Sender) Behind() uint64 { return s.behind.Load() }

// Close closes the socket; Run must have returned.
func (s *Sender) Close() error { return unix.Close(s.fd) }

// Run sends at rate packets per second in all (spread evenly over the
// streams) until stop is closed. Packets go out as soon as they are due, a
// sendmmsg of at most 64 at a time: at 1,000 packets/s one by one, each
// 1 ms, unless Frames groups them.
func (s *Sender) Run(rate float64, stop <-chan struct{}) error {
	if rate <= 0 {
		return errors.New("rtpload: rate must be positive")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	var paced uint64
	s.frameLo, s.frameHi = 0, 0
	maxLag := uint64(rate/100) + 1 // 10 ms worth
	if s.Frames > 0 {
		maxLag += uint64(rate / s.Frames)
	}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		elapsed := time.Since(start).Seconds()
		due := uint64(rate * elapsed)
		if s.Frames > 0 {
			// Due: every packet of the frames begun so far.
			frames := math.Floor(elapsed * s.Frames)
			due = uint64((frames + 1) * rate / s.Frames)
		}
		if due <= paced {
			wait := time.Duration(float64(paced+1-due) / rate * float64(time.Second))
			if s.Frames > 0 { // until the next frame begins
				wait = time.Duration(((math.Floor(elapsed*s.Frames)+1)/s.Frames - elapsed) * float64(time.Second))
			}
			if wait > 10*time.Microsecond {
				ts := unix.NsecToTimespec(int64(min(wait, 5*time.Millisecond)))
				_ = unix.Nanosleep(&ts, nil)
			}
			continue
		}
		if due-paced > maxLag+maxBurst {
			s.behind.Add(1)
			paced = due - 1
		}
		n := int(min(due-paced, maxBurst))
		if s.Frames > 0 {
			if paced >= s.frameHi {
				s.frameLo, s.frameHi = paced, due
			}
			n = min(n, int(s.frameHi-paced)) // a batch holds one frame's packets
		}
		if err := s.send(paced, n); err != nil {
			return err
		}
		paced += uint64(n)
	}
}

// send stamps and sends n packets, the first the run's packet number p:
// round-robin over the streams, or by each stream's share of the frame.
func (s *Sender) send(p uint64, n int) error {
	now := Clock()
	for i := range n {
		var st int
		if s.Frames > 0 {
			st = int((p + uint64(i) - s.frameLo) * uint64(len(s.names)) / (s.frameHi - s.frameLo))
		} else {
			st = s.rr
			s.rr++
			if s.rr == len(s.names) {
				s.rr = 0
			}
		}
		s.sts[i] = st
		Stamp(s.buf[i*s.size:], s.pt, st, s.next[st], now)
		s.next[st]++
		s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[st]))
	}
	for off := 0; off < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[off])), uintptr(n-off), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return os.NewSyscallError("sendmmsg", e)
		}
		off += int(r)
	}
	// Count per stream after the send, so Next never runs ahead of what
	// may be in flight.
	for _, st := range s.sts[:n] {
		s.sent[st].Add(1)
	}
	s.total.Add(uint64(n))
	return nil
}

// streamState is what the sink knows of one stream.
type streamState struct {
	floor  atomic.Uint64 // packets numbered below are stale (earlier trials)
	unique atomic.Uint64 // distinct packets at or above floor
	dups   atomic.Uint64
	stale  atomic.Uint64
	top    uint64       // highest number seen + 1 (sink thread)
	seen   [1024]uint64 // bitmap of numbers top-65536..top-1, by number mod 65536
	_      [8]uint64    // keep streams off each other's cache lines
}

// Sink receives what the relay delivers and checks it.
type Sink struct {
	fd      int
	port    uint16
	buf     []byte
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	ctl     []byte // per message: room for one SCM_TIMESTAMPNS
	streams []streamState
	// Latency holds, for packets received while recording, the time from
	// the sender's stamp to the packet's arrival in the sink's socket (the
	// kernel's receive timestamp): what the path in between adds.
	Latency Histogram
	// AppLatency holds the time to when the sink's read returned: Latency
	// plus the wait for the receiving thread to be woken and run.
	AppLatency Histogram
	recording  atomic.Bool
	foreign    atomic.Uint64 // datagrams that were not ours
	closing    atomic.Bool
	started    atomic.Bool
	done       chan struct{}
}

const sinkSlot = 2048

// ctlSlot is a message's control buffer: one SCM_TIMESTAMPNS.
var ctlSlot = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// NewSink binds 127.0.0.1 on an ephemeral port for n streams.
func NewSink(n int) (*Sink, error) {
	fd, err := loadgen.LoopbackSocket()
	if err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 32<<20)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt SO_TIMESTAMPNS", err)
	}
	tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	k := &Sink{fd: fd, port: uint16(sa.(*unix.SockaddrInet4).Port), streams: make([]streamState, n), done: make(chan struct{})}
	const batch = 64
	k.buf = make([]byte, batch*sinkSlot)
	k.hdrs = make([]unix.Mmsghdr, batch)
	k.iovs = make([]unix.Iovec, batch)
	k.ctl = make([]byte, batch*ctlSlot)
	for i := range k.hdrs {
		k.iovs[i].Base = &k.buf[i*sinkSlot]
		k.iovs[i].SetLen(sinkSlot)
		k.hdrs[i].Hdr.Iov = &k.iovs[i]
		k.hdrs[i].Hdr.SetIovlen(1)
		k.hdrs[i].Hdr.Control = &k.ctl[i*ctlSlot]
	}
	return k, nil
}

// Addr is where the relay should deliver.
func (k *Sink) Addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), k.port)
}

// SetFloor makes stream i count only packets numbered n or higher from now
// on; it resets the stream's counts.
func (k *Sink) SetFloor(i int, n uint64) {
	st := &k.streams[i]
	st.floor.Store(n)
	st.unique.Store(0)
	st.dups.Store(0)
}

// Received is how many distinct packets of stream i at or above its floor
// arrived.
func (k *Sink) Received(i int) uint64 { return k.streams[i].unique.Load() }

// Duplicates counts packets of stream i that arrived more than once
// (retransmissions of packets that had arrived).
func (k *Sink) Duplicates(i int) uint64 { return k.streams[i].dups.Load() }

// Foreign counts datagrams that were not the sender's packets.
func (k *Sink) Foreign() uint64 { return k.foreign.Load() }

// Record turns latency recording on or off.
func (k *Sink) Record(on bool) { k.recording.Store(on) }

// Run receives until Close, on a locked OS thread.
func (k *Sink) Run() error {
	k.started.Store(true)
	defer close(k.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !k.closing.Load() {
		for i := range k.hdrs {
			k.hdrs[i].Hdr.SetControllen(ctlSlot) // the kernel shrinks it to what it wrote
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(k.fd), uintptr(unsafe.Pointer(&k.hdrs[0])),
			uintptr(len(k.hdrs)), unix.MSG_WAITFORONE, 0, 0)
		switch e {
		case 0:
		case unix.EINTR, unix.EAGAIN:
			continue
		default:
			return os.NewSyscallError("recvmmsg", e)
		}
		now := Clock()
		rec := k.recording.Load()
		for i := range int(n) {
			b := k.buf[i*sinkSlot : i*sinkSlot+int(k.hdrs[i].Len)]
			s, num, sent, ok := Parse(b)
			if !ok || s >= len(k.streams) {
				k.foreign.Add(1)
				continue
			}
			if !k.streams[s].take(num) || !rec {
				continue
			}
			if at := k.arrival(i); at >= sent {
				k.Latency.Record(at - sent)
			}
			if now >= sent {
				k.AppLatency.Record(now - sent)
			}
		}
	}
	return nil
}

// arrival is when message i of the last receive arrived in the socket
// (Clock's time base), from its SCM_TIMESTAMPNS; 0 if it has none.
func (k *Sink) arrival(i int) uint64 {
	h := &k.hdrs[i].Hdr
	c := k.ctl[i*ctlSlot : i*ctlSlot+int(h.Controllen)]
	for len(c) >= unix.SizeofCmsghdr {
		m := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		if m.Len < unix.SizeofCmsghdr || int(m.Len) > len(c) {
			return 0
		}
		if m.Level == unix.SOL_SOCKET && m.Type == unix.SCM_TIMESTAMPNS && int(m.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&c[unix.CmsgLen(0)]))
			return uint64(ts.Nano())
		}
		c = c[min(unix.CmsgSpace(int(m.Len)-unix.CmsgLen(0)), len(c)):]
	}
	return 0
}

// take counts packet number n; true if it is new and at or above the
// floor.
func (st *streamState) take(n uint64) bool {
	if n < st.floor.Load() {
		st.stale.Add(1)
		return false
	}
	const window = 1 << 16
	switch {
	case n >= st.top:
		if n-st.top >= window {
			clear(st.seen[:])
		} else {
			for x := st.top; x <= n; x++ {
				st.seen[(x%window)/64] &^= 1 << (x % 64)
			}
		}
		st.top = n + 1
	case st.top-n > window:
		st.unique.Add(1) // too old to tell: count it
		return true
	}
	w, bit := (n%window)/64, uint64(1)<<(n%64)
	if st.seen[w]&bit != 0 {
		st.dups.Add(1)
		return false
	}
	st.seen[w] |= bit
	st.unique.Add(1)
	return true
}

// Close stops Run (within its receive timeout) and closes the socket.
func (k *Sink) Close() error {
	k.closing.Store(true)
	if k.started.Load() {
		<-k.done
	}
	return unix.Close(k.fd)
}
