//go:build !linux

package procs

import "time"

// runWaits: the system does not tell; demand is the CPU time alone.
func runWaits() time.Duration { return 0 }
