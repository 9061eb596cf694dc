package main

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/internal/gwtest"
)

// The datachannel scenario runs fasthttp servers, whose process-wide
// goroutines outlive them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, gwtest.LeakOptions()...) }

// TestDataplaneScenarioSmoke runs the scenario's whole chain briefly at a
// low fixed rate: it checks the plumbing (rows, CPU samples, goals), not
// any number.
func TestDataplaneScenarioSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs traffic")
	}
	o := dpOptions{
		Impls:              dataplane.Names(),
		Payloads:           []int{200},
		PortMin:            28000,
		PortMax:            28999,
		LoadgenGSO:         true,
		Trial:              100 * time.Millisecond,
		Steps:              1,
		FixedRate:          5000,
		Measure:            300 * time.Millisecond,
		Warmup:             100 * time.Millisecond,
		DrainQuiet:         100 * time.Millisecond,
		SampleTimeout:      5 * time.Second,
		MaxMeasureAttempts: 1,
	}
	// Unpinned, the worker's thread CPU is not the worker's alone and is
	// not shown; pinned (Linux), it is.
	for _, cpus := range [][]int{nil, {0}} {
		o.CPUs = cpus
		res, err := dataplaneScenario(context.Background(), &Env{Duration: o.Measure, Log: io.Discard}, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != len(o.Impls) {
			t.Fatalf("%d rows for %d implementations", len(res.Rows), len(o.Impls))
		}
		wantWorker := cpus != nil && runtime.GOOS == "linux"
		for _, row := range res.Rows {
			vals := map[string]float64{}
			for _, v := range row.Values {
				vals[v.Name] = v.V
			}
			if vals["rate"] <= 0 || !(vals["dp"] > 0) {
				t.Errorf("CPUs %v, %v: nothing relayed, or no CPU measured: %v", cpus, row.Labels, vals)
			}
			if measured := vals["worker"] > 0; measured != wantWorker {
				t.Errorf("CPUs %v, %v: worker CPU %v, want it measured: %v", cpus, row.Labels, vals["worker"], wantWorker)
			}
		}
		wantGoals := 1
		if len(o.Impls) > 1 {
			wantGoals += len(o.Payloads)
		}
		if len(res.Goals) != wantGoals {
			t.Errorf("goals: %+v", res.Goals)
		}
	}
}

// TestSearchFindsARate runs the rate search once, briefly.
func TestSearchFindsARate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs traffic")
	}
	o := dpOptions{
		Impls: []string{"std"}, Payloads: []int{200}, PortMin: 28000, PortMax: 28999,
		LoadgenGSO: true, Trial: 100 * time.Millisecond, Steps: 2,
		Measure: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		DrainQuiet: 50 * time.Millisecond, SampleTimeout: 5 * time.Second, MaxMeasureAttempts: 1,
	}
	m, err := runDPCase(context.Background(), &Env{Log: io.Discard}, o, "std", 200)
	if err != nil {
		t.Fatal(err)
	}
	if m.offered <= 0 || m.fwd == 0 {
		t.Errorf("search gave %+v", m)
	}
}
