//go:build !unix

package loadgen

import "time"

// ProcessCPU is unknown here.
func ProcessCPU() time.Duration { return -1 }
