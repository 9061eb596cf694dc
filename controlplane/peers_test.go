package controlplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/signaling"
)

func TestCreatePeerWithAndWithoutID(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("alice")
	if p.ID != "alice" || !strings.HasPrefix(p.Token, "pt-") || len(p.Token) != len("pt-")+36 {
		t.Fatalf("peer %+v", p)
	}
	q := e.c.CreatePeer("")
	if q.ID == "" || q.ID == p.ID || !signaling.ValidID(q.ID) {
		t.Fatalf("server-assigned id %q", q.ID)
	}
	st := e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t)
	if st["peer_id"] != "alice" || st["disconnected"] != false {
		t.Fatalf("status %v", st)
	}
	// No more events after OPEN: the poll times out with 408.
	r := e.c.Do("GET", e.c.PeerEvents(p), nil)
	if r.Status != 408 || r.ErrorField(t) != "peer_id" {
		t.Fatalf("idle poll: %d %s", r.Status, r.Body)
	}
}

func TestCreatePeerBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.c.CreatePeer("taken")
	cases := []struct {
		name, body string
		status     int
		field      string
	}{
		{"empty body", ``, 400, "body"},
		{"not JSON", `{"key":`, 400, "body"},
		{"array", `[]`, 400, "body"},
		{"trailing data", `{"key":"k","domain":"d"} {}`, 400, "body"},
		{"no key", `{"domain":"localhost"}`, 400, "key"},
		{"empty key", `{"key":"","domain":"localhost"}`, 400, "key"},
		{"key not a string", `{"key":5,"domain":"localhost"}`, 400, "key"},
		{"no domain", `{"key":"k"}`, 400, "domain"},
		{"turn not a boolean", `{"key":"k","domain":"d","turn":"yes"}`, 400, "turn"},
		{"invalid peer id", `{"key":"k","domain":"d","peer_id":"no/slash"}`, 400, "peer_id"},
		{"peer id taken here", `{"key":"k","domain":"d","peer_id":"taken"}`, 400, "peer_id"},
		{"credential ttl too short", `{"key":"k","domain":"d","credential":{"timestamp":1,"ttl":599,"authToken":"YQ=="}}`, 400, "credential.ttl"},
		{"credential ttl too long", `{"key":"k","domain":"d","credential":{"timestamp":1,"ttl":90001,"authToken":"YQ=="}}`, 400, "credential.ttl"},
		{"credential timestamp not an integer", `{"key":"k","domain":"d","credential":{"timestamp":"abc","ttl":600,"authToken":"YQ=="}}`, 400, "credential.timestamp"},
		{"credential timestamp fractional", `{"key":"k","domain":"d","credential":{"timestamp":1.5,"ttl":600,"authToken":"YQ=="}}`, 400, "credential.timestamp"},
		{"credential without token", `{"key":"k","domain":"d","credential":{"timestamp":1,"ttl":600}}`, 400, "credential.authToken"},
		{"credential token not base64", `{"key":"k","domain":"d","credential":{"timestamp":1,"ttl":600,"authToken":"!!"}}`, 400, "credential.authToken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.c.Do("POST", "/peers", c.body)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if f := r.ErrorField(t); f != c.field {
				t.Fatalf("field %q, want %q: %s", f, c.field, r.Body)
			}
			if got := r.Map(t)["command_type"]; got != "PEERS_CREATE" {
				t.Fatalf("command_type %v", got)
			}
		})
	}
	// A body over the limit is refused from its Content-Length, before it is
	// read (413 is gw's own answer, outside the spec's codes).
	conn := dialRaw(t, e.apiAddr)
	fmt.Fprintf(conn, "POST /peers HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 2<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if r := (gwtest.Response{Status: resp.StatusCode, Body: body}); r.Status != 413 || r.ErrorField(t) != "body" || r.Map(t)["command_type"] != "PEERS_CREATE" {
		t.Fatalf("oversized body: %d %s", r.Status, body)
	}
	// Nothing was created by the failures: only "taken" exists.
	if n := len(e.srv.reg.allPeers()); n != 1 {
		t.Fatalf("%d peers after bad requests, want 1", n)
	}
}

