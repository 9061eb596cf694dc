//go:build unix && !linux

package udp

import "syscall"

const msgTrunc = syscall.MSG_TRUNC
