//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time the whole process has used, all threads.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
