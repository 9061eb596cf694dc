package quietconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// accept returns the server side of a fresh loopback connection through
// Listen, and the client side.
func accept(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	q := Listen(ln)
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = q.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

func TestTimeoutBeforeFirstByteIsEOF(t *testing.T) {
	s, _ := accept(t)
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := s.Read(make([]byte, 8))
	if n != 0 || err != io.EOF {
		t.Fatalf("read = %d, %v; want 0, EOF", n, err)
	}
}

func TestTimeoutAfterFirstByteStays(t *testing.T) {
	s, c := accept(t)
	if _, err := c.Write([]byte("G")); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := s.Read(make([]byte, 8)); n != 1 || err != nil {
		t.Fatalf("first read = %d, %v", n, err)
	}
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a byte: %v, want a deadline error", err)
	}
}

func TestOtherErrorsPass(t *testing.T) {
	s, c := accept(t)
	c.Close()
	s.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := s.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("read after the client closed: %v, want EOF", err)
	}
	s.Close()
	if _, err := s.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

func TestSyscallConn(t *testing.T) {
	s, _ := accept(t)
	sc, ok := s.(syscall.Conn)
	if !ok {
		t.Fatal("conn does not offer its socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
		t.Fatalf("control: fd %d, %v", fd, err)
	}
}
