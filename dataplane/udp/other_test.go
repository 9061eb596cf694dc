//go:build !linux

package udp

import "github.com/gw-project/gw/dataplane"

func coalesced(dataplane.Port) uint64 { return 0 }
