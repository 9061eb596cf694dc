package dataplane

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

// PortAllocator hands out the port numbers of a range, lowest free first,
// as the original gateway did (50001, 50002, ...). Implementations share it
// so that every one numbers ports the same way. Safe for concurrent use.
type PortAllocator struct {
	min, max int

	mu   sync.Mutex
	used []bool // used[p-min]: handed out and not yet released
}

// NewPortAllocator covers [min, max], inclusive. The range is assumed valid
// (New checks it).
func NewPortAllocator(min, max int) *PortAllocator {
	return &PortAllocator{min: min, max: max, used: make([]bool, max-min+1)}
}

// Range returns the bounds, inclusive.
func (a *PortAllocator) Range() (min, max int) { return a.min, a.max }

// Acquire walks the range from its start and calls bind for each port it has
// not handed out, until bind succeeds; that port is then the caller's until
// Release. A bind error that wraps syscall.EADDRINUSE means another socket
// (usually another process) holds the port: it is skipped, not marked. Any
// other bind error stops the walk and is returned as is, since it would fail
// the same way on every port (bad address, no permission).
//
// The lock is held across bind so that two Acquires never race for the same
// number; opening ports is control-plane work, not the packet path.
//
// With no port left, the error wraps ErrRangeExhausted and says how many
// ports gw holds and how many others hold.
func (a *PortAllocator) Acquire(bind func(port int) error) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	mine, others := 0, 0
	for i, u := range a.used {
		if u {
			mine++
			continue
		}
		port := a.min + i
		err := bind(port)
		if err == nil {
			a.used[i] = true
			return port, nil
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			others++
			continue
		}
		return 0, err
	}
	return 0, fmt.Errorf("%w %d-%d (%d held by gw, %d by other sockets)", ErrRangeExhausted, a.min, a.max, mine, others)
}

// Release makes port available again. Releasing a port that is not held, or
// outside the range, does nothing.
func (a *PortAllocator) Release(port int) {
	if port < a.min || port > a.max {
		return
	}
	a.mu.Lock()
	a.used[port-a.min] = false
	a.mu.Unlock()
}

// InUse reports how many ports are handed out.
func (a *PortAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, u := range a.used {
		if u {
			n++
		}
	}
	return n
}
