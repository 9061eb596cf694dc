package procs

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// runWaits sums the time the process's live threads have waited on a run
// queue (run_delay, the second field of each thread's schedstat).
func runWaits() time.Duration {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var total time.Duration
	var buf [128]byte
	for _, t := range tasks {
		f, err := os.Open("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		n, _ := f.Read(buf[:])
		f.Close()
		fields := bytes.Fields(buf[:n])
		if len(fields) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(string(fields[1]), 10, 64); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}
