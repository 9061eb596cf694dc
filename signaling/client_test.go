package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// target is a signaling server a client test runs against.
type target struct {
	name        string
	wsURL       string
	stop, start func() // start again on the same port
}

func embeddedTarget(t *testing.T) target {
	s := startServer(t, ServerOptions{})
	addr := s.addr
	return target{name: "embedded", wsURL: s.wsURL(),
		stop:  func() { s.stop() },
		start: func() { s = startServerAt(t, addr, ServerOptions{}) },
	}
}

func officialTarget(t *testing.T) target {
	port := freePort(t)
	o := gwtest.StartOfficialPeerJSOn(t, port)
	return target{name: "official", wsURL: o.WSURL(),
		stop:  func() { o.Kill() },
		start: func() { o = gwtest.StartOfficialPeerJSOn(t, port) },
	}
}

func forEachServer(t *testing.T, f func(t *testing.T, tg target)) {
	t.Run("embedded", func(t *testing.T) { f(t, embeddedTarget(t)) })
	t.Run("official", func(t *testing.T) { f(t, officialTarget(t)) })
}

func payload(s string) json.RawMessage { return json.RawMessage(s) }

// exchange sends OFFER, ANSWER and CANDIDATEs between a and b and checks
// what arrives, in order, with the right src.
func exchange(t *testing.T, a, b *Client, ra, rb *recorder) {
	t.Helper()
	offer := payload(`{"sdp":{"sdp":"v=0\r\n","type":"offer"},"type":"data","connectionId":"dc_abc","label":"dc_abc","reliable":false,"serialization":"binary"}`)
	mustSend(t, a, Message{Type: TypeOffer, Dst: b.ID(), Payload: offer})
	m := rb.message(t)
	if m.Type != TypeOffer || m.Src != a.ID() || m.Dst != b.ID() || !jsonEqual(string(m.Payload), string(offer)) {
		t.Fatalf("b got %+v", m)
	}
	answer := payload(`{"sdp":{"sdp":"v=0\r\n","type":"answer"},"type":"data","connectionId":"dc_abc"}`)
	mustSend(t, b, Message{Type: TypeAnswer, Dst: a.ID(), Payload: answer})
	for i := range 3 {
		c := payload(`{"candidate":{"candidate":"candidate:` + string(rune('0'+i)) + `","sdpMid":"0","sdpMLineIndex":0},"type":"data","connectionId":"dc_abc"}`)
		mustSend(t, a, Message{Type: TypeCandidate, Dst: b.ID(), Payload: c})
	}
	if m := ra.message(t); m.Type != TypeAnswer || m.Src != b.ID() || !jsonEqual(string(m.Payload), string(answer)) {
		t.Fatalf("a got %+v", m)
	}
	for i := range 3 {
		m := rb.message(t)
		if m.Type != TypeCandidate || m.Src != a.ID() || !strings.Contains(string(m.Payload), `candidate:`+string(rune('0'+i))) {
			t.Fatalf("b got %+v, want candidate %d", m, i)
		}
	}
}

