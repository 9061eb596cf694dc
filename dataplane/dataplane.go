// Package dataplane moves datagrams between local UDP ports and the rest of
// gw. The control plane opens ports here and says where their packets go; it
// never touches packets itself. Implementations live in dataplane/udp and
// register themselves by name (see Register).
//
// # Buffer ownership
//
// Receive: a port's worker reads datagrams into buffers it owns (taken from
// a bufpool.Pool when the port opens) and hands them to the port's Sink as one
// batch. The batch slice, each Packet and each Packet.Data are valid only until
// Receive returns; then the worker reuses them for the next read. A sink that
// needs bytes later copies them. A sink that blocks stops the port from being
// read: the kernel's socket buffer holds what arrives meanwhile (this is the
// backpressure reliable data channels rely on).
//
// Send: Send and WriteTo never retain the caller's buffers; when they return
// the caller may reuse or Put them. Both are safe for concurrent use.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"time"
)

// Packet is one datagram.
type Packet struct {
	Data []byte
	// Addr is the sender on receive.
	Addr netip.AddrPort
}

// Sink takes the datagrams a port receives. Receive runs on the port's worker
// goroutine, one batch at a time, never concurrently for one port.
type Sink interface {
	Receive(batch []Packet)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(batch []Packet)

// Receive calls f.
func (f SinkFunc) Receive(batch []Packet) { f(batch) }

// Port is one local UDP endpoint.
type Port interface {
	// LocalAddr is the address the app sends to.
	LocalAddr() netip.AddrPort
	// SetSink replaces where received datagrams go, effective from the next
	// batch. With no sink (nil) they are dropped and counted as DropNoSink.
	SetSink(Sink)
	// Send writes each datagram of pkts to dst, batching where the
	// implementation can. It returns how many were sent.
	Send(pkts [][]byte, dst netip.AddrPort) (int, error)
	// WriteTo sends one datagram to dst.
	WriteTo(b []byte, dst netip.AddrPort) error
	// Stats returns a snapshot of the port's counters.
	Stats() Stats
	// Close stops the worker, waits for it to exit (so the sink is never
	// called after Close returns) and frees the port number. Idempotent.
	Close() error
}

// Dataplane opens ports. Implementations are safe for concurrent use.
type Dataplane interface {
	// Name is the registry name ("std", "mmsg").
	Name() string
	// Open binds the next free port of the configured range and starts its
	// receive worker with no sink. ErrRangeExhausted when none is free.
	Open() (Port, error)
	// Egress is a shared send-only port bound to the configured address on
	// an ephemeral port outside the range; gw sends to apps through it.
	Egress() Port
	// Totals returns the counters of all its ports together (for metrics).
	Totals() Totals
	// Close closes every port still open. Idempotent.
	Close() error
}

// Totals are a dataplane's counters since it was created.
type Totals struct {
	// Stats sums every port it opened, closed ones included, and the egress
	// port, so that each counter only grows (what Prometheus counters
	// need); Features is the union of the open ports' features.
	Stats
	// Ports is how many ports of the range are open now.
	Ports int
	// Polling is how many of them read on the linger tick now rather than
	// wait for each datagram (Config.Linger).
	Polling int
	// Buffers is how many packet buffers the dataplane's pool has made,
	// BuffersIdle how many of them wait in it (the rest are held by port
	// workers), each of BufSize bytes.
	Buffers, BuffersIdle, BufSize int
}

// Add adds o's counters to s and unites the features.
func (s *Stats) Add(o Stats) {
	s.RxPackets += o.RxPackets
	s.RxBytes += o.RxBytes
	s.TxPackets += o.TxPackets
	s.TxBytes += o.TxBytes
	s.RxSyscalls += o.RxSyscalls
	s.TxSyscalls += o.TxSyscalls
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
	for i := range s.BatchHist {
		s.BatchHist[i] += o.BatchHist[i]
	}
	s.Features |= o.Features
}

// Config is what every implementation is built from.
type Config struct {
	// Addr is the local IP ports bind to (--media-addr).
	Addr netip.Addr
	// PortMin and PortMax bound the range, inclusive (--port-range).
	PortMin, PortMax int
	// BufSize is the size of each packet buffer; 0 means DefaultBufSize.
	// Longer datagrams are dropped and counted as DropTruncated.
	BufSize int
	// BatchSize is how many datagrams one receive may take; 0 means
	// DefaultBatchSize.
	BatchSize int
	// CPUs, if not empty, are the CPUs receive workers are pinned to,
	// round-robin (--dataplane-cpus). A pinned worker is also locked to its
	// OS thread, and each wake-up then hands the runtime's P over to that
	// thread: it pays where a core is set aside for a busy port, not for
	// sparse traffic (package udp's doc).
	CPUs []int
	// SockBuf is the kernel receive buffer (SO_RCVBUF) asked for each port,
	// in bytes; 0 means DefaultSockBuf. It is what absorbs bursts (a key
	// frame) while the worker is descheduled. The kernel caps it at
	// net.core.rmem_max unless the process may override that.
	SockBuf int
	// Disable lists kernel features not to use even where the kernel has
	// them (FeatureGSO, FeatureGRO, FeatureRxqOvfl):
	// for troubleshooting, and for measuring what each one buys.
	Disable Features
	// Linger, if positive, is the tick workers wait for before reading
	// again while the dataplane receives at least LingerRate packets/s
	// over all its ports (--dataplane-linger): datagrams then travel in
	// batches, one thread wake-up per tick instead of one per datagram,
	// for at most Linger of added latency.
	Linger     time.Duration
	LingerRate int
}

// Defaults.
const (
	// DefaultBufSize holds a datagram of a 1500-byte MTU with room to spare.
	DefaultBufSize   = 2048
	DefaultBatchSize = 64
	// DefaultSockBuf is 4 MiB: a few hundred milliseconds of a 50 Mbit/s
	// stream.
	DefaultSockBuf = 4 << 20
)

// ErrRangeExhausted is returned by Open when every port of the range is taken.
var ErrRangeExhausted = errors.New("dataplane: no free port in range")

// Drop reasons, indexes into Stats.Drops.
const (
	DropNoSink    = iota // received while the port had no sink
	DropTruncated        // datagram longer than the buffer
	DropSendError        // the kernel refused a send
	DropOverflow         // the kernel dropped it: receive queue full (SO_RXQ_OVFL)
	NumDropReasons
)

// DropReasonNames label Stats.Drops in metrics.
var DropReasonNames = [NumDropReasons]string{"no_sink", "truncated", "send_error", "rx_queue_overflow"}

// BatchBuckets are the upper bounds of Stats.BatchHist's buckets: a receive
// of n datagrams counts in the first bucket with n <= bound.
var BatchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Stats are a port's counters since it opened.
//
// RxPackets and RxBytes count datagrams handed to a sink; a datagram that is
// dropped (Drops) is not in them. A datagram the kernel coalesced (GRO) counts
// as the datagrams it carries. RxSyscalls and TxSyscalls count system calls
// (for batched receive, also the call that finds the socket empty before the
// worker waits).
// BatchHist counts receive calls by how many datagrams each
// returned; a call returning more than the last bound counts in the last
// bucket.
type Stats struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	RxSyscalls         uint64
	TxSyscalls         uint64
	Drops              [NumDropReasons]uint64
	BatchHist          [len(BatchBuckets)]uint64
	// Features are the kernel features in use on the port now; a feature
	// the kernel refuses at run time (GSO) disappears from it.
	Features Features
}