func TestCreatePeerRefusedBySignaling(t *testing.T) {
	const secret = "s3cret"
	ks, err := signaling.NewKeyStore(
		signaling.Key{Key: "open"},
		signaling.Key{Key: "site", Domains: []string{"example.com"}},
		signaling.Key{Key: "auth", Secret: secret},
	)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withKeys(ks))

	// The id is held at the signaling server by someone else (another gw).
	other, err := signaling.Connect(context.Background(), signaling.ClientOptions{URL: "ws://" + e.sigAddr + "/peerjs", Key: "open", ID: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	now := time.Now()
	cred := func(ts time.Time, id string, secret string) map[string]any {
		c := signaling.NewCredential(secret, id, ts, time.Hour)
		return map[string]any{"timestamp": c.Timestamp, "ttl": c.TTL, "authToken": c.AuthToken}
	}
	cases := []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"unknown key", map[string]any{"key": "nope", "domain": "localhost"}, 403, "key"},
		{"domain not allowed", map[string]any{"key": "site", "domain": "evil.test"}, 403, "domain"},
		{"id taken at the server", map[string]any{"key": "open", "domain": "localhost", "peer_id": "busy"}, 400, "peer_id"},
		{"credential missing", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1"}, 403, "credential"},
		{"credential wrong secret", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1", "credential": cred(now, "a1", "wrong")}, 403, "credential"},
		{"credential for another id", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1", "credential": cred(now, "a2", secret)}, 403, "credential"},
		{"credential from the future", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1", "credential": cred(now.Add(time.Hour), "a1", secret)}, 403, "credential"},
		{"credential expired", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1", "credential": cred(now.Add(-2*time.Hour), "a1", secret)}, 403, "credential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.c.Do("POST", "/peers", c.body)
			if r.Status != c.status || r.ErrorField(t) != c.field {
				t.Fatalf("got %d %s, want %d on %s", r.Status, r.Body, c.status, c.field)
			}
		})
	}
	if n := len(e.srv.reg.allPeers()); n != 0 {
		t.Fatalf("%d peers after refusals", n)
	}
	// The refused id is free to try again here.
	r := e.c.Expect(201, "POST", "/peers", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "a1", "credential": cred(now, "a1", secret)})
	if r.Map(t)["params"].(map[string]any)["peer_id"] != "a1" {
		t.Fatalf("%s", r.Body)
	}
}

func TestCreatePeerSignalingUnreachable(t *testing.T) {
	ln := gwtest.FreePort(t) // nothing listens there
	e := newTestEnv(t, withSignalingURL(fmt.Sprintf("ws://127.0.0.1:%d/peerjs", ln)))
	r := e.c.Do("POST", "/peers", map[string]any{"key": "k", "domain": "localhost", "peer_id": "lonely"})
	if r.Status != 408 || r.ErrorField(t) != "signaling" {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
	// The id was not kept.
	if e.srv.reg.peer("lonely") != nil || e.srv.reg.reservePeerID("lonely") == false {
		t.Fatal("failed peer left its id behind")
	}
}

func TestPeerTokenAndIDErrors(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("bob")
	ops := []struct{ method, suffix, cmd string }{
		{"GET", "/status", "PEERS_STATUS"},
		{"GET", "/events", "PEERS_EVENTS"},
		{"DELETE", "", "PEERS_DELETE"},
		{"PUT", "/credential", "PEERS_CREDENTIAL_UPDATE"},
	}
	body := map[string]any{"timestamp": 1, "ttl": 600, "authToken": "YQ=="}
	for _, op := range ops {
		t.Run(op.method+op.suffix, func(t *testing.T) {
			var b any
			if op.method == "PUT" {
				b = body
			}
			check := func(path string, status int, field string) {
				t.Helper()
				r := e.c.Do(op.method, path, b)
				if r.Status != status || r.ErrorField(t) != field || r.Map(t)["command_type"] != op.cmd {
					t.Fatalf("%s %s: %d %s, want %d on %s", op.method, path, r.Status, r.Body, status, field)
				}
			}
			check("/peers/bob"+op.suffix, 400, "token")
			check("/peers/bob"+op.suffix+"?token=pt-wrong", 403, "token")
			check("/peers/nobody"+op.suffix+"?token="+p.Token, 404, "peer_id")
		})
	}
	// The peer is untouched by all that.
	st := e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t)
	if st["disconnected"] != false {
		t.Fatalf("status %v", st)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newTestEnv(t)
	// A wrong method is no operation of the spec, so the answer is checked
	// here rather than against it.
	// Allow names what the path does answer; OPTIONS is not among it.
	for _, c := range []struct{ method, path, cmd, allow string }{
		{"GET", "/peers", "PEERS_CREATE", "POST"},
		{"POST", "/peers/x/status?token=y", "PEERS_STATUS", "GET"},
		{"PATCH", "/media/connections/mc-1", "MEDIA_CONNECTION_DELETE", "DELETE"},
		{"OPTIONS", "/peers/x", "PEERS_DELETE", "DELETE"},
	} {
		r, err := e.c.DoRaw(c.method, c.path, "{}")
		if err != nil || r.Status != 405 || r.Map(t)["command_type"] != c.cmd || r.ErrorField(t) != "method" {
			t.Fatalf("%s %s: %v %d %s", c.method, c.path, err, r.Status, r.Body)
		}
		if got := r.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	raw, err := e.c.DoRaw("GET", "/nowhere", nil)
	if err != nil || raw.Status != 404 {
		t.Fatalf("unknown path: %v %d %s", err, raw.Status, raw.Body)
	}
	spec, err := e.c.DoRaw("GET", "/openapi.yaml", nil)
	if err != nil || spec.Status != 200 || !strings.Contains(string(spec.Body), "swagger: '2.0'") && !strings.Contains(string(spec.Body), `swagger: "2.0"`) {
		t.Fatalf("openapi.yaml: %v %d", err, spec.Status)
	}
}

func TestDeletePeerFiresCloseThen404(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("carol")
	e.c.DeletePeer(p)
	// The last event is still there for the app to see...
	ev := e.c.NextEvent(e.c.PeerEvents(p))
	if ev == nil || ev["event"] != "CLOSE" || ev["params"].(map[string]any)["peer_id"] != "carol" {
		t.Fatalf("after delete: %v", ev)
	}
	// ...then the peer is gone.
	for _, path := range []string{e.c.PeerEvents(p), peerPath(p, "/status")} {
		if r := e.c.Do("GET", path, nil); r.Status != 404 {
			t.Fatalf("GET %s after delete: %d %s", path, r.Status, r.Body)
		}
	}
	if r := e.c.Do("DELETE", "/peers/carol?token="+p.Token, nil); r.Status != 404 {
		t.Fatalf("second delete: %d", r.Status)
	}
	// The id left signaling: it can be registered again at once.
	q := e.c.CreatePeer("carol")
	if q.Token == p.Token {
		t.Fatal("token reused")
	}
}

func TestDeletePeerWakesWaitingPoll(t *testing.T) {
	e := newTestEnv(t)
	e.srv.cfg.EventTimeout = 20 * time.Second
	p := e.c.CreatePeer("dave")
	got := make(chan map[string]any, 1)
	go func() {
		r, err := e.c.DoRaw("GET", e.c.PeerEvents(p), nil)
		if err != nil {
			got <- nil
			return
		}
		var m map[string]any
		_ = jsonUnmarshal(r.Body, &m)
		got <- m
	}()
	time.Sleep(200 * time.Millisecond) // let the poll start waiting
	e.c.DeletePeer(p)
	select {
	case ev := <-got:
		if ev["event"] != "CLOSE" {
			t.Fatalf("waiting poll got %v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting poll not woken by delete")
	}
}

// Events are delivered in order, each exactly once, with no loss between
// polls, even with two pollers at once.
func TestEventsExactlyOnceTwoPollers(t *testing.T) {
	e := newTestEnv(t)
	e.srv.cfg.EventTimeout = 300 * time.Millisecond
	p := e.c.CreatePeer("eve")
	pe := e.srv.reg.peer("eve")
	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]int{}
	var orders [2][]int
	stop := make(chan struct{})
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e.c.DoRaw("GET", e.c.PeerEvents(p), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Status == 408 {
					continue
				}
				var ev struct {
					Event        string `json:"event"`
					RemainingSec int    `json:"remainingSec"`
				}
				if err := jsonUnmarshal(r.Body, &ev); err != nil || r.Status != 200 {
					t.Errorf("poll: %d %s", r.Status, r.Body)
					return
				}
				mu.Lock()
				seen[ev.RemainingSec]++
				orders[i] = append(orders[i], ev.RemainingSec)
				mu.Unlock()
			}
		}(i)
	}
	for i := 1; i <= n; i++ {
		sec := i
		pe.events.push(peerEvent{Event: "EXPIRESIN", RemainingSec: &sec})
		if i%50 == 0 {
			time.Sleep(400 * time.Millisecond) // some events wait with nobody polling
		}
	}
	waitFor(t, "all events taken", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	close(stop)
	wg.Wait()
	for i := 1; i <= n; i++ {
		if seen[i] != 1 {
			t.Fatalf("event %d delivered %d times", i, seen[i])
		}
	}
	for i, o := range orders {
		for j := 1; j < len(o); j++ {
			if o[j] < o[j-1] {
				t.Fatalf("poller %d saw %d after %d", i, o[j], o[j-1])
			}
		}
	}
}

// A poller that hangs up is not handed an event: the next poll gets it.
func TestEventNotLostToAbandonedPoll(t *testing.T) {
	e := newTestEnv(t)
	e.srv.cfg.EventTimeout = 10 * time.Second
	p := e.c.CreatePeer("frank")
	pe := e.srv.reg.peer("frank")
	// A raw HTTP poll whose client goes away while it waits.
	conn := dialRaw(t, e.apiAddr)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: gw\r\n\r\n", e.c.PeerEvents(p))
	waitFor(t, "poll waiting", 5*time.Second, func() bool {
		pe.events.mu.Lock()
		defer pe.events.mu.Unlock()
		return len(pe.events.waiters) == 1
	})
	conn.Close()
	time.Sleep(100 * time.Millisecond)
	sec := 42
	pe.events.push(peerEvent{Event: "EXPIRESIN", RemainingSec: &sec})
	ev := e.c.NextEvent(e.c.PeerEvents(p))
	if ev == nil || ev["event"] != "EXPIRESIN" || ev["remainingSec"] != float64(42) {
		t.Fatalf("event lost to the abandoned poll: %v", ev)
	}
}

func TestPeerSurvivesSignalingRestart(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("grace")
	status := func() bool {
		return e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t)["disconnected"].(bool)
	}
	if err := e.sig.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status disconnected", 10*time.Second, status)
	e.restartSignaling(0)
	waitFor(t, "status connected again", 20*time.Second, func() bool { return !status() })
	// No second OPEN, nor anything else.
	if r := e.c.Do("GET", e.c.PeerEvents(p), nil); r.Status != 408 {
		t.Fatalf("event after reconnect: %d %s", r.Status, r.Body)
	}
	// The id is still ours at the new server.
	_, err := signaling.Connect(context.Background(), signaling.ClientOptions{URL: "ws://" + e.sigAddr + "/peerjs", Key: "peerjs", ID: "grace"})
	if err == nil {
		t.Fatal("id not re-registered after restart")
	}
}

func TestCredentialRenewalAndExpiresIn(t *testing.T) {
	const secret = "topsecret"
	ks, err := signaling.NewKeyStore(signaling.Key{Key: "auth", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withKeys(ks))
	e.srv.cfg.EventTimeout = 5 * time.Second
	// A credential with 5 s left: EXPIRESIN comes at once.
	c := signaling.NewCredential(secret, "henry", time.Now().Add(-595*time.Second), 600*time.Second)
	r := e.c.Expect(201, "POST", "/peers", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "henry",
		"credential": map[string]any{"timestamp": c.Timestamp, "ttl": c.TTL, "authToken": c.AuthToken}})
	var resp struct {
		Params gwtest.Peer `json:"params"`
	}
	r.JSON(t, &resp)
	p := gwtest.Peer{ID: "henry", Token: r.Map(t)["params"].(map[string]any)["token"].(string)}
	e.c.WaitEvent(e.c.PeerEvents(p), "OPEN", 5*time.Second)
	ev := e.c.WaitEvent(e.c.PeerEvents(p), "EXPIRESIN", 10*time.Second)
	if sec := ev["remainingSec"].(float64); sec <= 0 || sec > 6 {
		t.Fatalf("remainingSec %v", sec)
	}
	// A wrong renewal: rejected by the server, the old credential still runs.
	bad := signaling.NewCredential("wrong", "henry", time.Now(), time.Hour)
	e.c.Expect(200, "PUT", peerPath(p, "/credential"), map[string]any{"timestamp": bad.Timestamp, "ttl": bad.TTL, "authToken": bad.AuthToken})
	if ev := e.c.WaitEvent(e.c.PeerEvents(p), "ERROR", 10*time.Second, "EXPIRESIN"); ev["error_message"] != "SERVER_ERROR" {
		t.Fatalf("the rejected renewal: %v", ev)
	}
	// A good renewal keeps the peer registered past the old expiry.
	good := signaling.NewCredential(secret, "henry", time.Now(), time.Hour)
	r = e.c.Expect(200, "PUT", peerPath(p, "/credential"), map[string]any{"timestamp": good.Timestamp, "ttl": good.TTL, "authToken": good.AuthToken})
	if cr := r.Map(t)["params"].(map[string]any)["credential"].(map[string]any); cr["authToken"] != good.AuthToken {
		t.Fatalf("renewal answer %s", r.Body)
	}
	time.Sleep(time.Until(time.Unix(c.Timestamp+c.TTL, 0)) + 2*time.Second)
	st := e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t)
	if st["disconnected"] != false {
		t.Fatalf("peer dropped after renewal: %v", st)
	}
	// Bad renewal bodies get 400s naming the field.
	for body, field := range map[string]string{
		`{"ttl":600,"authToken":"YQ=="}`:                  "timestamp",
		`{"timestamp":"x","ttl":600,"authToken":"YQ=="}`:  "timestamp",
		`{"timestamp":1,"ttl":100000,"authToken":"YQ=="}`: "ttl",
		`{"timestamp":1,"ttl":600}`:                       "authToken",
	} {
		r := e.c.Do("PUT", peerPath(p, "/credential"), body)
		if r.Status != 400 || r.ErrorField(t) != field {
			t.Errorf("%s: %d %s, want 400 on %s", body, r.Status, r.Body, field)
		}
	}
}

