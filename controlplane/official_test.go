package controlplane

import (
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// A gw peer registers at the official PeerJS server (npm `peer`) and stays
// registered across a restart of it.
func TestPeerAtOfficialPeerJSServer(t *testing.T) {
	o := gwtest.StartOfficialPeerJS(t)
	e := newTestEnv(t, withSignalingURL(o.WSURL()))
	p := e.c.CreatePeer("official1")
	anon := e.c.CreatePeer("") // the official server assigns the id
	if anon.ID == "" {
		t.Fatal("no id assigned")
	}
	status := func() bool {
		return e.c.Expect(200, "GET", peerPath(p, "/status"), nil).Map(t)["disconnected"].(bool)
	}
	if status() {
		t.Fatal("disconnected right after OPEN")
	}
	// The id is held there: another gw cannot register it.
	e2 := newTestEnv(t, withSignalingURL(o.WSURL()))
	r := e2.c.Do("POST", "/peers", map[string]any{"key": "peerjs", "domain": "localhost", "peer_id": "official1"})
	if r.Status != 400 || r.ErrorField(t) != "peer_id" {
		t.Fatalf("duplicate id: %d %s", r.Status, r.Body)
	}
	port := o.Port
	o.Kill()
	waitFor(t, "status disconnected", 10*time.Second, status)
	gwtest.StartOfficialPeerJSOn(t, port)
	waitFor(t, "reconnected", 30*time.Second, func() bool { return !status() })
	if r := e.c.Do("GET", e.c.PeerEvents(p), nil); r.Status != 408 {
		t.Fatalf("event after reconnect: %d %s", r.Status, r.Body)
	}
	e.c.DeletePeer(p)
	e.c.DeletePeer(anon)
}
