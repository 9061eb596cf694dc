package controlplane

import (
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// errQueueClosed: the object is gone and every event it had was taken.
var errQueueClosed = errors.New("event queue closed")

// errPollTimeout: no event arrived within the long-poll wait.
var errPollTimeout = errors.New("no event within the wait")

// eventQueue holds one object's events, in order, until long-polls take them.
// Each event goes to exactly one poller; events that arrive while nobody
// polls wait in the queue.
type eventQueue struct {
	mu      sync.Mutex
	events  [][]byte // encoded events, oldest first
	waiters []*waiter
	closed  bool
	done    chan struct{} // closed with the queue: wakes waiters
}

type waiter struct {
	ch chan []byte // capacity 1: push never blocks
	// alive reports whether the poller's client is still connected, so an
	// event is not handed to a request nobody will read.
	alive func() bool
}

func newEventQueue() *eventQueue {
	return &eventQueue{done: make(chan struct{})}
}

// push appends an event (any JSON-encodable value). Events pushed after
// close are discarded: the object no longer exists for clients.
func (q *eventQueue) push(ev any) {
	body, err := json.Marshal(ev)
	if err != nil {
		panic("controlplane: encoding event: " + err.Error())
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		if w.alive == nil || w.alive() {
			w.ch <- body
			return
		}
	}
	q.events = append(q.events, body)
}

// close ends the queue: events already queued can still be polled; once
// they are taken polls get errQueueClosed.
func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
}

// pending reports whether events wait to be taken.
func (q *eventQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) > 0
}

// poll returns the oldest event, waiting up to wait for one. stop aborts the
// wait (server shutdown).
func (q *eventQueue) poll(wait time.Duration, stop <-chan struct{}, alive func() bool) ([]byte, error) {
	q.mu.Lock()
	if len(q.events) > 0 {
		ev := q.events[0]
		q.events[0] = nil
		q.events = q.events[1:]
		q.mu.Unlock()
		return ev, nil
	}
	if q.closed {
		q.mu.Unlock()
		return nil, errQueueClosed
	}
	w := &waiter{ch: make(chan []byte, 1), alive: alive}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case ev := <-w.ch:
		return ev, nil
	case <-t.C:
		err = errPollTimeout
	case <-q.done:
		err = errQueueClosed
	case <-stop:
		err = errPollTimeout
	}
	q.mu.Lock()
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	q.mu.Unlock()
	// An event may have been handed over between the wake-up and the lock.
	select {
	case ev := <-w.ch:
		return ev, nil
	default:
		return nil, err
	}
}
