package udp

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const msgTrunc = unix.MSG_TRUNC

// setAffinity pins the calling thread to cpu.
func setAffinity(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

func gettid() int { return unix.Gettid() }

// setRecvBuffer asks for a receive buffer of n bytes. SO_RCVBUFFORCE goes
// past net.core.rmem_max when the process may (CAP_NET_ADMIN, as gw often
// runs on a device); otherwise SO_RCVBUF gets what the sysctl allows.
func setRecvBuffer(rc syscall.RawConn, n int, fallback func(int) error) {
	forced := false
	_ = rc.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil
	})
	if !forced {
		_ = fallback(n)
	}
}

const sockDropsSupported = true

// sockDrops reads the kernel's drop count of the socket (SO_MEMINFO), which
// is the same counter SO_RXQ_OVFL reports, but current even when no datagram
// has arrived since the drops.
func sockDrops(rc syscall.RawConn) (uint64, bool) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	ok := false
	err := rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		ok = e == 0 && l > unix.SK_MEMINFO_DROPS*4
	})
	if err != nil || !ok {
		return 0, false
	}
	return uint64(mem[unix.SK_MEMINFO_DROPS]), true
}
