package udp

import (
	"net"
	"runtime"
	"syscall"
	"testing"
)

// The sockets ICE opens through ICENet get the receive buffer asked for
// (Linux reports twice the size set; elsewhere the kernel may cap it).
func TestICENetReceiveBuffer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_RCVBUF semantics are Linux's")
	}
	const want = 1 << 20
	n, err := ICENet(want)
	if err != nil {
		t.Fatal(err)
	}
	u, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	p, err := n.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []any{u, p} {
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		_ = rc.Control(func(fd uintptr) { got, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
		if err != nil {
			t.Fatal(err)
		}
		if got < want {
			t.Errorf("%T: SO_RCVBUF %d, want at least %d", c, got, want)
		}
	}
}
