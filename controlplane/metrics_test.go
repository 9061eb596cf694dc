package controlplane

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gw-project/gw/metrics"
)

// withMetrics gives the control plane and the env's signaling server a
// registry.
func withMetrics(reg *metrics.Registry) envOption {
	return func(e *testEnv, c *Config) {
		c.Metrics = reg
		e.sigOpts.Observe = reg.SignalingObserver()
	}
}

// sample returns the value of the family's sample whose labels include kv.
func sample(t *testing.T, reg *metrics.Registry, name string, kv ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	return pick(mfs, name, kv...)
}

// pick is sample on an existing scrape.
func pick(mfs []*dto.MetricFamily, name string, kv ...string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if labels[kv[i]] != kv[i+1] {
					continue next
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetricsHTTP: GET /metrics on the API listener, REST requests
// counted by route pattern (never the raw path), unknown paths as
// "unmatched", and signaling messages of both the peers and the server.
func TestMetricsHTTP(t *testing.T) {
	reg := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	e := newTestEnv(t, withMetrics(reg))

	p := e.c.CreatePeer("metrics-peer")
	e.c.Expect(200, "GET", peerPath(p, "/status"), nil)
	e.c.Expect(404, "GET", "/peers/nobody/status?token=pt-x", nil)
	if r, err := e.c.DoRaw("GET", "/no/such/thing", nil); err != nil || r.Status != 404 {
		t.Fatalf("%v %v", r.Status, err)
	}
	if r, err := e.c.DoRaw("PATCH", "/peers", nil); err != nil || r.Status != 405 {
		t.Fatalf("%v %v", r.Status, err)
	}
	e.c.DeletePeer(p)

	r, err := e.c.DoRaw("GET", "/metrics", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /metrics: %v %v", r.Status, err)
	}
	if body := string(r.Body); !strings.Contains(body, `gw_build_info{goversion=`) || !strings.Contains(body, "gw_dataplane_ports ") {
		t.Errorf("scrape lacks build info or dataplane:\n%.2000s", body)
	}
	for _, c := range [][]string{
		{"route", "/peers", "method", "POST", "code", "201"},
		{"route", "/peers/{peer_id}/status", "method", "GET", "code", "200"},
		{"route", "/peers/{peer_id}/status", "method", "GET", "code", "404"},
		{"route", "unmatched", "method", "GET", "code", "404"},
		{"route", "/peers", "method", "PATCH", "code", "405"},
		{"route", "/peers/{peer_id}", "method", "DELETE", "code", "204"},
	} {
		if v, ok := sample(t, reg, "gw_http_requests_total", c...); !ok || v != 1 {
			t.Errorf("gw_http_requests_total%v = %v (%v), want 1", c, v, ok)
		}
	}
	if v, _ := sample(t, reg, "gw_http_request_duration_seconds", "route", "/peers", "method", "POST"); v != 1 {
		t.Errorf("latency observations of POST /peers: %v", v)
	}
	mfs, _ := reg.Gatherer().Gather()
	for _, mf := range mfs {
		if mf.GetName() != "gw_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && strings.Contains(l.GetValue(), "metrics-peer") {
					t.Errorf("a raw path as route label: %s", l.GetValue())
				}
			}
		}
	}
	// The peer's client sends a HEARTBEAT at once and LEAVE on delete; the
	// server counts both. (The peer's own hook sees what goes through
	// Send and what it receives: nothing here.)
	waitFor(t, "LEAVE at the server", 5*time.Second, func() bool {
		v, _ := sample(t, reg, "gw_signaling_messages_total", "type", "LEAVE", "result", "accepted")
		return v == 1
	})
	if v, _ := sample(t, reg, "gw_signaling_messages_total", "type", "HEARTBEAT", "result", "accepted"); v < 1 {
		t.Errorf("heartbeats accepted: %v", v)
	}
}

// TestMetricsOff: without a registry there is no /metrics route.
func TestMetricsOff(t *testing.T) {
	e := newTestEnv(t)
	r, err := e.c.DoRaw("GET", "/metrics", nil)
	if err != nil || r.Status != 404 {
		t.Fatalf("GET /metrics without metrics: %v %v", r.Status, err)
	}
}
