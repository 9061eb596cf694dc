//go:build !unix

package procs

import "time"

func demand() (time.Duration, error) { return 0, ErrUnsupported }
