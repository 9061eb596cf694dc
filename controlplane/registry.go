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
	retired  map[retiredKey]*eventQueue
}

// retiredKey names a deleted object's queue. Peer ids can be reused by a
// new peer, so a peer's queue is also keyed by its token.
type retiredKey struct{ id, token string }

// retiredKeep is how long events of a deleted object stay pollable.
const retiredKeep = time.Minute

func newRegistry() *registry {
	return &registry{
		peers:    map[string]*peer{},
		reserved: map[string]bool{},
		retired:  map[retiredKey]*eventQueue{},
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
	r.retired[k] = q
	time.AfterFunc(retiredKeep, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.retired[k] == q {
			delete(r.retired, k)
		}
	})
}

// retiredQueue returns the queue of a deleted object, if it still has events.
func (r *registry) retiredQueue(id, token string) *eventQueue {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.retired[retiredKey{id, token}]
	if q != nil && !q.pending() {
		delete(r.retired, retiredKey{id, token})
		return nil
	}
	return q
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
