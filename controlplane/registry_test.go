package controlplane

import (
	"fmt"
	"testing"
	"time"
)

// Retired queues stay pollable until they expire; beyond the cap the
// oldest go first; a key retired again keeps its newer queue.
func TestRetiredQueues(t *testing.T) {
	r := newRegistry()
	r.keep, r.maxRetired = time.Hour, 3
	queue := func() *eventQueue {
		q := newEventQueue()
		q.push(map[string]string{"event": "CLOSE"})
		return q
	}
	qs := map[string]*eventQueue{}
	for i := range 5 {
		id := fmt.Sprintf("dc-%d", i)
		qs[id] = queue()
		r.retire(id, qs[id])
	}
	for i := range 5 {
		id := fmt.Sprintf("dc-%d", i)
		got := r.retiredQueue(id, "")
		if want := i >= 2; (got != nil) != want || (got != nil && got != qs[id]) {
			t.Errorf("%s pollable: %v, want %v", id, got != nil, want)
		}
	}
	if n := len(r.retiredOrder); n > 2*r.maxRetired {
		t.Errorf("%d entries in the order for a cap of %d", n, r.maxRetired)
	}

	// Read, a queue is no longer kept; retired twice, the newer stays when
	// the older leaves the order.
	empty := newEventQueue()
	r.retire("dc-empty", empty)
	if r.retiredQueue("dc-empty", "") != nil {
		t.Error("a queue without events was kept")
	}
	again := queue()
	r.retire("dc-2", again)
	r.retire("dc-x", queue())
	r.retire("dc-y", queue()) // with dc-x, pushes the first dc-2, dc-3 and dc-4 out
	if got := r.retiredQueue("dc-2", ""); got != again {
		t.Errorf("dc-2 after being retired again: %p, want %p", got, again)
	}

	// Expiry, without timers: on lookup, and for the rest when the next
	// queue is retired.
	r = newRegistry()
	r.keep = 10 * time.Millisecond
	r.retire("dc-old1", queue())
	r.retire("dc-old2", queue())
	time.Sleep(30 * time.Millisecond)
	if r.retiredQueue("dc-old1", "") != nil {
		t.Error("an expired queue is pollable")
	}
	r.retire("dc-new", queue())
	if _, ok := r.retired[retiredKey{id: "dc-old2"}]; ok || len(r.retired) != 1 {
		t.Errorf("expired queues still kept: %v", r.retired)
	}
	// Peers: keyed by id and token, so a new peer with the same id does
	// not see the old one's events.
	p := &peer{id: "cam", token: "pt-1", events: queue()}
	r.removePeer(p)
	if r.retiredQueue("cam", "pt-2") != nil || r.retiredQueue("cam", "pt-1") != p.events {
		t.Error("a deleted peer's queue is not keyed by its token")
	}
}
