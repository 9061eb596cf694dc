package controlplane

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/udp"
	"github.com/gw-project/gw/internal/gwtest"
)

// withDataPlane gives the env a data plane that takes whole 64 KiB
// datagrams. Its ports, like the test apps' sockets, lie below the
// kernel's ephemeral range: other tests on the machine leave gateways
// sending to ephemeral ports their apps have let go, and such a port, once
// reused here, would receive their packets.
func withDataPlane() envOption {
	return func(e *testEnv, c *Config) {
		dp, err := dataplane.New(dataplane.DefaultName(), dataplane.Config{
			Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 21000, PortMax: 21999, BufSize: 64 << 10, BatchSize: 8,
		})
		if err != nil {
			e.t.Fatal(err)
		}
		c.DataDataplane = dp
		// Registered before the env's own cleanup, so it runs after it.
		e.t.Cleanup(func() { _ = dp.Close() })
	}
}

// dataApp is a program on the app side of a data port: a UDP socket that
// sends to gw and records what gw forwards to it.
type dataApp struct {
	t     testing.TB
	conn  *net.UDPConn
	mu    sync.Mutex
	got   [][]byte
	n     atomic.Int64 // datagrams received
	bytes atomic.Int64
	wake  chan struct{}
	done  chan struct{}
	// onRecv, if set, sees each datagram instead of got keeping it.
	onRecv atomic.Pointer[func([]byte)]
}

// newDataApp listens on loopback with a big receive buffer, so that
// bursts from gw are not lost in the test's own socket.
func newDataApp(t testing.TB) *dataApp {
	t.Helper()
	var c *net.UDPConn
	var err error
	for range 100 {
		// Outside the ephemeral range (see withDataPlane).
		port := 24000 + mathrand.IntN(4000)
		if c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	udp.SetReadBuffer(c, 16<<20)
	a := &dataApp{t: t, conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go a.read()
	t.Cleanup(func() {
		c.Close()
		<-a.done
	})
	return a
}

func (a *dataApp) read() {
	defer close(a.done)
	buf := make([]byte, 70000)
	for {
		n, err := a.conn.Read(buf)
		if err != nil {
			return
		}
		b := bytes.Clone(buf[:n])
		if f := a.onRecv.Load(); f != nil {
			(*f)(b)
		} else {
			a.mu.Lock()
			a.got = append(a.got, b)
			a.mu.Unlock()
		}
		a.bytes.Add(int64(n))
		a.n.Add(1)
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

func (a *dataApp) addr() netip.AddrPort { return a.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (a *dataApp) redirect() map[string]any {
	return map[string]any{"ip_v4": "127.0.0.1", "port": a.addr().Port()}
}

func (a *dataApp) send(to int, b []byte) {
	a.t.Helper()
	if _, err := a.conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(to))); err != nil {
		a.t.Fatal(err)
	}
}

// waitN waits until n datagrams have arrived.
func (a *dataApp) waitN(n int, timeout time.Duration) {
	a.t.Helper()
	deadline := time.After(timeout)
	for a.n.Load() < int64(n) {
		select {
		case <-a.wake:
		case <-deadline:
			a.t.Fatalf("%d of %d datagrams arrived within %s", a.n.Load(), n, timeout)
		}
	}
}

func (a *dataApp) received() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]byte(nil), a.got...)
}

// dataLink is a data connection between two peers, each side with its
// data port and its app.
type dataLink struct {
	c            [2]*gwtest.Client
	conn         [2]string // data_connection_id
	dataID       [2]string
	port         [2]int
	app          [2]*dataApp
	peer         [2]gwtest.Peer
	connectReply map[string]any
}

func (l *dataLink) events(i int) string { return "/data/connections/" + l.conn[i] + "/events" }
func (l *dataLink) status(i int) string { return "/data/connections/" + l.conn[i] + "/status" }

// openData opens a data port.
func openData(t testing.TB, c *gwtest.Client) (id string, port int) {
	t.Helper()
	r := c.Expect(201, "POST", "/data", map[string]any{}).Map(t)
	return r["data_id"].(string), int(r["port"].(float64))
}

