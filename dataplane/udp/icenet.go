package udp

import (
	"net"
	"syscall"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// ICENet is the network pion's ICE agent opens its sockets through: the
// standard one, except that its UDP sockets get a receive buffer of sockBuf
// bytes, like the dataplane's ports. With the kernel's default (about
// 200 KiB, some 90 datagrams of video), a reader that the scheduler holds
// off for a few milliseconds at 10,000 packets/s loses packets; a busy
// board does that.
func ICENet(sockBuf int) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &iceNet{Net: n, sockBuf: sockBuf}, nil
}

type iceNet struct {
	*stdnet.Net
	sockBuf int
}

func (n *iceNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n *iceNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n *iceNet) grow(c any) {
	sc, ok := c.(interface {
		syscall.Conn
		SetReadBuffer(int) error
	})
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		setRecvBuffer(rc, n.sockBuf, sc.SetReadBuffer)
	}
}