func TestCredentialExpiryFiresError(t *testing.T) {
	const secret = "topsecret"
	ks, err := signaling.NewKeyStore(signaling.Key{Key: "auth", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, withKeys(ks))
	e.srv.cfg.EventTimeout = 5 * time.Second
	c := signaling.NewCredential(secret, "ivy", time.Now().Add(-597*time.Second), 600*time.Second)
	r := e.c.Expect(201, "POST", "/peers", map[string]any{"key": "auth", "domain": "localhost", "peer_id": "ivy",
		"credential": map[string]any{"timestamp": c.Timestamp, "ttl": c.TTL, "authToken": c.AuthToken}})
	p := gwtest.Peer{ID: "ivy", Token: r.Map(t)["params"].(map[string]any)["token"].(string)}
	path := e.c.PeerEvents(p)
	e.c.WaitEvent(path, "OPEN", 5*time.Second)
	e.c.WaitEvent(path, "EXPIRESIN", 5*time.Second)
	ev := e.c.WaitEvent(path, "ERROR", 15*time.Second)
	if ev["error_message"] != "SERVER_ERROR" {
		t.Fatalf("expiry error %v", ev)
	}
	if st := e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t); st["disconnected"] != true {
		t.Fatalf("status after expiry %v", st)
	}
}

