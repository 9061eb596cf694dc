package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestMediaScenarioSmoke runs the media scenario in a small shape: one
// stream through two gw processes, the baseline, its variant and the
// plain UDP forwarders (at once, on ports of their own). It checks the plumbing — every system carries
// the stream without loss at the latency rate, every point is measured,
// the goals are judged — not any number.
func TestMediaScenarioSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gw and baseline processes")
	}
	env := &Env{Duration: 300 * time.Millisecond, Log: io.Discard, Quick: true}
	t.Cleanup(bins.cleanup)
	if err := bins.build(env); err != nil {
		t.Fatal(err)
	}
	o := mediaOptions{
		Streams: []int{1}, Systems: []string{"gw", "baseline"}, VariantAt: 1, Floor: true,
		PortMin: 30000, PortMax: 31999, Size: 1200,
		Trial: 300 * time.Millisecond, Window: env.Duration, LatWindow: env.Duration, Warmup: 100 * time.Millisecond,
		Steps: 2, LatRate: 500, GoalRate: 2000, StartRate: 1000, MaxRate: 4000, BaselineRcvbuf: 4 << 20,
		Frames: []float64{0, 30},
	}
	res, err := mediaScenario(context.Background(), env, o)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range res.Rows {
		system, traffic, point := r.Labels[0].Value, r.Labels[2].Value, r.Labels[3].Value
		seen[system+"/"+point+"/"+traffic] = true
		vals := map[string]float64{}
		for _, v := range r.Values {
			vals[v.Name] = v.V
		}
		if !(vals["p50"] > 0) || !(vals["p99"] >= vals["p50"]) || !(vals["app p99"] >= vals["p99"]) || !(vals["steal"] >= 0 && vals["steal"] <= 100) {
			t.Errorf("%s/%s latency: %v", system, point, r.Values)
		}
		if system == "harness" {
			continue
		}
		if !(vals["delivered"] > 0) || !(vals["CPU"] > 0) || !(vals["RSS send"] > 0) || !(vals["RSS recv"] > 0) ||
			!(vals["switches send"] > 0) || !(vals["switches recv"] > 0) {
			t.Errorf("%s/%s: %v", system, point, r.Values)
		}
		if point == "latency" && (vals["lost"] != 0 || !(vals["p99"] > 0)) {
			t.Errorf("%s at the latency rate: lost %v, p99 %v µs", system, vals["lost"], vals["p99"])
		}
	}
	want := []string{"harness/harness/paced", "gw/latency/paced", "baseline/latency/paced", "udp-forward/latency/paced"}
	for _, tr := range []string{"paced", "30 bursts/s"} {
		for _, k := range []string{"gw/load", "baseline/load", "gw/max", "gw/goal", "gw/compare", "baseline/max", "baseline/compare", "baseline-gcm128/compare", "udp-forward/compare"} {
			want = append(want, k+"/"+tr)
		}
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("no %s row (rows: %v)", k, seen)
		}
	}
	if len(res.Goals) == 0 {
		t.Error("no goals judged")
	}
	for _, k := range []string{"udp-forward/load/paced", "udp-forward/max/paced"} {
		if seen[k] {
			t.Errorf("%s row: udp-forward is measured at the latency point and in the comparisons only", k)
		}
	}
	for _, g := range res.Goals {
		if strings.HasPrefix(g.Name, "p99 added latency") || strings.HasPrefix(g.Name, "gw ≥ 2×") {
			if !strings.Contains(g.Detail, "udp-forward") {
				t.Errorf("goal %q does not name the floor: %s", g.Name, g.Detail)
			}
		}
	}
}
