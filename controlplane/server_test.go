package controlplane

import (
	"bufio"
	"io"
	"net/http"
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
