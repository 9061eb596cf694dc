package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/signaling"
)

func parseArgs(t *testing.T, args ...string) options {
	t.Helper()
	var o options
	fs := gatewayFlags(&o)
	if err := parseAll(fs, "GW_", args); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestFlagDefaults(t *testing.T) {
	o := parseArgs(t)
	if o.apiAddr != "127.0.0.1:8000" || o.signalingAddr != "127.0.0.1:9000" || o.mediaAddr != "127.0.0.1" ||
		o.portRange != "50001-51000" || o.eventTimeout != 30*time.Second || o.logLevel != "info" || o.signalingURL != "" {
		t.Fatalf("defaults %+v", o)
	}
}

// Command line over environment over config file.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.toml")
	os.WriteFile(cfg, []byte(`
api_addr = "127.0.0.1:7001"
media-addr = "127.0.0.2"
event_timeout = "5s"
port_range = "60000-60010"
ice_server = ["stun:a.example:3478", "turn:b.example:3478,u,p"]
`), 0o600)
	t.Setenv("GW_MEDIA_ADDR", "127.0.0.3")
	t.Setenv("GW_PORT_RANGE", "61000-61001")
	o := parseArgs(t, "--config", cfg, "--port-range", "62000-62001")
	if o.apiAddr != "127.0.0.1:7001" {
		t.Errorf("api addr %q from the file", o.apiAddr)
	}
	if o.mediaAddr != "127.0.0.3" {
		t.Errorf("media addr %q: environment must beat the file", o.mediaAddr)
	}
	if o.portRange != "62000-62001" {
		t.Errorf("port range %q: flag must beat the environment", o.portRange)
	}
	if o.eventTimeout != 5*time.Second {
		t.Errorf("event timeout %v", o.eventTimeout)
	}
	if len(o.iceServers) != 2 || o.iceServers[1] != "turn:b.example:3478,u,p" {
		t.Errorf("ice servers %v", o.iceServers)
	}
	t.Setenv("GW_ICE_SERVER", "stun:c.example stun:d.example")
	if o := parseArgs(t); len(o.iceServers) != 2 || o.iceServers[0] != "stun:c.example" {
		t.Errorf("ice servers from env %v", o.iceServers)
	}
}

// The original gateway's config.toml is taken as it is.
func TestOriginalGatewayConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("[general]\napi_port = 8123\nlog_level = \"debug\"\n"), 0o600)
	o := parseArgs(t, "--config", cfg)
	if o.apiAddr != "127.0.0.1:8123" || o.logLevel != "debug" {
		t.Fatalf("from config.toml: api %q, log %q", o.apiAddr, o.logLevel)
	}
	os.WriteFile(cfg, []byte("[general]\napi_port = \"x\"\n"), 0o600)
	var o2 options
	if err := parseAll(gatewayFlags(&o2), "GW_", []string{"--config", cfg}); err == nil {
		t.Fatal("bad api_port accepted")
	}
}

func TestBadSettings(t *testing.T) {
	for _, args := range [][]string{
		{"--port-range", "9-5"},
		{"--port-range", "x"},
		{"--media-addr", "not-an-ip"},
		{"--log-level", "loud"},
		{"--ice-server", "http://x"},
		{"--ice-server", "turn:x,onlyuser"},
		{"--ice-transport-policy", "nohost"},
		{"--ice-transport-policy", "relay", "--ice-server", "stun:x"},
		{"--dataplane", "nope"},
		{"--dataplane-cpus", "a"},
		{"--dataplane-linger", "-1ms"},
		{"--dataplane-linger", "soon"},
		{"--no-such-flag"},
	} {
		args := append([]string{"--api-addr", "127.0.0.1:0", "--signaling-addr", "127.0.0.1:0"}, args...)
		if code := run(args, &strings.Builder{}); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}

// --ice-transport-policy: all by default, from the environment and the
// file like the others (bad values: TestBadSettings).
func TestICETransportPolicyFlag(t *testing.T) {
	if o := parseArgs(t); o.icePolicy != "all" {
		t.Errorf("default %q", o.icePolicy)
	}
	cfg := filepath.Join(t.TempDir(), "gw.toml")
	os.WriteFile(cfg, []byte("ice_transport_policy = \"relay\"\n"), 0o600)
	if o := parseArgs(t, "--config", cfg); o.icePolicy != "relay" {
		t.Errorf("from the file %q", o.icePolicy)
	}
	t.Setenv("GW_ICE_TRANSPORT_POLICY", "all")
	if o := parseArgs(t, "--config", cfg); o.icePolicy != "all" {
		t.Errorf("environment must beat the file: %q", o.icePolicy)
	}
}

// SIGTERM: every peer leaves signaling (its id is free at once at the
// server), the process exits 0.
func TestSIGTERMLeavesSignalingAndExits0(t *testing.T) {
	sig := gwtest.Start(t) // a gw whose embedded server the other one uses
	g := gwtest.Start(t, "--signaling-addr", "off", "--signaling-url", sig.SignalingURL)
	g.Client.CreatePeer("leaver")
	if code := g.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, g.Logs())
	}
	// Without a LEAVE the server would hold the id until its heartbeat
	// timeout (60 s) and refuse it now.
	c, err := signaling.Connect(context.Background(), signaling.ClientOptions{URL: sig.SignalingURL, Key: "peerjs", ID: "leaver"})
	if err != nil {
		t.Fatalf("id still held after shutdown: %v", err)
	}
	c.Close()
	if _, err := http.Get(g.API + "/openapi.yaml"); err == nil {
		t.Fatal("API still answering after exit")
	}
	if code := sig.Signal(t, syscall.SIGINT, 20*time.Second); code != 0 {
		t.Fatalf("SIGINT exit code %d", code)
	}
}

