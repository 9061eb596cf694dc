//go:build unix

package procs

import (
	"syscall"
	"time"
)

// demand is the CPU time the process has used plus, where the system
// tells (runWaits), the time its threads have waited to run.
func demand() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + runWaits(), nil
}
