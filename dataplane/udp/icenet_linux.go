package udp

import (
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

const iceBatching = true

// iceSender sends an ICE socket's queue with the dataplane's batch sender.
type iceSender struct{ b batchSender }

func (s *iceSender) setup(_ *net.UDPConn, rc syscall.RawConn) error {
	var family int
	var gso bool
	var ferr error
	err := rc.Control(func(fd uintptr) {
		family, ferr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		_, e := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = e == nil
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	s.b.init(rc, family, gso, nil)
	return nil
}

func (s *iceSender) send(pkts [][]byte, dst netip.AddrPort) {
	_, _, _, _ = s.b.sendBatch(pkts, dst)
}
