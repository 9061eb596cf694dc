package signaling

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/internal/gwtest"
)

func TestServerOpen(t *testing.T) {
	s := startServer(t, ServerOptions{})
	p := dialRaw(t, s.wsURL(), peerQuery("anykey", "alice", "t1"), nil)
	p.expect(`{"type":"OPEN"}`)
}

func TestServerMissingParams(t *testing.T) {
	s := startServer(t, ServerOptions{})
	for _, q := range []url.Values{
		{"key": {"k"}, "id": {"a"}},
		{"key": {"k"}, "token": {"t"}},
		{"id": {"a"}, "token": {"t"}},
	} {
		p := dialRaw(t, s.wsURL(), q, nil)
		got := p.expectClosed()
		want := `{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}}`
		if len(got) != 1 || got[0] != want {
			t.Errorf("query %v: frames %q, want [%s]", q, got, want)
		}
	}
}

func TestServerInvalidID(t *testing.T) {
	s := startServer(t, ServerOptions{})
	for _, id := range []string{"-a", "a-", "a--b", "a.b", "ä"} {
		p := dialRaw(t, s.wsURL(), peerQuery("k", id, "t"), nil)
		if got := p.expectClosed(); len(got) != 1 || !strings.Contains(got[0], msgInvalidID) {
			t.Errorf("id %q: frames %q", id, got)
		}
	}
}

func TestServerIDTaken(t *testing.T) {
	s := startServer(t, ServerOptions{})
	join(t, s.wsURL(), "alice")
	p := dialRaw(t, s.wsURL(), peerQuery("peerjs", "alice", "other"), nil)
	got := p.expectClosed()
	if want := `{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}`; len(got) != 1 || got[0] != want {
		t.Fatalf("frames %q, want [%s]", got, want)
	}
	// The same id under another key is another peer.
	q := peerQuery("otherkey", "alice", "other")
	dialRaw(t, s.wsURL(), q, nil).expect(`{"type":"OPEN"}`)
}

func TestServerSameTokenTakeover(t *testing.T) {
	s := startServer(t, ServerOptions{})
	old := join(t, s.wsURL(), "alice")
	bob := join(t, s.wsURL(), "bob")
	// Same id and token: no OPEN, the new socket gets alice's messages.
	repl := dialRaw(t, s.wsURL(), peerQuery("peerjs", "alice", "tok-alice"), nil)
	// The old socket is closed once replaced: wait for it so the relay
	// below cannot race the takeover.
	old.expectClosed()
	bob.send(`{"type":"OFFER","dst":"alice","payload":{"n":1}}`)
	repl.expect(`{"type":"OFFER","src":"bob","dst":"alice","payload":{"n":1}}`)
	// And it sends as alice.
	repl.send(`{"type":"ANSWER","dst":"bob","payload":{"n":2}}`)
	bob.expect(`{"type":"ANSWER","src":"alice","dst":"bob","payload":{"n":2}}`)
}

