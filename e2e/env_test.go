// Package e2e holds gw's end-to-end tests: gw processes built from
// ./cmd/gw, real GStreamer pipelines, a real headless Chromium running the
// PeerJS client that gw's own signaling server serves, gw's viewer page,
// examples/camera.py, and the official PeerJS server (npm `peer`) in place
// of gw's own. Everything runs on loopback.
//
// Ports: gw processes take UDP ports from 24000-24599 and the test side
// (GStreamer receivers, test apps, camera.py's forwarding ports) from
// 24600-24999, below the kernel's ephemeral range, so that packets a
// finished test's gateway still sends cannot land in a later test's socket.
package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// testPorts are the test side's UDP ports.
var testPorts = gwtest.NewUDPPorts(24600, 24999)

var (
	rangeMu   sync.Mutex
	nextRange int
)

// gwPortRange is a --port-range of 100 ports in 24000-24599, a different
// one for each gw process of the package (round robin).
func gwPortRange() string {
	rangeMu.Lock()
	defer rangeMu.Unlock()
	lo := 24000 + 100*(nextRange%6)
	nextRange++
	return fmt.Sprintf("%d-%d", lo, lo+99)
}

// env is one gw process and the signaling server its peers and the
// browsers register at: gw's own, or the official PeerJS server.
type env struct {
	gw       *gwtest.Process
	official *gwtest.OfficialPeerJS // nil: gw's embedded server
	page     string                 // http://127.0.0.1:PORT/: gw's signaling server, serving the viewer page
	sigPort  int                    // where browsers register (host 127.0.0.1)
}

// signalings are the two setups every test runs in (the fourth
// test: the first three again with the official PeerJS server).
var signalings = []struct {
	name     string
	official bool
}{
	{"gw-signaling", false},
	{"official-peerjs", true},
}

// eachSignaling runs f as a subtest for each setup, with a fresh env.
func eachSignaling(t *testing.T, f func(t *testing.T, e *env)) {
	for _, s := range signalings {
		t.Run(s.name, func(t *testing.T) { f(t, newEnv(t, s.official)) })
	}
}

func newEnv(t *testing.T, official bool) *env {
	t.Helper()
	e := &env{}
	args := []string{"--event-timeout", "2s", "--port-range", gwPortRange()}
	if official {
		e.official = gwtest.StartOfficialPeerJS(t)
		args = append(args, "--signaling-url", e.official.WSURL())
	}
	// gw's embedded server stays on either way: it serves the page and the
	// PeerJS client library.
	e.gw = gwtest.Start(t, args...)
	u, err := url.Parse(e.gw.SignalingURL)
	if err != nil {
		t.Fatal(err)
	}
	e.page = "http://" + u.Host + "/"
	if e.sigPort, err = strconv.Atoi(u.Port()); err != nil {
		t.Fatal(err)
	}
	if official {
		e.sigPort = e.official.Port
	}
	return e
}

// signalingParam is the viewer page's &signaling= for the env: none with
// gw's own server (the page's origin), the official server's endpoint
// otherwise.
func (e *env) signalingParam() string {
	if e.official == nil {
		return ""
	}
	return "&signaling=" + url.QueryEscape(e.official.WSURL())
}

