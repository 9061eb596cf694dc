package signaling

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/gw-project/gw/internal/gwtest"
)

// TestConformance plays one script of raw frames against the official
// server and the embedded one, and requires the same frames back, byte for
// byte, close codes included: what a PeerJS client can see must not differ.
// (Not in the script: a frame that is not JSON, after which the official
// server stops handling the socket's frames, the parse error escaping into
// ws's receiver. No PeerJS client sends one; the embedded server drops it.)
func TestConformance(t *testing.T) {
	port := freePort(t)
	off := gwtest.StartOfficialPeerJSOn(t, port, "--expire_timeout", "300")
	ks, _ := NewKeyStore(Key{Key: "peerjs"}) // the official server's one key
	emb := startServer(t, ServerOptions{Keys: ks, ExpireTimeout: 300 * time.Millisecond})

	defer func() {
		if t.Failed() {
			t.Logf("official server output:\n%s", off.Output())
		}
	}()
	want := conformanceScript(t, off.WSURL())
	got := conformanceScript(t, emb.wsURL())
	if len(got) != len(want) {
		t.Fatalf("embedded gave %d lines, official %d:\n%s\n---\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\nembedded %s\nofficial %s", i, got[i], want[i])
		}
	}
}

// conformanceScript returns a transcript: "step: frame" lines.
func conformanceScript(t *testing.T, wsURL string) []string {
	var out []string
	rec := func(step string, p *rawPeer, n int) {
		for range n {
			out = append(out, step+": "+p.next())
		}
	}
	// recClosed records the frames up to the close and the close code.
	recClosed := func(step string, p *rawPeer) {
		p.c.SetReadDeadline(time.Now().Add(hang))
		for {
			_, b, err := p.c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					out = append(out, fmt.Sprintf("%s: close %d %q", step, ce.Code, ce.Text))
				} else {
					out = append(out, step+": "+err.Error())
				}
				return
			}
			out = append(out, step+": "+string(b))
		}
	}
	q := func(key, id, token string) url.Values { return peerQuery(key, id, token) }

	a := dialRaw(t, wsURL, q("peerjs", "alice", "ta"), nil)
	rec("alice open", a, 1)
	b := dialRaw(t, wsURL, q("peerjs", "bob", "tb"), nil)
	rec("bob open", b, 1)

	a.send(`{"type":"OFFER","src":"mallory","dst":"bob","extra":{"x":1},"payload":{"sdp":{"sdp":"v=0\r\na=x\r\n","type":"offer"},"type":"media","connectionId":"mc_1","metadata":{"ü":"<&>"}}}`)
	a.send(`{"type":"FOO","dst":"bob","payload":1}`)
	a.send(`{"type":"HEARTBEAT","dst":"bob"}`)
	a.send(`{"type":"CANDIDATE","dst":"bob","payload":null}`)
	a.send(`{"type":"ANSWER","dst":"bob","payload":[1,"two",{"3":true}]}`)
	a.send(`{"dst":"bob","type":"LEAVE"}`)
	a.send(`{"type":"EXPIRE","dst":"bob","payload":"s"}`)
	rec("bob relay", b, 5)

	// Queue for an absent peer, flushed after OPEN.
	a.send(`{"type":"OFFER","dst":"carol","payload":1}`)
	a.send(`{"type":"LEAVE","dst":"carol"}`)
	a.send(`{"type":"CANDIDATE","dst":"carol","payload":2}`)
	a.sync("alice")
	c := dialRaw(t, wsURL, q("peerjs", "carol", "tc"), nil)
	rec("carol open", c, 3)

	// Expiry of a queue nobody reads: one EXPIRE per sender.
	a.send(`{"type":"OFFER","dst":"dave","payload":1}`)
	a.send(`{"type":"OFFER","dst":"dave","payload":2}`)
	b.send(`{"type":"OFFER","dst":"dave","payload":3}`)
	rec("alice expire", a, 1)
	rec("bob expire", b, 1)

	recClosed("id taken", dialRaw(t, wsURL, q("peerjs", "alice", "other"), nil))
	recClosed("no token", dialRaw(t, wsURL, url.Values{"key": {"peerjs"}, "id": {"x"}}, nil))
	recClosed("bad key", dialRaw(t, wsURL, q("nope", "x", "t"), nil))

	// Same token: no OPEN, the new socket receives.
	a2 := dialRaw(t, wsURL, q("peerjs", "alice", "ta"), nil)
	a2.sync("alice")
	b.send(`{"type":"OFFER","dst":"alice","payload":"to new socket"}`)
	rec("alice takeover", a2, 1)
	return out
}