// Settings from the environment reach a running gw.
func TestEnvironmentConfiguresProcess(t *testing.T) {
	api := gwtest.FreePort(t)
	sigPort := gwtest.FreePort(t)
	cmd := exec.Command(gwtest.Binary(t))
	cmd.Env = append(os.Environ(), "GW_API_ADDR=127.0.0.1:"+strconv.Itoa(api), "GW_SIGNALING_ADDR=127.0.0.1:"+strconv.Itoa(sigPort))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(api)+"/openapi.yaml")
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(sigPort)+"/")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `gw signaling` serves PeerJS alone; a public address needs keys or --open.
func TestSignalingSubcommand(t *testing.T) {
	bin := gwtest.Binary(t)
	port := gwtest.FreePort(t)
	cmd := exec.Command(bin, "signaling", "--addr", "127.0.0.1:"+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/")
	c, err := signaling.Connect(context.Background(), signaling.ClientOptions{URL: "ws://127.0.0.1:" + strconv.Itoa(port) + "/peerjs", Key: "any", ID: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}

	out, err := exec.Command(bin, "signaling", "--addr", "0.0.0.0:"+strconv.Itoa(gwtest.FreePort(t))).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "--open") {
		t.Fatalf("public address without keys: %v %s", err, out)
	}
	out, err = exec.Command(bin, "--api-addr", "127.0.0.1:0", "--signaling-addr", "0.0.0.0:"+strconv.Itoa(gwtest.FreePort(t))).CombinedOutput()
	if !errors.As(err, &ee) || !strings.Contains(string(out), "--signaling-open") {
		t.Fatalf("gateway on a public signaling address without keys: %v %s", err, out)
	}
}

func TestParseHelpers(t *testing.T) {
	if cpus, err := parseCPUs("0,2-3"); err != nil || len(cpus) != 3 || cpus[2] != 3 {
		t.Fatalf("cpus %v %v", cpus, err)
	}
	if s, err := parseICEServer("turn:t.example:3478?transport=udp,alice,pw"); err != nil || s.Username != "alice" || s.URLs[0] != "turn:t.example:3478?transport=udp" {
		t.Fatalf("ice %+v %v", s, err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:9000": true, "[::1]:9000": true, "localhost:9": true, "0.0.0.0:9000": false, "192.0.2.1:1": false} {
		if isLoopbackAddr(addr) != want {
			t.Errorf("isLoopbackAddr(%s) != %v", addr, want)
		}
	}
}

// The ready line says how --dataplane-linger acts: the portable dataplane
// has no linger.
func TestReadyLineLinger(t *testing.T) {
	if dataplane.DefaultName() != "mmsg" {
		t.Skip("no batched dataplane here")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, " linger=2ms "},
		{[]string{"--dataplane-linger", "5ms"}, " linger=5ms "},
		{[]string{"--dataplane-linger", "0"}, " linger=off "},
		{[]string{"--dataplane", "std"}, " linger=off "},
	} {
		g := gwtest.Start(t, c.args...)
		waitLog(t, g, c.want, 10*time.Second)
	}
}
