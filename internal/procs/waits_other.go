//go:build !linux

package procs

import "time"

// waits: the system does not tell how long threads waited to run, so
// demand is the CPU time alone.
type waits struct{}

func (*waits) since() time.Duration { return 0 }
func (*waits) close()               {}
