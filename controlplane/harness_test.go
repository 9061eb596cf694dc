package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/udp"
	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/signaling"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, gwtest.LeakOptions()...)
}

// testEnv is a control plane and a signaling server on loopback, for real.
type testEnv struct {
	t       testing.TB
	sigAddr string
	sigOpts signaling.ServerOptions
	sig     *signaling.Server
	srv     *Server
	dp      dataplane.Dataplane
	c       *gwtest.Client
	apiAddr string

	readTimeout time.Duration // the API server's, if not 0
}

type envOption func(*testEnv, *Config)

// withKeys makes the signaling server accept only ks.
func withKeys(ks *signaling.KeyStore) envOption {
	return func(e *testEnv, _ *Config) { e.sigOpts.Keys = ks }
}

// withReadTimeout shortens the API server's read timeout (a minute).
func withReadTimeout(d time.Duration) envOption {
	return func(e *testEnv, _ *Config) { e.readTimeout = d }
}

// withSignalingURL registers peers somewhere else than the env's server.
func withSignalingURL(url string) envOption {
	return func(_ *testEnv, c *Config) { c.SignalingURL = url }
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.sigAddr = ln.Addr().String()
	e.sigOpts = signaling.ServerOptions{Logger: testLogger(t)}
	dp, err := dataplane.New(dataplane.DefaultName(), dataplane.Config{
		Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 25000, PortMax: 25999,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.dp = dp
	cfg := Config{
		SignalingURL:     "ws://" + e.sigAddr + "/peerjs",
		MediaAddr:        netip.MustParseAddr("127.0.0.1"),
		EventTimeout:     time.Second,
		Dataplane:        dp,
		SignalingTimeout: 5 * time.Second,
		Logger:           testLogger(t),
		// As cmd/gw runs it.
		ICENet: udp.NewICENet(dataplane.DefaultSockBuf, 0, 0),
	}
	for _, o := range opts {
		o(e, &cfg)
	}
	e.startSignaling(ln)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	if e.readTimeout > 0 {
		srv.http.ReadTimeout = e.readTimeout
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.apiAddr = apiLn.Addr().String()
	go srv.Serve(apiLn)
	e.c = gwtest.NewClient(t, "http://"+e.apiAddr)
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) startSignaling(ln net.Listener) {
	e.sig = signaling.NewServer(e.sigOpts)
	go e.sig.Serve(ln)
}

// restartSignaling stops the signaling server and starts a new one on the
// same address after pause.
func (e *testEnv) restartSignaling(pause time.Duration) {
	e.t.Helper()
	if err := e.sig.Close(); err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(pause)
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", e.sigAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.startSignaling(ln)
}

func (e *testEnv) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	if err := e.sig.Close(); err != nil {
		e.t.Errorf("signaling close: %v", err)
	}
	if err := e.dp.Close(); err != nil {
		e.t.Errorf("dataplane close: %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func peerPath(p gwtest.Peer, suffix string) string {
	path := "/peers/" + p.ID + suffix
	if !strings.Contains(path, "?") {
		path += "?token=" + p.Token
	}
	return path
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// dialRaw opens a bare TCP connection to addr.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// extractToken takes params.token out of a PEERS_CREATE answer.
func extractToken(body []byte) string {
	var r struct {
		Params struct {
			Token string `json:"token"`
		} `json:"params"`
	}
	_ = json.Unmarshal(body, &r)
	return r.Params.Token
}
