//go:build !linux

package controlplane

import "net"

// connAlive cannot peek portably; assume the client is there.
func connAlive(net.Conn) bool { return true }
