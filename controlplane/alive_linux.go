package controlplane

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connAlive reports whether the client of a waiting long-poll is still
// there: a peek that reads end-of-stream means it hung up, and an event must
// not be handed to a request nobody will read. The peek consumes nothing.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = rc.Control(func(fd uintptr) {
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			alive = n > 0 // 0 bytes: orderly shutdown by the client
		case errors.Is(err, unix.EAGAIN):
			alive = true
		default:
			alive = false // reset or other socket error
		}
	})
	return err == nil && alive
}
