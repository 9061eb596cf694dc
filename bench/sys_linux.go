package main

import (
	"fmt"
	"syscall"
)

// raiseNoFile makes sure this process may open need files (Go raises the
// soft limit to the hard one at start; this says so clearly when even that
// is too low). gw inherits the limit.
func raiseNoFile(need uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= need {
		return nil
	}
	if l.Max < need {
		return fmt.Errorf("open-file limit %d (hard) is below the %d needed: raise it (ulimit -n) or lower -controlplane.polls", l.Max, need)
	}
	l.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