func TestServerRelay(t *testing.T) {
	s := startServer(t, ServerOptions{})
	a := join(t, s.wsURL(), "alice")
	b := join(t, s.wsURL(), "bob")
	// A forged src is replaced, unknown fields are not forwarded, the payload is.
	a.send(`{"type":"OFFER","src":"mallory","dst":"bob","extra":1,"payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_x"}}`)
	b.expect(`{"type":"OFFER","src":"alice","dst":"bob","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"data","connectionId":"dc_x"}}`)
	// Unknown types, malformed frames and heartbeats are not relayed.
	a.send(`{"type":"FOO","dst":"bob","payload":1}`)
	a.send(`not json`)
	a.send(`[1,2]`)
	a.send(`{"type":"HEARTBEAT","dst":"bob"}`)
	a.send(`{"type":"offer","dst":"bob"}`)
	a.send(`{"type":"CANDIDATE","dst":"bob","payload":null}`)
	b.expect(`{"type":"CANDIDATE","src":"alice","dst":"bob","payload":null}`)
	a.send(`{"type":"ANSWER","dst":"bob"}`)
	b.expect(`{"type":"ANSWER","src":"alice","dst":"bob"}`)
	// A binary frame holding JSON is read as text, as the official server does.
	if err := a.c.WriteMessage(2, []byte(`{"type":"LEAVE","dst":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	b.expect(`{"type":"LEAVE","src":"alice","dst":"bob"}`)
}

func TestServerQueueFlush(t *testing.T) {
	s := startServer(t, ServerOptions{}) // messages wait 5 s
	a := join(t, s.wsURL(), "alice")
	a.send(`{"type":"OFFER","dst":"bob","payload":1}`)
	a.send(`{"type":"CANDIDATE","dst":"bob","payload":2}`)
	a.send(`{"type":"LEAVE","dst":"bob"}`) // LEAVE and EXPIRE are not queued
	a.send(`{"type":"EXPIRE","dst":"bob"}`)
	a.send(`{"type":"CANDIDATE","dst":"bob","payload":3}`)
	a.sync("alice")
	// Bob gets OPEN, then the queue in order, then live messages.
	b := join(t, s.wsURL(), "bob")
	b.expect(`{"type":"OFFER","src":"alice","dst":"bob","payload":1}`)
	b.expect(`{"type":"CANDIDATE","src":"alice","dst":"bob","payload":2}`)
	b.expect(`{"type":"CANDIDATE","src":"alice","dst":"bob","payload":3}`)
	a.send(`{"type":"ANSWER","dst":"bob","payload":4}`)
	b.expect(`{"type":"ANSWER","src":"alice","dst":"bob","payload":4}`)
}

func TestServerQueueExpire(t *testing.T) {
	s := startServer(t, ServerOptions{ExpireTimeout: 300 * time.Millisecond, CheckInterval: 20 * time.Millisecond})
	a := join(t, s.wsURL(), "alice")
	b := join(t, s.wsURL(), "bob")
	// Nobody reads carol's queue: alice gets one EXPIRE, bob one.
	a.send(`{"type":"OFFER","dst":"carol","payload":1}`)
	a.send(`{"type":"CANDIDATE","dst":"carol","payload":2}`)
	b.send(`{"type":"OFFER","dst":"carol","payload":3}`)
	a.expect(`{"type":"EXPIRE","src":"carol","dst":"alice"}`)
	b.expect(`{"type":"EXPIRE","src":"carol","dst":"bob"}`)
	// The queue is gone: carol's first message after OPEN is a new one.
	c := join(t, s.wsURL(), "carol")
	a.send(`{"type":"OFFER","dst":"carol","payload":"fresh"}`)
	c.expect(`{"type":"OFFER","src":"alice","dst":"carol","payload":"fresh"}`)
	// And alice got exactly one EXPIRE: her next frame is bob's.
	b.send(`{"type":"ANSWER","dst":"alice","payload":0}`)
	a.expect(`{"type":"ANSWER","src":"bob","dst":"alice","payload":0}`)
}

func TestServerHeartbeatTimeout(t *testing.T) {
	s := startServer(t, ServerOptions{AliveTimeout: time.Second, CheckInterval: 20 * time.Millisecond})
	silent := join(t, s.wsURL(), "silent")
	alive := join(t, s.wsURL(), "alive")
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				alive.c.WriteMessage(1, []byte(`{"type":"HEARTBEAT"}`))
			}
		}
	}()
	silent.expectClosed()
	close(stop)
	<-beating
	// The silent id is free again, the heartbeating one still registered.
	join(t, s.wsURL(), "silent").send(`{"type":"OFFER","dst":"alive","payload":1}`)
	alive.expect(`{"type":"OFFER","src":"silent","dst":"alive","payload":1}`)
}

func TestServerConcurrentLimit(t *testing.T) {
	s := startServer(t, ServerOptions{ConcurrentLimit: 2})
	a := join(t, s.wsURL(), "a")
	join(t, s.wsURL(), "b")
	p := dialRaw(t, s.wsURL(), peerQuery("peerjs", "c", "t"), nil)
	if got := p.expectClosed(); len(got) != 1 || got[0] != `{"type":"ERROR","payload":{"msg":"Server has reached its concurrent user limit"}}` {
		t.Fatalf("frames %q", got)
	}
	// A leaving peer makes room.
	a.send(`{"type":"LEAVE"}`)
	a.expectClosed()
	join(t, s.wsURL(), "c")
}

func TestServerLeaveUnregisters(t *testing.T) {
	s := startServer(t, ServerOptions{})
	a := join(t, s.wsURL(), "alice")
	b := join(t, s.wsURL(), "bob")
	a.send(`{"type":"LEAVE"}`)
	a.expectClosed()
	// Messages to alice are queued now, and the id can be taken with
	// another token.
	b.send(`{"type":"OFFER","dst":"alice","payload":1}`)
	a2 := dialRaw(t, s.wsURL(), peerQuery("peerjs", "alice", "new-token"), nil)
	a2.expect(`{"type":"OPEN"}`)
	a2.expect(`{"type":"OFFER","src":"bob","dst":"alice","payload":1}`)
}

func writeKeys(t *testing.T, text string) *KeyStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestServerKeysAndDomains(t *testing.T) {
	ks := writeKeys(t, `
[[keys]]
key = "abc"
domains = ["example.com", "LOCALHOST"]

[[keys]]
key = "open"
`)
	s := startServer(t, ServerOptions{Keys: ks})
	origin := func(o string) http.Header {
		if o == "" {
			return nil
		}
		return http.Header{"Origin": {o}}
	}
	refused := func(key, id, o, want string) {
		t.Helper()
		p := dialRaw(t, s.wsURL(), peerQuery(key, id, "t"), origin(o))
		if got := p.expectClosed(); len(got) != 1 || got[0] != `{"type":"ERROR","payload":{"msg":"`+want+`"}}` {
			t.Errorf("key %q origin %q: frames %q, want ERROR %q", key, o, got, want)
		}
	}
	refused("nope", "a", "https://example.com", "Invalid key provided")
	refused("abc", "b", "https://evil.com", msgDomain)
	refused("abc", "c", "https://example.com.evil.com", msgDomain)
	refused("abc", "d", "", msgDomain)
	dialRaw(t, s.wsURL(), peerQuery("abc", "e", "t"), origin("https://example.com")).expect(`{"type":"OPEN"}`)
	dialRaw(t, s.wsURL(), peerQuery("abc", "f", "t"), origin("http://localhost:8080")).expect(`{"type":"OPEN"}`)
	dialRaw(t, s.wsURL(), peerQuery("open", "g", "t"), nil).expect(`{"type":"OPEN"}`)
}

func TestLoadKeysErrors(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown field": "[[keys]]\nkey = \"a\"\nsecrte = \"x\"\n",
		"empty key":     "[[keys]]\ndomains = [\"a.com\"]\n",
		"duplicate":     "[[keys]]\nkey = \"a\"\n[[keys]]\nkey = \"a\"\n",
		"bad domain":    "[[keys]]\nkey = \"a\"\ndomains = [\"https://a.com\"]\n",
		"syntax":        "[[keys]\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(path, []byte(text), 0o600)
		if _, err := LoadKeys(path); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := LoadKeys(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func httpGet(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: hang}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServerHTTP(t *testing.T) {
	s := startServer(t, ServerOptions{Fallback: func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString("viewer")
	}})
	origin := map[string]string{"Origin": "http://foo.example:8080"}

	resp, body := httpGet(t, "GET", s.httpURL()+"/", origin)
	if resp.StatusCode != 200 || body != banner || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("banner: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://foo.example:8080" || resp.Header.Get("Vary") != "Origin" {
		t.Errorf("banner CORS: %v", resp.Header)
	}
	resp, body = httpGet(t, "GET", s.httpURL()+"/", nil)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS without Origin: %v", resp.Header)
	}

	seen := map[string]bool{}
	for _, p := range []string{"/peerjs/id", "/anykey/id/", "/k/ID?ts=1"} {
		resp, body = httpGet(t, "GET", s.httpURL()+p, origin)
		if resp.StatusCode != 200 || len(body) != 36 || !ValidID(body) || seen[body] ||
			resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("GET %s: %d %v %q", p, resp.StatusCode, resp.Header, body)
		}
		seen[body] = true
	}

	resp, body = httpGet(t, "GET", s.httpURL()+"/peerjs/peers", nil)
	if resp.StatusCode != 401 || body != "Unauthorized" {
		t.Errorf("peers without discovery: %d %q", resp.StatusCode, body)
	}

	resp, _ = httpGet(t, "OPTIONS", s.httpURL()+"/k/id", map[string]string{
		"Origin": "http://a.b", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-Foo"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://a.b" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "X-Foo" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET,HEAD,PUT,PATCH,POST,DELETE" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	for _, p := range []string{"/viewer", "/a/b/c", "/peerjs"} {
		if resp, body = httpGet(t, "GET", s.httpURL()+p, nil); body != "viewer" {
			t.Errorf("GET %s: not passed to the fallback: %d %q", p, resp.StatusCode, body)
		}
	}
}

func TestServerHTTPDiscoveryAndPath(t *testing.T) {
	s := startServer(t, ServerOptions{Path: "/myapp", AllowDiscovery: true})
	join(t, "ws://"+s.addr+"/myapp/peerjs", "bob")
	join(t, "ws://"+s.addr+"/myapp/peerjs", "alice")
	for _, p := range []string{"/myapp", "/myapp/"} {
		if resp, body := httpGet(t, "GET", s.httpURL()+p, nil); resp.StatusCode != 200 || body != banner {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, body)
		}
	}
	resp, body := httpGet(t, "GET", s.httpURL()+"/myapp/peerjs/peers", nil)
	var ids []string
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ids) != nil || strings.Join(ids, ",") != "alice,bob" {
		t.Errorf("peers: %d %q", resp.StatusCode, body)
	}
	if resp, _ := httpGet(t, "GET", s.httpURL()+"/", nil); resp.StatusCode != 404 {
		t.Errorf("GET / outside the path: %d", resp.StatusCode)
	}
}

// TestServerCloseWithPeers checks Close ends every socket and goroutine
// (goleak checks the rest at the end).
func TestServerCloseWithPeers(t *testing.T) {
	s := startServer(t, ServerOptions{})
	a := join(t, s.wsURL(), "a")
	b := join(t, s.wsURL(), "b")
	b.send(`{"type":"OFFER","dst":"zed","payload":1}`) // a queue, too
	s.stop()
	a.expectClosed()
	b.expectClosed()
	if err := s.Serve(nil); err != ErrServerClosed {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestServerMounted: gw serves Handler from its own fasthttp server, beside
// its own routes; Close still ends every socket and goroutine of the
// signaling server.
func TestServerMounted(t *testing.T) {
	s := NewServer(ServerOptions{Fallback: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("gw") }})
	// A short idle-worker period: fasthttp's worker-pool cleaner (of this
	// stand-in for gw's server, not of the signaling server) outlives
	// Shutdown by that long.
	srv := &fasthttp.Server{Handler: s.Handler(), MaxIdleWorkerDuration: 10 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	wsURL := "ws://" + ln.Addr().String() + "/peerjs"
	a := join(t, wsURL, "alice")
	b := join(t, wsURL, "bob")
	a.send(`{"type":"OFFER","dst":"bob","payload":1}`)
	b.expect(`{"type":"OFFER","src":"alice","dst":"bob","payload":1}`)
	if _, body := httpGet(t, "GET", "http://"+ln.Addr().String()+"/page", nil); body != "gw" {
		t.Errorf("fallback: %q", body)
	}
	s.Close()
	a.expectClosed()
	b.expectClosed()
	srv.Shutdown()
	<-served
}

// A connection on which nothing arrives within the read timeout is closed
// without the error response fasthttp would write: a client's spare
// connection would hand that to its next request as the reply.
func TestServerUnusedConnection(t *testing.T) {
	s := NewServer(ServerOptions{})
	s.http.ReadTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		s.Close()
		<-served
	}()

	gwtest.ExpectClosedUnanswered(t, ln.Addr().String())
}
