package gwtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// NPMDir is where `make deps` installs the JavaScript peers the tests use
// (the official PeerJS server, the PeerJS client, js-binarypack). A missing
// install fails the test: these tests must run, not skip.
func NPMDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(), "testdata", "npm")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "peer", "dist", "bin", "peerjs.js")); err != nil {
		t.Fatalf("JavaScript test peers not installed in %s (run `make deps`): %v", dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found (run `make deps` on a machine with Node.js): %v", err)
	}
	return dir
}

// OfficialPeerJS is the official PeerJS server (npm `peer`) run by a test.
type OfficialPeerJS struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

// StartOfficialPeerJS runs the official server's CLI on a free loopback
// port (plus extra CLI args) and waits until it answers. It is killed when
// the test ends.
func StartOfficialPeerJS(t testing.TB, args ...string) *OfficialPeerJS {
	t.Helper()
	return StartOfficialPeerJSOn(t, FreePort(t), args...)
}

// StartOfficialPeerJSOn is StartOfficialPeerJS on a given port (to restart
// it where clients expect it).
func StartOfficialPeerJSOn(t testing.TB, port int, args ...string) *OfficialPeerJS {
	t.Helper()
	dir := NPMDir(t)
	o := &OfficialPeerJS{Port: port, done: make(chan struct{}), out: &lockedBuffer{}}
	full := append([]string{filepath.Join("node_modules", "peer", "dist", "bin", "peerjs.js"),
		"--port", strconv.Itoa(port), "--host", "127.0.0.1"}, args...)
	o.cmd = exec.Command("node", full...)
	o.cmd.Dir = dir
	o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
	InGroup(o.cmd)
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start official PeerJS server: %v", err)
	}
	go func() { _ = o.cmd.Wait(); close(o.done) }()
	t.Cleanup(o.Kill)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(o.HTTPURL() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return o
			}
		}
		select {
		case <-o.done:
			t.Fatalf("official PeerJS server exited: %s", o.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("official PeerJS server not answering on port %d: %v\n%s", port, err, o.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the server (idempotent).
func (o *OfficialPeerJS) Kill() {
	select {
	case <-o.done:
		return
	default:
	}
	KillGroup(o.cmd)
	<-o.done
}

// WSURL is the WebSocket endpoint, as --signaling-url takes it.
func (o *OfficialPeerJS) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d/peerjs", o.Port) }

// HTTPURL is the server's HTTP base.
func (o *OfficialPeerJS) HTTPURL() string { return fmt.Sprintf("http://127.0.0.1:%d", o.Port) }

// Output is what the server printed.
func (o *OfficialPeerJS) Output() string { return o.out.String() }
