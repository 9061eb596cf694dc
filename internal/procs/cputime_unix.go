//go:build unix

package procs

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time all the process's threads have used, one
// system call.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
