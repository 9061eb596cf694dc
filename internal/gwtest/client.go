// Package gwtest is what gw's tests share: a REST client that checks every
// response against api/openapi.yaml, event waiting, and gw processes built
// from ./cmd/gw and run for real.
package gwtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/api/apitest"
)

// Client talks to one gw's REST API.
type Client struct {
	Base string // e.g. http://127.0.0.1:8000
	// Key is the signaling key CreatePeer uses; default "peerjs", the
	// official server's only key (gw's server takes any on loopback).
	Key  string
	t    testing.TB
	http *http.Client
}

// NewClient returns a client for the API at base.
func NewClient(t testing.TB, base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Key: "peerjs", t: t, http: &http.Client{Timeout: 2 * time.Minute}}
}

// Response is one answer of the API.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", r.Status, err, r.Body)
	}
}

// Map decodes the body as a JSON object.
func (r Response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// ErrorField returns the field of the first error in the envelope.
func (r Response) ErrorField(t testing.TB) string {
	t.Helper()
	var env struct {
		Params struct {
			Errors []struct{ Field, Message string } `json:"errors"`
		} `json:"params"`
	}
	r.JSON(t, &env)
	if len(env.Params.Errors) == 0 {
		t.Fatalf("no error in envelope: %s", r.Body)
	}
	return env.Params.Errors[0].Field
}

// Do sends a request; body is JSON-encoded unless it is a string or []byte,
// sent as is. The response is checked against the spec (a mismatch fails
// the test); transport errors fail it at once.
func (c *Client) Do(method, path string, body any) Response {
	c.t.Helper()
	r, err := c.do(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if err := apitest.Check(method, path, r.Status, r.Header, r.Body); err != nil {
		c.t.Errorf("response breaks the spec: %v", err)
	}
	return r
}

// DoRaw is Do without the spec check, for requests outside the spec.
func (c *Client) DoRaw(method, path string, body any) (Response, error) {
	return c.do(method, path, body)
}

func (c *Client) do(method, path string, body any) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		return Response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Expect sends a request and fails the test unless it answers want.
func (c *Client) Expect(want int, method, path string, body any) Response {
	c.t.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// Peer is a peer created through the API.
type Peer struct {
	ID, Token string
}

// CreatePeer creates a peer (id may be empty: the server assigns one) with
// any key and waits for its OPEN event.
func (c *Client) CreatePeer(id string) Peer {
	c.t.Helper()
	body := map[string]any{"key": c.Key, "domain": "localhost", "turn": false}
	if id != "" {
		body["peer_id"] = id
	}
	r := c.Expect(201, "POST", "/peers", body)
	var resp struct {
		Params struct {
			PeerID string `json:"peer_id"`
			Token  string `json:"token"`
		} `json:"params"`
	}
	r.JSON(c.t, &resp)
	p := Peer{ID: resp.Params.PeerID, Token: resp.Params.Token}
	ev := c.WaitEvent(c.PeerEvents(p), "OPEN", 10*time.Second)
	if got := fmt.Sprint(ev["params"].(map[string]any)["peer_id"]); got != p.ID {
		c.t.Fatalf("OPEN for %q, want %q", got, p.ID)
	}
	return p
}

// PeerEvents is the events path of a peer.
func (c *Client) PeerEvents(p Peer) string {
	return "/peers/" + p.ID + "/events?token=" + p.Token
}

// DeletePeer deletes p.
func (c *Client) DeletePeer(p Peer) {
	c.t.Helper()
	c.Expect(204, "DELETE", "/peers/"+p.ID+"?token="+p.Token, nil)
}

// NextEvent long-polls path once. It returns nil on 408.
func (c *Client) NextEvent(path string) map[string]any {
	c.t.Helper()
	r := c.Do("GET", path, nil)
	switch r.Status {
	case 200:
		return r.Map(c.t)
	case 408:
		return nil
	default:
		c.t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		return nil
	}
}

// WaitEvent polls path until an event named want arrives, failing the test
// on any other event first (ignoring those in skip) or after timeout.
func (c *Client) WaitEvent(path, want string, timeout time.Duration, skip ...string) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ev := c.NextEvent(path)
		if ev == nil {
			continue
		}
		name, _ := ev["event"].(string)
		if name == want {
			return ev
		}
		if !contains(skip, name) {
			c.t.Fatalf("GET %s: event %s before %s: %v", path, name, want, ev)
		}
	}
	c.t.Fatalf("GET %s: no %s event within %s", path, want, timeout)
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
