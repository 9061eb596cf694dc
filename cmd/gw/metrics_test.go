package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/metrics"
)

func TestMetricsFlags(t *testing.T) {
	o := parseArgs(t)
	if o.metricsAddr != "" || o.metricsMax != metrics.DefaultMaxStreams {
		t.Fatalf("defaults: addr %q max %d", o.metricsAddr, o.metricsMax)
	}
	t.Setenv("GW_METRICS_ADDR", "127.0.0.1:9100")
	t.Setenv("GW_METRICS_MAX_STREAMS", "8")
	if o := parseArgs(t); o.metricsAddr != "127.0.0.1:9100" || o.metricsMax != 8 {
		t.Fatalf("from env: addr %q max %d", o.metricsAddr, o.metricsMax)
	}
	args := []string{"--api-addr", "127.0.0.1:0", "--signaling-addr", "127.0.0.1:0", "--metrics-max-streams", "-1"}
	if code := run(args, &strings.Builder{}); code == 0 {
		t.Error("negative --metrics-max-streams accepted")
	}
}

// TestMetricsEndpoints: /metrics answers on the API listener and on
// --metrics-addr, which serves nothing else.
func TestMetricsEndpoints(t *testing.T) {
	maddr := "127.0.0.1:" + strconv.Itoa(gwtest.FreePort(t))
	g := gwtest.Start(t, "--metrics-addr", maddr, "--metrics-max-streams", "4")
	g.Client.CreatePeer("scraped")

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The peer's first HEARTBEAT reaches the embedded server just after
	// POST /peers answered.
	heartbeat := `gw_signaling_messages_total{result="accepted",type="HEARTBEAT"}`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, body := get(g.API + "/metrics"); strings.Contains(body, heartbeat) || time.Now().After(deadline) {
			break
		}
	}
	for _, base := range []string{g.API, "http://" + maddr} {
		code, body := get(base + "/metrics")
		if code != 200 {
			t.Fatalf("%s/metrics: %d", base, code)
		}
		for _, want := range []string{
			"gw_build_info{", `gw_http_requests_total{code="201",method="POST",route="/peers"} 1`,
			"gw_dataplane_ports ", heartbeat,
			"go_goroutines ", "process_resident_memory_bytes ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s/metrics lacks %q", base, want)
			}
		}
	}
	if code, _ := get("http://" + maddr + "/peers"); code != 404 {
		t.Errorf("the metrics listener answered /peers with %d", code)
	}
	if code := g.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, g.Logs())
	}
	if _, err := http.Get("http://" + maddr + "/metrics"); err == nil {
		t.Error("metrics listener still answering after exit")
	}
}

// The metrics listener closes a connection that never carried a request
// without answering it (a scraper's spare connection).
func TestMetricsUnusedConnection(t *testing.T) {
	m, err := listenMetrics("127.0.0.1:0", metrics.New(metrics.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	m.srv.ReadTimeout = 300 * time.Millisecond
	served := make(chan error, 1)
	go func() { served <- m.serve() }()
	defer func() {
		m.close(context.Background())
		<-served
	}()
	gwtest.ExpectClosedUnanswered(t, m.ln.Addr().String())
}