// 200 peers at once, then all deleted: nothing crashes and nothing leaks
// (goleak checks goroutines at the end of the package's tests).
func TestManyPeersConcurrently(t *testing.T) {
	e := newTestEnv(t)
	fds := openFDs(t)
	const n = 200
	peers := make([]gwtest.Peer, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := e.c.DoRaw("POST", "/peers", map[string]any{"key": "k", "domain": "localhost", "peer_id": fmt.Sprintf("many%d", i)})
			if err != nil || r.Status != 201 {
				t.Errorf("create %d: %v %d %s", i, err, r.Status, r.Body)
				return
			}
			peers[i] = gwtest.Peer{ID: fmt.Sprintf("many%d", i), Token: extractToken(r.Body)}
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := len(e.srv.reg.allPeers()); got != n {
		t.Fatalf("%d peers registered, want %d", got, n)
	}
	for i := range peers {
		wg.Add(1)
		go func(p gwtest.Peer) {
			defer wg.Done()
			r, err := e.c.DoRaw("DELETE", "/peers/"+url.PathEscape(p.ID)+"?token="+p.Token, nil)
			if err != nil || r.Status != 204 {
				t.Errorf("delete %s: %v %d", p.ID, err, r.Status)
			}
		}(peers[i])
	}
	wg.Wait()
	if got := len(e.srv.reg.allPeers()); got != 0 {
		t.Fatalf("%d peers left", got)
	}
	// HTTP keep-alive connections of the test client may linger; allow for
	// them but not for one fd per peer.
	waitFor(t, "fds back", 10*time.Second, func() bool { return openFDs(t) <= fds+10 })
}
