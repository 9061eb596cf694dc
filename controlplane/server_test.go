package controlplane

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// A connection on which the client sends nothing is closed without an
// answer when the read timeout runs out: clients keep spare connections,
// and an answer nobody asked for would be read as the reply to the next
// request sent on it. A request cut short gets a 408 in the envelope.
func TestReadTimeout(t *testing.T) {
	e := newTestEnv(t, withReadTimeout(300*time.Millisecond))

	gwtest.ExpectClosedUnanswered(t, e.apiAddr)

	cut := dialRaw(t, e.apiAddr)
	if _, err := io.WriteString(cut, "GET /peers/p/events?token=t HTTP/1.1\r\nHost: gw\r\n"); err != nil {
		t.Fatal(err)
	}
	cut.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(cut), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	r := gwtest.Response{Status: resp.StatusCode, Body: body}
	if r.Status != http.StatusRequestTimeout || r.ErrorField(t) != "request" {
		t.Fatalf("request cut short: %d %s", r.Status, body)
	}

	// The server goes on answering.
	if r := e.c.Do("GET", "/peers/nobody/status?token=t", ""); r.Status != http.StatusNotFound {
		t.Fatalf("after the timeouts: %d %s", r.Status, r.Body)
	}
}

// Work a pion callback starts in the background holds Shutdown until it
// ends; once Shutdown waits, new work does not start (it would race the
// wait, and what it would close is closed). Callers keep starting work
// all through Shutdown, as pion's callbacks do while connections close.
func TestBackgroundAndShutdown(t *testing.T) {
	e := newTestEnv(t)
	started, release := make(chan struct{}), make(chan struct{})
	e.srv.background(func() {
		close(started)
		<-release
	})
	<-started

	stopCallers := make(chan struct{})
	var callers sync.WaitGroup
	var ran atomic.Int64
	for range 4 {
		callers.Add(1)
		go func() {
			defer callers.Done()
			for {
				select {
				case <-stopCallers:
					return
				default:
				}
				e.srv.background(func() { ran.Add(1) })
				runtime.Gosched()
			}
		}()
	}
	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while background work ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	close(stopCallers)
	callers.Wait()
	n := ran.Load()
	e.srv.background(func() { t.Error("background work started after Shutdown") })
	time.Sleep(50 * time.Millisecond)
	if ran.Load() != n {
		t.Errorf("%d background jobs ran after Shutdown returned", ran.Load()-n)
	}
}
