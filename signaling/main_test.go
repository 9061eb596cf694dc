package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/goleak"

	"github.com/gw-project/gw/internal/gwtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, gwtest.LeakOptions()...)
}

// hang bounds every wait in these tests; it is a guard against hanging, not
// a timing assertion.
const hang = 20 * time.Second

// embedded is a running Server on a loopback port.
type embedded struct {
	*Server
	addr   string
	served chan error
}

func startServer(t testing.TB, o ServerOptions) *embedded {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", o)
}

// startServerAt listens on addr (retrying briefly: the port may just have
// been released by a previous server) and serves until the test ends.
func startServerAt(t testing.TB, addr string, o ServerOptions) *embedded {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(hang); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	e := &embedded{Server: NewServer(o), addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { e.served <- e.Serve(ln) }()
	t.Cleanup(e.stop)
	return e
}

func (e *embedded) stop() {
	e.Close()
	<-e.served
	e.served <- nil // later stops return at once
}

func (e *embedded) wsURL() string   { return "ws://" + e.addr + "/peerjs" }
func (e *embedded) httpURL() string { return "http://" + e.addr }

// rawPeer is a bare WebSocket, to check the server frame by frame.
type rawPeer struct {
	t testing.TB
	c *websocket.Conn
}

func dialRaw(t testing.TB, wsURL string, q url.Values, hdr http.Header) *rawPeer {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: hang}
	c, resp, err := d.Dial(wsURL+"?"+q.Encode(), hdr)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	p := &rawPeer{t: t, c: c}
	t.Cleanup(func() { c.Close() })
	return p
}

func peerQuery(key, id, token string) url.Values {
	return url.Values{"key": {key}, "id": {id}, "token": {token}, "version": {"1.5.5"}}
}

// join registers id and checks the OPEN.
func join(t testing.TB, wsURL, id string) *rawPeer {
	t.Helper()
	p := dialRaw(t, wsURL, peerQuery("peerjs", id, "tok-"+id), nil)
	p.expect(`{"type":"OPEN"}`)
	return p
}

// sync waits until the server handled every frame p sent before: it sends
// itself an EXPIRE (relayed to registered ids) and waits for the echo.
func (p *rawPeer) sync(id string) {
	p.t.Helper()
	p.send(`{"type":"EXPIRE","dst":"` + id + `"}`)
	p.expect(`{"type":"EXPIRE","src":"` + id + `","dst":"` + id + `"}`)
}

func (p *rawPeer) send(s string) {
	p.t.Helper()
	if err := p.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame's text.
func (p *rawPeer) next() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(hang))
	_, b, err := p.c.ReadMessage()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return string(b)
}

func (p *rawPeer) expect(want string) {
	p.t.Helper()
	if got := p.next(); got != want {
		p.t.Fatalf("got frame %s\nwant       %s", got, want)
	}
}

// expectClosed reads until the server closes the socket; frames before are
// returned.
func (p *rawPeer) expectClosed() []string {
	p.t.Helper()
	var frames []string
	p.c.SetReadDeadline(time.Now().Add(hang))
	for {
		_, b, err := p.c.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatalf("socket not closed by the server; frames: %q", frames)
			}
			return frames
		}
		frames = append(frames, string(b))
	}
}

// recorder is a Handler that hands what it gets to the test.
type recorder struct {
	msgs    chan Message
	states  chan stateEvent
	expires chan int
}

type stateEvent struct {
	s   State
	err error
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan Message, 1000), states: make(chan stateEvent, 100), expires: make(chan int, 100)}
}

func (r *recorder) HandleMessage(m Message)          { r.msgs <- m }
func (r *recorder) HandleState(s State, err error)   { r.states <- stateEvent{s, err} }
func (r *recorder) HandleExpiresIn(remainingSec int) { r.expires <- remainingSec }

func (r *recorder) message(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(hang):
		t.Fatal("no message")
	}
	return Message{}
}

func (r *recorder) state(t testing.TB) stateEvent {
	t.Helper()
	select {
	case s := <-r.states:
		return s
	case <-time.After(hang):
		t.Fatal("no state change")
	}
	return stateEvent{}
}

func (r *recorder) expiresIn(t testing.TB) int {
	t.Helper()
	select {
	case s := <-r.expires:
		return s
	case <-time.After(hang):
		t.Fatal("no EXPIRESIN")
	}
	return 0
}

// fastClient are client options for tests: quick reconnection.
func fastClient(url, id string, h Handler) ClientOptions {
	return ClientOptions{URL: url, ID: id, Handler: h, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

func connect(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := Connect(ctx, o)
	if err != nil {
		t.Fatalf("connect %q to %s: %v", o.ID, o.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSend(t testing.TB, c *Client, m Message) {
	t.Helper()
	if err := c.Send(m); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// ---- the official PeerJS server (npm `peer`), run under node: gwtest ----

func freePort(t testing.TB) int { return gwtest.FreePort(t) }

// jsonEqual compares two JSON texts as values.
func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