// harnessJS is what the tests drive a PeerJS browser with; it runs in gw's
// viewer page, using the PeerJS client gw serves there. Received data
// messages are described, not kept: bytes as {t:"bin", n, h} (length and
// FNV-1a), strings as {t:"str", n, h} (UTF-8 length and FNV-1a), other
// values as {t:"val", j} (JSON).
const harnessJS = `(() => {
  const E = window.e2e = { log: [], data: {}, call: null, incoming: null };
  const fnv = (u8) => { let h = 0x811c9dc5; for (let i = 0; i < u8.length; i++) h = Math.imul(h ^ u8[i], 0x01000193) >>> 0; return h; };
  E.describe = (d) => {
    if (d instanceof ArrayBuffer) d = new Uint8Array(d);
    if (ArrayBuffer.isView(d)) {
      const u8 = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      return { t: "bin", n: u8.length, h: fnv(u8) };
    }
    if (typeof d === "string") { const u8 = new TextEncoder().encode(d); return { t: "str", n: u8.length, h: fnv(u8) }; }
    return { t: "val", j: JSON.stringify(d) };
  };
  // bytes(n, seed): the same bytes as the Go side's pattern(n, seed).
  E.bytes = (n, seed) => { const u8 = new Uint8Array(n); for (let i = 0; i < n; i++) u8[i] = (i * 7 + seed * 13 + (i >> 8)) & 255; return u8; };
  E.watchCall = (c) => {
    const s = { conn: c, streams: 0, closed: false };
    E.call = s;
    // Chromium decodes remote audio only for a sink: the call plays in
    // an element, as on a page.
    c.on("stream", (ms) => {
      s.streams++;
      const v = document.createElement("video");
      v.srcObject = ms;
      document.body.appendChild(v);
      v.play().catch((e) => E.log.push("play: " + e.message));
    });
    c.on("close", () => { s.closed = true; });
    c.on("error", (e) => E.log.push("call error " + e.type + ": " + e.message));
  };
  E.track = (c) => {
    const s = { conn: c, got: [], open: false, closed: false };
    E.data[c.connectionId] = s;
    c.on("open", () => { s.open = true; });
    c.on("data", (d) => s.got.push(E.describe(d)));
    c.on("close", () => { s.closed = true; });
    c.on("error", (e) => E.log.push("data error " + e.type + ": " + e.message));
    return c.connectionId;
  };
  E.start = (id, port) => new Promise((resolve, reject) => {
    const p = new Peer(id, { host: "127.0.0.1", port, path: "/", key: "peerjs", config: { iceServers: [] }, debug: 1 });
    E.peer = p;
    p.on("open", () => resolve(true));
    p.on("error", (e) => { E.log.push("peer error " + e.type + ": " + e.message); reject(new Error(e.type + ": " + e.message)); });
    // Calls are answered receive-only; data connections are tracked.
    p.on("call", (c) => { E.watchCall(c); c.answer(); });
    p.on("connection", (c) => { E.incoming = E.track(c); });
  });
  E.callWithCamera = async (to) => {
    const s = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
    E.watchCall(E.peer.call(to, s, { metadata: { from: "e2e" } }));
    return true;
  };
  E.connect = (to, serialization) => E.track(E.peer.connect(to, { serialization, reliable: true }));
  // What the call receives and sends, by kind, from getStats.
  E.stats = async () => {
    const out = {};
    const pc = E.call && E.call.conn.peerConnection;
    if (!pc) return out;
    const r = await pc.getStats();
    const codecs = {};
    r.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
    r.forEach((s) => {
      if (s.type === "inbound-rtp") out["in_" + s.kind] = { codec: codecs[s.codecId] || "", packets: s.packetsReceived || 0, frames: s.framesDecoded || 0, samples: s.totalSamplesReceived || 0 };
      if (s.type === "outbound-rtp") out["out_" + s.kind] = { codec: codecs[s.codecId] || "", packets: s.packetsSent || 0 };
    });
    return out;
  };
  return true;
})()`

// browser starts Chromium on gw's viewer page (the PeerJS client comes
// from gw's signaling server) and registers a PeerJS peer with id at the
// env's signaling server.
func (e *env) browser(t *testing.T, id string) *gwtest.Browser {
	t.Helper()
	b := gwtest.StartBrowser(t)
	b.Navigate(t, e.page)
	if !gwtest.Eval[bool](t, b, `typeof Peer === "function"`) {
		t.Fatal("gw's page did not load the PeerJS client: the binary lacks it (make web)")
	}
	gwtest.Eval[bool](t, b, harnessJS)
	gwtest.Eval[bool](t, b, fmt.Sprintf("e2e.start(%q, %d)", id, e.sigPort))
	return b
}

// browserStats is what E.stats() returns.
type browserStats map[string]struct {
	Codec   string `json:"codec"`
	Packets int    `json:"packets"`
	Frames  int    `json:"frames"`
	Samples int    `json:"samples"`
}

// pattern is what E.bytes(n, seed) makes in the browser.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>8)
	}
	return b
}

// requirePython fails the test (it must run) without python3.
func requirePython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 not found (apt-get install python3; .ci/run does): %v", err)
	}
}

// camera is examples/camera.py run by a test.
type camera struct {
	cmd   *exec.Cmd
	done  chan struct{}
	code  int
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced on every line
}