func TestClientExchange(t *testing.T) {
	forEachServer(t, func(t *testing.T, tg target) {
		ra, rb := newRecorder(), newRecorder()
		a := connect(t, fastClient(tg.wsURL, "alice", ra))
		b := connect(t, fastClient(tg.wsURL, "", rb)) // the server picks the id
		if a.ID() != "alice" || len(b.ID()) != 36 || !a.Connected() || !b.Connected() {
			t.Fatalf("ids %q %q", a.ID(), b.ID())
		}
		exchange(t, a, b, ra, rb)
		// Close sends LEAVE: the id is free at once for another token.
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(Message{Type: TypeOffer, Dst: b.ID()}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		a.Close()
		connect(t, fastClient(tg.wsURL, "alice", nil))
		select {
		case s := <-ra.states:
			t.Fatalf("state after Close: %v", s)
		default:
		}
	})
}

func TestClientErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	check := func(o ClientOptions, want error) {
		t.Helper()
		c, err := Connect(ctx, o)
		if !errors.Is(err, want) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Connect(%s key %q id %q domain %q): %v, want %v", o.URL, o.Key, o.ID, o.Domain, err, want)
		}
	}
	forEachServer(t, func(t *testing.T, tg target) {
		connect(t, fastClient(tg.wsURL, "taken", nil))
		check(fastClient(tg.wsURL, "taken", nil), ErrIDTaken)
		check(fastClient(tg.wsURL, "bad id!", nil), ErrInvalidID)
		if tg.name == "official" {
			o := fastClient(tg.wsURL, "x", nil)
			o.Key = "notpeerjs"
			check(o, ErrInvalidKey)
		}
	})
	ks, _ := NewKeyStore(Key{Key: "abc", Domains: []string{"example.com"}})
	s := startServer(t, ServerOptions{Keys: ks})
	o := fastClient(s.wsURL(), "x", nil)
	o.Key = "nope"
	check(o, ErrInvalidKey)
	o.Key, o.Domain = "abc", "evil.com"
	check(o, ErrDomain)
	o.Domain = "example.com"
	c, err := Connect(ctx, o)
	if err != nil {
		t.Fatalf("allowed domain: %v", err)
	}
	c.Close()
	// Nobody listening: a dial error, not a protocol one.
	s.stop()
	if _, err := Connect(ctx, o); err == nil || errors.Is(err, ErrServer) || fatal(err) {
		t.Errorf("connect to a stopped server: %v", err)
	}
}

// TestClientRestart: the server goes away and comes back on the same port;
// clients reconnect with their ids, report Reconnected (never a new open),
// and what was sent while disconnected is delivered.
func TestClientRestart(t *testing.T) {
	forEachServer(t, func(t *testing.T, tg target) {
		ra, rb := newRecorder(), newRecorder()
		a := connect(t, fastClient(tg.wsURL, "alice", ra))
		b := connect(t, fastClient(tg.wsURL, "bob", rb))
		exchange(t, a, b, ra, rb)

		tg.stop()
		for _, r := range []*recorder{ra, rb} {
			if s := r.state(t); s.s != Disconnected || s.err == nil {
				t.Fatalf("state %v %v, want Disconnected with a cause", s.s, s.err)
			}
		}
		if a.Connected() {
			t.Fatal("connected with the server down")
		}
		mustSend(t, a, Message{Type: TypeOffer, Dst: "bob", Payload: payload(`{"queued":true}`)})
		tg.start()
		for _, r := range []*recorder{ra, rb} {
			if s := r.state(t); s.s != Reconnected || s.err != nil {
				t.Fatalf("state %v %v, want Reconnected", s.s, s.err)
			}
		}
		if m := rb.message(t); m.Type != TypeOffer || m.Src != "alice" || string(m.Payload) != `{"queued":true}` {
			t.Fatalf("bob got %+v", m)
		}
		if a.ID() != "alice" || b.ID() != "bob" || !a.Connected() {
			t.Fatal("ids changed or not connected")
		}
		exchange(t, b, a, rb, ra)
		for _, r := range []*recorder{ra, rb} {
			select {
			case s := <-r.states:
				t.Fatalf("unexpected state %v %v", s.s, s.err)
			default:
			}
		}
	})
}

// TestClientTakeover: the client loses its socket but the server does not
// notice; the reconnection takes the registration over (the server sends no
// OPEN then) and must still count as reconnected.
func TestClientTakeover(t *testing.T) {
	forEachServer(t, func(t *testing.T, tg target) {
		px := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(tg.wsURL, "ws://"), "/peerjs"))
		ra, rb := newRecorder(), newRecorder()
		a := connect(t, fastClient("ws://"+px.addr()+"/peerjs", "alice", ra))
		b := connect(t, fastClient(tg.wsURL, "bob", rb))
		px.cutClients()
		if s := ra.state(t); s.s != Disconnected {
			t.Fatalf("state %v", s.s)
		}
		if s := ra.state(t); s.s != Reconnected {
			t.Fatalf("state %v %v", s.s, s.err)
		}
		exchange(t, a, b, ra, rb)
	})
}

