package signaling

import (
	"sync"
	"testing"
	"time"
)

// observed counts what an Observe hook was told.
type observed struct {
	mu sync.Mutex
	n  map[[2]string]int
}

func (o *observed) hook(typ, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[[2]string]int{}
	}
	o.n[[2]string{typ, result}]++
}

func (o *observed) get(typ, result string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[[2]string{typ, result}]
}

func TestObserve(t *testing.T) {
	var srv, cli observed
	e := startServer(t, ServerOptions{Observe: srv.hook, ExpireTimeout: 50 * time.Millisecond, CheckInterval: 10 * time.Millisecond})
	ra, rb := newRecorder(), newRecorder()
	ao := fastClient(e.wsURL(), "alice", ra)
	ao.Observe = cli.hook
	a := connect(t, ao)
	b := connect(t, fastClient(e.wsURL(), "bob", rb))

	mustSend(t, a, Message{Type: TypeOffer, Dst: "bob", Payload: payload(`{}`)})
	rb.message(t)
	mustSend(t, b, Message{Type: TypeAnswer, Dst: "alice", Payload: payload(`{}`)})
	ra.message(t)
	// To nobody: queued, then expired (alice gets EXPIRE).
	mustSend(t, a, Message{Type: TypeOffer, Dst: "carol", Payload: payload(`{}`)})
	if m := ra.message(t); m.Type != TypeExpire {
		t.Fatalf("got %+v", m)
	}

	// Each was observed before the EXPIRE reached alice: the server's
	// hook runs under its lock, the client's before its handler.
	for _, w := range []struct {
		o           *observed
		typ, result string
	}{
		{&cli, TypeAnswer, "received"},
		{&cli, TypeExpire, "received"},
		{&srv, TypeOffer, "relayed"},
		{&srv, TypeAnswer, "relayed"},
		{&srv, TypeOffer, "queued"},
		{&srv, TypeOffer, "expired"},
	} {
		if got := w.o.get(w.typ, w.result); got != 1 {
			t.Errorf("%s %s observed %d times, want 1", w.typ, w.result, got)
		}
	}
	if got := cli.get(TypeOffer, "sent"); got != 2 {
		t.Errorf("client: OFFER sent %d, want 2", got)
	}
	a.Close()
	if err := a.Send(Message{Type: TypeOffer, Dst: "bob"}); err == nil {
		t.Fatal("Send after Close succeeded")
	}
	if got := cli.get(TypeOffer, "send_failed"); got != 1 {
		t.Errorf("client: OFFER send_failed %d, want 1", got)
	}
}
