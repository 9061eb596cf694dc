package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestDatachannelScenarioSmoke runs the scenario briefly: it checks the
// plumbing (two gateways, a connection, rows for both directions), not any
// number.
func TestDatachannelScenarioSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs traffic")
	}
	o := dcOptions{
		Sizes: []int{100, 20000}, Serializations: []string{"BINARY", "JSON"},
		PortMin: 23000, PortMax: 23999, Window: 1 << 20,
		Warmup: 50 * time.Millisecond, Measure: 200 * time.Millisecond,
	}
	res, err := datachannelScenario(context.Background(), &Env{Duration: o.Measure, Log: io.Discard}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 8 {
		t.Fatalf("%d rows, want 8", len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.Values[0].V <= 0 || r.Values[2].V != 0 {
			t.Errorf("%v: %v", r.Labels, r.Values)
		}
	}
}