// TestClientIDTakenOnReconnect: while the client is away its id is taken by
// another token; the client fails for good instead of retrying.
func TestClientIDTakenOnReconnect(t *testing.T) {
	s := startServer(t, ServerOptions{})
	px := startProxy(t, s.addr)
	ra := newRecorder()
	a := connect(t, fastClient("ws://"+px.addr()+"/peerjs", "alice", ra))
	px.setDown(true)
	px.cutServers() // the server sees alice leave
	if st := ra.state(t); st.s != Disconnected {
		t.Fatalf("state %v", st.s)
	}
	// Take the id once the server has forgotten alice.
	for deadline := time.Now().Add(hang); ; {
		p := dialRaw(t, s.wsURL(), peerQuery("peerjs", "alice", "thief"), nil)
		if f := p.next(); f == `{"type":"OPEN"}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("id never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	px.setDown(false)
	st := ra.state(t)
	if st.s != Failed || !errors.Is(st.err, ErrIDTaken) {
		t.Fatalf("state %v %v, want Failed ErrIDTaken", st.s, st.err)
	}
	if err := a.Send(Message{Type: TypeOffer, Dst: "x"}); err == nil || !errors.Is(err, ErrIDTaken) {
		t.Fatalf("Send after Failed: %v", err)
	}
}

func TestClientQueueBound(t *testing.T) {
	s := startServer(t, ServerOptions{})
	px := startProxy(t, s.addr)
	ra := newRecorder()
	o := fastClient("ws://"+px.addr()+"/peerjs", "alice", ra)
	o.QueueSize = 2
	a := connect(t, o)
	px.setDown(true)
	px.cutClients()
	if st := ra.state(t); st.s != Disconnected {
		t.Fatalf("state %v", st.s)
	}
	mustSend(t, a, Message{Type: TypeCandidate, Dst: "x"})
	mustSend(t, a, Message{Type: TypeCandidate, Dst: "x"})
	if err := a.Send(Message{Type: TypeCandidate, Dst: "x"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Send: %v", err)
	}
	if err := a.Send(Message{Dst: "x"}); err == nil {
		t.Fatal("Send without type accepted")
	}
}

// TestClientHeartbeat: heartbeats keep a client registered at a server that
// drops silent peers quickly.
func TestClientHeartbeat(t *testing.T) {
	// A client gives a socket up after 3 heartbeats without a frame: at
	// 150 ms that tolerates a 450 ms stall, which a loaded 2-core machine
	// running the other packages' tests can reach at 50 ms.
	s := startServer(t, ServerOptions{AliveTimeout: time.Second, CheckInterval: 20 * time.Millisecond})
	ra, rb := newRecorder(), newRecorder()
	o := fastClient(s.wsURL(), "alice", ra)
	o.Heartbeat = 150 * time.Millisecond
	a := connect(t, o)
	o = fastClient(s.wsURL(), "bob", rb)
	o.Heartbeat = 150 * time.Millisecond
	b := connect(t, o)
	time.Sleep(3 * time.Second) // three alive timeouts
	exchange(t, a, b, ra, rb)
	for _, r := range []*recorder{ra, rb} {
		select {
		case st := <-r.states:
			t.Fatalf("state %v %v", st.s, st.err)
		default:
		}
	}
}

// TestClientDeadPath: the network path goes dead without any close; the
// client notices by its pings going unanswered, and reconnects (taking its
// registration over, as the server has not noticed either).
func TestClientDeadPath(t *testing.T) {
	forEachServer(t, func(t *testing.T, tg target) {
		px := startProxy(t, strings.TrimSuffix(strings.TrimPrefix(tg.wsURL, "ws://"), "/peerjs"))
		ra, rb := newRecorder(), newRecorder()
		o := fastClient("ws://"+px.addr()+"/peerjs", "alice", ra)
		o.Heartbeat = 100 * time.Millisecond
		a := connect(t, o)
		b := connect(t, fastClient(tg.wsURL, "bob", rb))
		px.freeze()
		// Sends while the path is dead are not lost.
		mustSend(t, a, Message{Type: TypeOffer, Dst: "bob", Payload: payload(`"during"`)})
		if st := ra.state(t); st.s != Disconnected {
			t.Fatalf("state %v", st.s)
		}
		if st := ra.state(t); st.s != Reconnected {
			t.Fatalf("state %v %v", st.s, st.err)
		}
		if m := rb.message(t); m.Type != TypeOffer || string(m.Payload) != `"during"` {
			t.Fatalf("bob got %+v", m)
		}
		exchange(t, a, b, ra, rb)
	})
}