// startCamera runs examples/camera.py against gw with args. It is killed
// (with the pipeline it runs) when the test ends.
func startCamera(t *testing.T, gw *gwtest.Process, args ...string) *camera {
	t.Helper()
	requirePython(t)
	script := filepath.Join(gwtest.RepoRoot(), "examples", "camera.py")
	full := append([]string{"-u", script, "--api", gw.API, "--poll-timeout", "30"}, args...)
	c := &camera{cmd: exec.Command("python3", full...), done: make(chan struct{}), grew: make(chan struct{})}
	gwtest.InGroup(c.cmd)
	c.cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			close(c.grew)
			c.grew = make(chan struct{})
			c.mu.Unlock()
		}
		err := c.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			c.code = ee.ExitCode()
		case err != nil:
			c.code = -1
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			gwtest.KillGroup(c.cmd)
			<-c.done
		}
		if t.Failed() {
			t.Logf("camera.py %s said:\n%s", strings.Join(args, " "), c.output())
		}
	})
	return c
}

func (c *camera) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// waitLine waits for a line of camera.py's output containing all of
// parts, at index from or later, and returns it with its index.
func (c *camera) waitLine(t *testing.T, from int, timeout time.Duration, parts ...string) (string, int) {
	t.Helper()
	guard := time.NewTimer(timeout)
	defer guard.Stop()
	for i := from; ; {
		c.mu.Lock()
		n, grew := len(c.lines), c.grew
		for ; i < n; i++ {
			line, ok := c.lines[i], true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				c.mu.Unlock()
				return line, i
			}
		}
		c.mu.Unlock()
		select {
		case <-grew:
		case <-c.done:
			// Lines read before the exit are all in.
			c.mu.Lock()
			more := len(c.lines) > i
			c.mu.Unlock()
			if !more {
				t.Fatalf("camera.py exited (code %d) without printing %q", c.code, parts)
			}
		case <-guard.C:
			t.Fatalf("camera.py did not print %q within %s", parts, timeout)
		}
	}
}

// interrupt is Ctrl-C: camera.py must clean up and exit 0.
func (c *camera) interrupt(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("camera.py did not exit within 30s of SIGINT")
	}
	if c.code != 0 {
		t.Fatalf("camera.py exited with %d after SIGINT", c.code)
	}
}

// afterWord is what follows the first occurrence of word in line.
func afterWord(t *testing.T, line, word string) string {
	t.Helper()
	_, rest, ok := strings.Cut(line, word)
	if !ok {
		t.Fatalf("no %q in %q", word, line)
	}
	return strings.TrimSpace(rest)
}

// udpApp is an app on a data port's side: a UDP socket that records what
// gw sends it.
type udpApp struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	grew chan struct{}
}

func newUDPApp(t *testing.T) *udpApp {
	t.Helper()
	a := &udpApp{conn: testPorts.Listen(t), grew: make(chan struct{})}
	_ = a.conn.SetReadBuffer(8 << 20)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := a.conn.Read(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.got = append(a.got, append([]byte(nil), buf[:n]...))
			close(a.grew)
			a.grew = make(chan struct{})
			a.mu.Unlock()
		}
	}()
	return a
}

func (a *udpApp) port() int { return a.conn.LocalAddr().(*net.UDPAddr).Port }

func (a *udpApp) redirect() map[string]any {
	return map[string]any{"ip_v4": "127.0.0.1", "port": a.port()}
}

func (a *udpApp) send(t *testing.T, port int, b []byte) {
	t.Helper()
	if _, err := a.conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
}

// wait waits for n datagrams and returns them.
func (a *udpApp) wait(t *testing.T, n int, timeout time.Duration) [][]byte {
	t.Helper()
	guard := time.NewTimer(timeout)
	defer guard.Stop()
	for {
		a.mu.Lock()
		got, grew := a.got, a.grew
		a.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-grew:
		case <-guard.C:
			t.Fatalf("%d of %d datagrams arrived within %s", len(got), n, timeout)
		}
	}
}

// openMedia opens a media port on gw.
func openMedia(t *testing.T, c *gwtest.Client, video bool) (id string, port int) {
	t.Helper()
	m := c.Expect(201, "POST", "/media", map[string]any{"is_video": video}).Map(t)
	return m["media_id"].(string), int(m["port"].(float64))
}