// linkData connects peer a (on ca) to peer b (on cb) with options, feeds
// and redirects both sides, and waits for OPEN on both.
func linkData(t testing.TB, ca, cb *gwtest.Client, a, b gwtest.Peer, options map[string]any) *dataLink {
	t.Helper()
	l := &dataLink{c: [2]*gwtest.Client{ca, cb}, peer: [2]gwtest.Peer{a, b}}
	for i := range 2 {
		l.app[i] = newDataApp(t)
		l.dataID[i], l.port[i] = openData(t, l.c[i])
	}
	body := map[string]any{
		"peer_id": a.ID, "token": a.Token, "target_id": b.ID,
		"params":          map[string]any{"data_id": l.dataID[0]},
		"redirect_params": l.app[0].redirect(),
	}
	if options != nil {
		body["options"] = options
	}
	r := ca.Expect(202, "POST", "/data/connections", body).Map(t)
	l.connectReply = r
	l.conn[0] = r["params"].(map[string]any)["data_connection_id"].(string)
	ev := cb.WaitEvent(cb.PeerEvents(b), "CONNECTION", 20*time.Second)
	l.conn[1] = ev["data_params"].(map[string]any)["data_connection_id"].(string)
	put := cb.Expect(200, "PUT", "/data/connections/"+l.conn[1], map[string]any{
		"feed_params":     map[string]any{"data_id": l.dataID[1]},
		"redirect_params": l.app[1].redirect(),
	}).Map(t)
	if put["data_id"] != l.dataID[1] || put["command_type"] != "DATA_CONNECTION_PUT" {
		t.Fatalf("PUT answer %v", put)
	}
	for i := range 2 {
		l.c[i].WaitEvent(l.events(i), "OPEN", 20*time.Second)
	}
	return l
}

// exchange sends msgs from side i's app and checks side 1-i's app gets
// them, in order, byte for byte.
func (l *dataLink) exchange(t testing.TB, i int, msgs ...[]byte) {
	t.Helper()
	rx := l.app[1-i]
	before := len(rx.received())
	for _, m := range msgs {
		l.app[i].send(l.port[i], m)
	}
	rx.waitN(before+len(msgs), 20*time.Second)
	got := rx.received()[before:]
	for k := range msgs {
		if !bytes.Equal(got[k], msgs[k]) {
			t.Fatalf("side %d → %d, datagram %d: got %q, want %q", i, 1-i, k, trunc(got[k]), trunc(msgs[k]))
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
	}
	return string(b)
}

// pumpData sends n datagrams made by gen from each side's app to the
// other's at once, keeping at most a window in flight so that neither the
// gw's port nor the test's socket overflows, and checks that every one
// arrives intact: in order if ordered, else as a multiset.
func pumpData(t testing.TB, l *dataLink, n int, ordered bool, gen func(dir, i int) []byte, timeout time.Duration) {
	t.Helper()
	const windowBytes, windowCount = 1 << 20, 256
	var wg sync.WaitGroup
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	deadline := time.Now().Add(timeout)
	for dir := range 2 {
		tx, rx := l.app[dir], l.app[1-dir]
		var next int
		want := map[string]int{}
		if !ordered {
			for i := range n {
				want[string(gen(dir, i))]++
			}
		}
		var mu sync.Mutex
		check := func(b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if ordered {
				if next >= n {
					fail("dir %d: datagram beyond the %d sent: %s", dir, n, trunc(b))
					return
				}
				if exp := gen(dir, next); !bytes.Equal(b, exp) {
					fail("dir %d: datagram %d: got %s, want %s", dir, next, trunc(b), trunc(exp))
				}
				next++
				return
			}
			if want[string(b)] == 0 {
				fail("dir %d: unexpected or repeated datagram %s", dir, trunc(b))
			}
			want[string(b)]--
		}
		rx.onRecv.Store(&check)
		rxBase, rxBytesBase := rx.n.Load(), rx.bytes.Load()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sentBytes int64
			for i := range n {
				d := gen(dir, i)
				for int64(i)-(rx.n.Load()-rxBase) > windowCount || sentBytes-(rx.bytes.Load()-rxBytesBase) > windowBytes {
					if time.Now().After(deadline) || failed.Load() {
						fail("dir %d: stalled after %d of %d sent, %d received", dir, i, n, rx.n.Load()-rxBase)
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
				if _, err := tx.conn.WriteToUDPAddrPort(d, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(l.port[dir]))); err != nil {
					fail("dir %d: send: %v", dir, err)
					return
				}
				sentBytes += int64(len(d))
			}
			for rx.n.Load()-rxBase < int64(n) {
				if time.Now().After(deadline) || failed.Load() {
					fail("dir %d: %d of %d received", dir, rx.n.Load()-rxBase, n)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for dir := range 2 {
		l.app[1-dir].onRecv.Store(nil)
	}
}
