package controlplane

import (
	"sync"
	"time"
)

// registry holds every live object of the API, and the event queues of
// objects already deleted until their last events are taken.
type registry struct {
	mu    sync.Mutex
	peers map[string]*peer
	// reserved peer ids are being registered at the signaling server.
	reserved map[string]bool
	// retired queues, and the same in the order they were retired (the
	// oldest first), so that they expire and are capped without a timer
	// each.
	retired      map[retiredKey]retiredEntry
	retiredOrder []retiredEntry
	keep         time.Duration // how long a retired queue stays pollable
	maxRetired   int
}

// retiredKey names a deleted object's queue. Peer ids can be reused by a
// new peer, so a peer's queue is also keyed by its token.
type retiredKey struct{ id, token string }

type retiredEntry struct {
	k     retiredKey
	q     *eventQueue
	until time.Time
}

const (
	// retiredKeep is how long events of a deleted object stay pollable.
	retiredKeep = time.Minute
	// maxRetired caps the queues kept: under heavy churn (thousands of
	// peers created and deleted a second, their events unread) the
	// oldest go first rather than memory growing with the rate.
	maxRetired = 4096
)

func newRegistry() *registry {
	return &registry{
		peers:      map[string]*peer{},
		reserved:   map[string]bool{},
		retired:    map[retiredKey]retiredEntry{},
		keep:       retiredKeep,
		maxRetired: maxRetired,
	}
}

// reservePeerID claims id for a peer being created; false if taken here.
func (r *registry) reservePeerID(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reserved[id] || r.peers[id] != nil {
		return false
	}
	r.reserved[id] = true
	return true
}

func (r *registry) unreservePeerID(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reserved, id)
}

// addPeer registers p under its id; false if another peer has it (only
// possible for server-assigned ids colliding with a reservation).
func (r *registry) addPeer(p *peer, reservedID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reservedID != "" {
		delete(r.reserved, reservedID)
	}
	if r.peers[p.id] != nil || (reservedID != p.id && r.reserved[p.id]) {
		return false
	}
	r.peers[p.id] = p
	return true
}

func (r *registry) peer(id string) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[id]
}

// removePeer unregisters p (if it is still the one under its id) and keeps
// its event queue pollable for a while.
func (r *registry) removePeer(p *peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
	}
	r.retireLocked(retiredKey{p.id, p.token}, p.events)
}

// retire keeps the event queue of a deleted connection pollable for a
// while (connection ids are never reused, so no token is needed).
func (r *registry) retire(id string, q *eventQueue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retireLocked(retiredKey{id: id}, q)
}

func (r *registry) retireLocked(k retiredKey, q *eventQueue) {
	if !q.pending() {
		return
	}
	now := time.Now()
	e := retiredEntry{k: k, q: q, until: now.Add(r.keep)}
	r.retired[k] = e
	r.retiredOrder = append(r.retiredOrder, e)
	// Drop what expired, and the oldest beyond the cap. An entry whose key
	// was retired again since is only removed from the order.
	for len(r.retiredOrder) > 0 {
		old := r.retiredOrder[0]
		if len(r.retired) <= r.maxRetired && now.Before(old.until) {
			break
		}
		r.retiredOrder[0] = retiredEntry{}
		r.retiredOrder = r.retiredOrder[1:]
		if cur, ok := r.retired[old.k]; ok && cur.q == old.q {
			delete(r.retired, old.k)
		}
	}
}

// retiredQueue returns the queue of a deleted object, if it still has
// events and has not expired.
func (r *registry) retiredQueue(id, token string) *eventQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := retiredKey{id, token}
	e, ok := r.retired[k]
	if !ok {
		return nil
	}
	if !e.q.pending() || !time.Now().Before(e.until) {
		delete(r.retired, k)
		return nil
	}
	return e.q
}

func (r *registry) allPeers() []*peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*peer, 0, len(r.peers))
	for _, p := range r.peers {
		ps = append(ps, p)
	}
	return ps
}
