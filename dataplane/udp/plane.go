package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/bufpool"
)

func init() {
	dataplane.Register("std", func(cfg dataplane.Config) (dataplane.Dataplane, error) {
		return newPlane("std", cfg, listenStd)
	})
}

// port is what a plane needs of an implementation's port.
type port interface {
	dataplane.Port
	b() *base
	// start launches the receive worker.
	start()
}

// listenFunc binds a socket on addr:num (num 0: ephemeral, for egress) and
// builds a port around it without starting it. A bind conflict must wrap
// syscall.EADDRINUSE (net.ListenUDP's errors do).
type listenFunc func(pl *plane, num int, egress bool) (port, error)

// plane implements dataplane.Dataplane for either implementation.
type plane struct {
	name   string
	cfg    dataplane.Config
	pool   *bufpool.Pool
	ports  *dataplane.PortAllocator
	listen listenFunc
	egress port

	nextCPU atomic.Uint32
	linger  *linger // nil: workers never hold reads back

	mu     sync.Mutex
	live   map[*base]port
	closed bool
	gone   dataplane.Stats // counters of the ports closed so far
}

func newPlane(name string, cfg dataplane.Config, listen listenFunc) (*plane, error) {
	cfg.Addr = cfg.Addr.Unmap()
	pl := &plane{
		name:   name,
		cfg:    cfg,
		pool:   bufpool.New(cfg.BufSize),
		ports:  dataplane.NewPortAllocator(cfg.PortMin, cfg.PortMax),
		listen: listen,
		live:   map[*base]port{},
		linger: newLinger(cfg.Linger, cfg.LingerRate),
	}
	eg, err := listen(pl, 0, true)
	if err != nil {
		return nil, fmt.Errorf("dataplane %s: egress socket: %w", name, err)
	}
	pl.egress = eg
	return pl, nil
}

func (pl *plane) Name() string           { return pl.name }
func (pl *plane) Egress() dataplane.Port { return pl.egress }

// Open binds the lowest free port of the range and starts its worker.
func (pl *plane) Open() (dataplane.Port, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		return nil, fmt.Errorf("dataplane %s: %w", pl.name, net.ErrClosed)
	}
	var p port
	_, err := pl.ports.Acquire(func(num int) error {
		var err error
		p, err = pl.listen(pl, num, false)
		return err
	})
	if err != nil {
		if errors.Is(err, dataplane.ErrRangeExhausted) {
			return nil, fmt.Errorf("dataplane %s on %s: %w", pl.name, pl.cfg.Addr, err)
		}
		return nil, fmt.Errorf("dataplane %s: open port on %s: %w", pl.name, pl.cfg.Addr, err)
	}
	pl.live[p.b()] = p
	p.start()
	return p, nil
}

// forget drops a closed port from the live set, keeping its counters for
// Totals. (A Send on the port after this is not counted there.)
func (pl *plane) forget(b *base) {
	st := b.Stats()
	st.Features = 0 // Totals' features are the open ports'
	pl.mu.Lock()
	delete(pl.live, b)
	pl.gone.Add(st)
	pl.mu.Unlock()
}

// Totals sums the counters of open and closed ports and egress. The lock
// is held throughout so that a port closing meanwhile counts exactly once.
func (pl *plane) Totals() dataplane.Totals {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	t := dataplane.Totals{Stats: pl.gone, Ports: len(pl.live)}
	for _, p := range pl.live {
		t.Add(p.Stats())
	}
	t.Add(pl.egress.Stats())
	t.Buffers, t.BuffersIdle, t.BufSize = pl.pool.Allocated(), pl.pool.Idle(), pl.pool.Size()
	if pl.linger != nil {
		t.Polling = int(pl.linger.polling.Load())
	}
	return t
}

// Close closes every open port, then the egress port.
func (pl *plane) Close() error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.closed = true
	ports := make([]port, 0, len(pl.live))
	for _, p := range pl.live {
		ports = append(ports, p)
	}
	pl.mu.Unlock()
	var errs []error
	for _, p := range ports {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := pl.egress.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cpuFor picks the CPU of the next worker, -1 for none.
func (pl *plane) cpuFor() int {
	if len(pl.cfg.CPUs) == 0 {
		return -1
	}
	i := pl.nextCPU.Add(1) - 1
	return pl.cfg.CPUs[int(i)%len(pl.cfg.CPUs)]
}

// listenUDP binds the configured address. An IPv6 unspecified address gives
// a dual-stack socket, so apps can reach it over either family.
func listenUDP(pl *plane, num int) (*net.UDPConn, error) {
	a := pl.cfg.Addr
	network := "udp6"
	switch {
	case a.Is4():
		network = "udp4"
	case a == netip.IPv6Unspecified():
		network = "udp"
	}
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(num))))
}
