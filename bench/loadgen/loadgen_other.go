//go:build !linux

package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// ThreadCPU is unknown here.
func ThreadCPU() time.Duration { return -1 }

// SenderConfig configures a Sender. GSO and Burst only shape pacing here:
// datagrams go out one per syscall.
type SenderConfig struct {
	Dst   netip.AddrPort
	Size  int
	GSO   bool
	Burst int
}

// Sender sends numbered datagrams at a paced rate (portable version).
type Sender struct {
	cfg     SenderConfig
	conn    *net.UDPConn
	buf     []byte
	next    uint64
	sent    atomic.Uint64
	behind  atomic.Uint64
	Sampler ThreadSampler
}

// NewSender opens a sender socket on the loopback address.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Size < MinSize {
		return nil, fmt.Errorf("loadgen: size %d < %d", cfg.Size, MinSize)
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 64
	}
	cfg.GSO = false
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, conn: conn, buf: make([]byte, cfg.Size)}, nil
}

func (s *Sender) Sent() uint64   { return s.sent.Load() }
func (s *Sender) Behind() uint64 { return s.behind.Load() }
func (s *Sender) Burst() int     { return s.cfg.Burst }
func (s *Sender) GSO() bool      { return false }
func (s *Sender) Close() error   { return s.conn.Close() }

// Run sends at rate datagrams per second (0: unpaced) until stop closes.
func (s *Sender) Run(rate float64, stop <-chan struct{}) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	burst := uint64(s.cfg.Burst)
	start := time.Now()
	var paced uint64
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if rate > 0 {
			due := uint64(rate * time.Since(start).Seconds())
			if paced+burst > due {
				time.Sleep(time.Duration(float64(paced+burst-due) / rate * float64(time.Second)))
				continue
			}
			if due-paced > uint64(rate/100)+burst {
				s.behind.Add(1)
				paced = due - burst
			}
		}
		for range burst {
			Stamp(s.buf, s.next)
			if _, err := s.conn.WriteToUDPAddrPort(s.buf, s.cfg.Dst); err != nil {
				return err
			}
			s.next++
		}
		s.sent.Add(burst)
		paced += burst
	}
}

// Receiver counts numbered datagrams (portable version).
type Receiver struct {
	conn                         *net.UDPConn
	next                         uint64
	datagrams, bytes, late, gaps atomic.Uint64
	stale, floor                 atomic.Uint64
	Sampler                      ThreadSampler
	started                      atomic.Bool
	done                         chan struct{}
}

// NewReceiver binds 127.0.0.1 on an ephemeral port; gro is ignored here.
func NewReceiver(gro bool, rcvbuf int) (*Receiver, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(rcvbuf)
	return &Receiver{conn: conn, done: make(chan struct{})}, nil
}

func (r *Receiver) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }
func (r *Receiver) GRO() bool            { return false }
func (r *Receiver) SockDrops() uint64    { return 0 }

func (r *Receiver) Stats() ReceiverStats {
	return ReceiverStats{Datagrams: r.datagrams.Load(), Bytes: r.bytes.Load(), Late: r.late.Load(), Gaps: r.gaps.Load(), Stale: r.stale.Load()}
}

// SetFloor makes the receiver count, from now on, only datagrams numbered
// seq or higher; older ones (stragglers of an earlier run still queued
// somewhere) count as Stale.
func (r *Receiver) SetFloor(seq uint64) { r.floor.Store(seq) }

// Run receives until Close.
func (r *Receiver) Run() error {
	r.started.Store(true)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(r.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if n < MinSize {
			continue
		}
		seq, floor := Seq(buf), r.floor.Load()
		if seq < floor {
			r.stale.Add(1)
			continue
		}
		r.next = max(r.next, floor)
		switch {
		case seq == r.next:
			r.next++
		case seq > r.next:
			r.gaps.Add(seq - r.next)
			r.next = seq + 1
		default:
			r.late.Add(1)
		}
		r.bytes.Add(uint64(n))
		r.Sampler.Poll(r.datagrams.Add(1))
	}
}

// Close stops Run and closes the socket.
func (r *Receiver) Close() error {
	err := r.conn.Close()
	if r.started.Load() {
		<-r.done
	}
	return err
}
