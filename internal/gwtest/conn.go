package gwtest

import (
	"io"
	"net"
	"testing"
	"time"
)

// ExpectClosedUnanswered opens a connection to addr, sends nothing, and
// checks that the server closes it (within 10 s, so a read timeout under
// that) without writing a byte.
func ExpectClosedUnanswered(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("unused connection to %s: read %q, %v; want it closed with nothing", addr, b, err)
	}
}
