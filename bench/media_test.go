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

// TestLeastStolen: latency windows are measured again only while the
// hypervisor steals, at most latencyWindows times; the least stolen one
// counts, with the loss of all of them.
func TestLeastStolen(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		steal   []float64
		windows int
		want    float64
	}{
		{"quiet", context.Background(), []float64{0.004, 0.5}, 1, 0.004},
		{"stolen once", context.Background(), []float64{0.08, 0.002, 0.5}, 2, 0.002},
		{"stolen throughout", context.Background(), []float64{0.08, 0.03, 0.05, 0}, latencyWindows, 0.03},
		{"canceled", canceled, []float64{0.08, 0}, 1, 0.08},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			w, err := leastStolen(tc.ctx, func() (mediaWindow, error) {
				w := mediaWindow{steal: tc.steal[i], sent: 100, lost: int64(i), p99: time.Duration(i)}
				i++
				return w, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			lost := int64(tc.windows * (tc.windows - 1) / 2)
			if i != tc.windows || w.windows != tc.windows || w.steal != tc.want || w.sent != uint64(100*tc.windows) || w.lost != lost {
				t.Errorf("measured %d windows, kept %+v; want %d windows, steal %v, sent %d, lost %d", i, w, tc.windows, tc.want, 100*tc.windows, lost)
			}
			if tc.steal[w.p99] != w.steal {
				t.Errorf("kept window %d's figures with steal %v", w.p99, w.steal)
			}
		})
	}
	if _, err := leastStolen(context.Background(), func() (mediaWindow, error) { return mediaWindow{}, io.ErrUnexpectedEOF }); err != io.ErrUnexpectedEOF {
		t.Errorf("error: %v", err)
	}
}
