package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Ports are free, and distinct although the kernel picks from some 14,000
// (the even half of the ephemeral range): among 1,000 of its picks some
// port comes twice, all but surely.
func TestTCPDistinctAndFree(t *testing.T) {
	seen := map[int]bool{}
	for range 1000 {
		p, err := TCP()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p, err := TCP()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d not free: %v", p, err)
	}
	ln.Close()
}
