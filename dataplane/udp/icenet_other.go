//go:build !linux

package udp

import (
	"net"
	"net/netip"
	"syscall"
)

// Without sendmmsg there is nothing to gain from queueing.
const iceBatching = false

type iceSender struct{ c *net.UDPConn }

// open: the socket stays with u.
func (c *iceConn) open(u *net.UDPConn, _ syscall.RawConn) error {
	c.tx.c = u
	return nil
}

func (c *iceConn) writeNow(b []byte, dst netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, dst)
}

func (c *iceConn) closeSocket() error { return c.UDPConn.Close() }

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	for _, p := range pkts {
		_, _ = s.c.WriteToUDPAddrPort(p, dst)
	}
}

// iceReceiver reads straight from the socket.
type iceReceiver struct{}

func (r *iceReceiver) read(c *net.UDPConn, b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

// groBufSize: no receive buffers of its own here.
const groBufSize = 0
