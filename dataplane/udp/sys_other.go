//go:build !linux

package udp

import (
	"errors"
	"syscall"
)

// setAffinity is not available: workers stay unpinned.
func setAffinity(int) error { return errors.ErrUnsupported }

// gettid is unknown here, so a sink that closes its own port deadlocks.
func gettid() int { return 0 }

func setRecvBuffer(_ syscall.RawConn, n int, set func(int) error) { _ = set(n) }

const sockDropsSupported = false

func sockDrops(syscall.RawConn) (uint64, bool) { return 0, false }
