//go:build !unix

package procs

import "time"

func cpuTime() (time.Duration, error) { return 0, ErrUnsupported }
