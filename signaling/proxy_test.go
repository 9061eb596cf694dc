package signaling

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy is a loopback TCP relay in front of a server, to break a client's
// connection in ways a server restart cannot: cut the client's side while
// the server still holds its socket, or refuse new connections.
type proxy struct {
	t        testing.TB
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup

	mu    sync.Mutex
	down  bool
	pairs []*proxyPair
}

type proxyPair struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func startProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		pair := &proxyPair{client: c, server: s}
		p.mu.Lock()
		p.pairs = append(p.pairs, pair)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pair, s, c, false)
		go p.pipe(pair, c, s, true)
	}
}

// pipe copies until either side fails. It closes the client's side when
// the server's ends, never the other way round, so that cutClients leaves
// the server's side open.
// A frozen pair swallows everything, like a network path gone dead.
func (p *proxy) pipe(pair *proxyPair, dst, src net.Conn, closeDst bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pair.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if closeDst {
		dst.Close()
	}
}

// freeze turns every relayed connection into a black hole, both ways; new
// connections are relayed as usual.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.frozen.Store(true)
	}
}

// setDown makes the proxy refuse (accept and close) new connections.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// cutClients closes the client side of every relayed connection; the server
// side stays open, so the server still thinks those peers are there.
func (p *proxy) cutClients() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.client.Close()
	}
}

// cutServers closes the server side of every relayed connection.
func (p *proxy) cutServers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.server.Close()
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, pr := range p.pairs {
		pr.client.Close()
		pr.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