// Features are optional kernel facilities a port uses.
type Features uint32

// Port features.
const (
	FeatureBatchRecv Features = 1 << iota // recvmmsg
	FeatureBatchSend                      // sendmmsg
	FeatureGSO                            // UDP_SEGMENT on send
	FeatureGRO                            // UDP_GRO on receive
	FeatureRxqOvfl                        // kernel drop counter (SO_RXQ_OVFL / SO_MEMINFO)
	FeaturePinned                         // receive worker pinned to a CPU
	numFeatures      = iota
)

var featureNames = [numFeatures]string{"recvmmsg", "sendmmsg", "gso", "gro", "rxq_ovfl", "pinned"}

// String lists the features, comma separated ("-" for none).
func (f Features) String() string {
	if f == 0 {
		return "-"
	}
	s := ""
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			if s != "" {
				s += ","
			}
			s += n
		}
	}
	return s
}

// Factory builds a Dataplane from a Config.
type Factory func(Config) (Dataplane, error)

var (
	regMu    sync.Mutex
	registry = map[string]Factory{}
)

// Register makes an implementation available to New under name. It panics on
// a duplicate name: registration happens in init.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("dataplane: duplicate implementation " + name)
	}
	registry[name] = f
}

// Names lists registered implementations, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultName is the implementation gw uses unless told otherwise: the
// batched one on Linux, the portable one elsewhere.
func DefaultName() string {
	if runtime.GOOS == "linux" {
		return "mmsg"
	}
	return "std"
}

// New builds the named implementation.
func New(name string, cfg Config) (Dataplane, error) {
	regMu.Lock()
	f, ok := registry[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dataplane: unknown implementation %q (have %v)", name, Names())
	}
	if cfg.BufSize == 0 {
		cfg.BufSize = DefaultBufSize
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.SockBuf == 0 {
		cfg.SockBuf = DefaultSockBuf
	}
	if cfg.Linger < 0 || cfg.LingerRate < 0 {
		return nil, fmt.Errorf("dataplane: negative linger (%v at %d packets/s)", cfg.Linger, cfg.LingerRate)
	}
	if cfg.BufSize < 0 || cfg.BatchSize < 0 || cfg.SockBuf < 0 {
		return nil, fmt.Errorf("dataplane: negative size in config (buf %d, batch %d, sockbuf %d)", cfg.BufSize, cfg.BatchSize, cfg.SockBuf)
	}
	if !cfg.Addr.IsValid() {
		return nil, errors.New("dataplane: no local address")
	}
	if cfg.PortMin < 1 || cfg.PortMax > 65535 || cfg.PortMin > cfg.PortMax {
		return nil, fmt.Errorf("dataplane: bad port range %d-%d", cfg.PortMin, cfg.PortMax)
	}
	return f(cfg)
}
