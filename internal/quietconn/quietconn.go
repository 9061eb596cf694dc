// Package quietconn makes an HTTP server close, without an answer, a
// connection on which the client never sent a byte.
//
// fasthttp gives the first request on a connection its ReadTimeout, and
// when that runs out before anything arrived it writes an error response
// anyway. HTTP clients open connections they may never use (Go's
// transport dials a spare when all are busy, browsers preconnect), so the
// answer lands on an idle connection that the client later picks for a
// request: it reads that stale error as the reply, or logs an "unsolicited
// response". A server should just close such a connection, as it does an
// idle keep-alive one.
package quietconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Listen wraps ln: on its connections, a read that times out before the
// first byte ever read reports end of stream instead, which fasthttp takes
// for a client that went away. Once a byte has arrived, timeouts are
// reported as they are, so a request cut short still gets its 408.
func Listen(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c}, nil
}

// conn is read by one goroutine at a time (the server's, then a hijacker's),
// so started needs no lock.
type conn struct {
	net.Conn
	started bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.started = true
	}
	if err != nil && !c.started && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, io.EOF
	}
	return n, err
}

// SyscallConn passes the socket through for those that peek at it (the
// API's long-polls check that their client is still there).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}
