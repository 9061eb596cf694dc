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

func (s *iceSender) setup(c *net.UDPConn, _ syscall.RawConn) error {
	s.c = c
	return nil
}

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	for _, p := range pkts {
		_, _ = s.c.WriteToUDPAddrPort(p, dst)
	}
}
