// Package freeport picks loopback TCP ports for processes that must be told
// their listen address before they start (tests and the bench run gw that
// way).
//
// The kernel's pick for port 0 is free when it is made, and nothing keeps it
// so: after the probe closes, the next pick may be the same port. A gw given
// one port for both its API and its signaling server fails to start. So a
// port is handed out at most once per process.
package freeport

import (
	"fmt"
	"net"
	"sync"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// TCP returns a port on 127.0.0.1 that is free now and that this process
// has not been given before.
func TCP() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[p] {
			given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("freeport: no new port in 100 tries (%d given)", len(given))
}
