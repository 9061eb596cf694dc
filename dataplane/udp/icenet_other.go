//go:build !linux

package udp

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/gw-project/gw/dataplane/bufpool"
)

// Without sendmmsg there is nothing to gain from queueing.
const iceBatching = false

type iceSender struct{ c *net.UDPConn }

func (s *iceSender) setup(c *net.UDPConn, _ syscall.RawConn) error {
	s.c = c
	return nil
}

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	for _, p := range pkts {
		_, _ = s.c.WriteToUDPAddrPort(p, dst)
	}
}

// iceReceiver reads straight from the socket.
type iceReceiver struct{}

func (r *iceReceiver) setup(syscall.RawConn, *bufpool.Pool) {}

func (r *iceReceiver) read(c *net.UDPConn, b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

// groBufSize: no receive buffers of its own here.
const groBufSize = 0
