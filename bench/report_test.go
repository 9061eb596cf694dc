package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	rep := &Report{Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Host: hostInfo(), Flags: map[string]string{"duration": "1s"}}
	rep.add("demo", &Result{
		Rows: []Row{
			{Labels: []Label{{"impl", "a"}}, Values: []Value{{"rate", "pkt/s", 1234.6, 0}, {"cost", "ns/pkt", 10, 1}}},
			{Labels: []Label{{"impl", "b"}, {"extra", "x"}}, Values: []Value{{"rate", "pkt/s", 99, 0}}},
		},
		Goals: []Goal{{"fast", true, "yes"}, {"cheap", false, "no"}},
		Notes: []string{"a note"},
		Charts: []Chart{{Name: "demo-chart", Title: "Demo", X: "streams", Y: "pkt/s", LogY: true, Series: []Series{
			{Name: "a", X: []float64{1, 8, 32}, Y: []float64{10, math.NaN(), 1000}},
			{Name: "b | c", X: []float64{1, 8}, Y: []float64{5, 50}},
		}}},
	}, nil, time.Second)
	rep.Scenarios[0].result.Rows[1].Values = append(rep.Scenarios[0].result.Rows[1].Values, Value{"cost", "ns/pkt", math.NaN(), 1})
	rep.add("broken", nil, errors.New("boom"), 0)

	if got, want := strings.Join(columns(rep.Scenarios[0].result.Rows), ","), "impl,extra,rate,cost"; got != want {
		t.Errorf("columns %s, want %s", got, want)
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, want := range []string{"rate (pkt/s)", "1235", "10.0", "PASS  fast: yes", "FAIL  cheap: no", "note: a note", "ERROR: boom"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, out.String())
		}
	}
	if !rep.Failed() {
		t.Error("a failed goal does not fail the report")
	}

	dir := t.TempDir()
	paths, err := rep.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range paths {
		files = append(files, filepath.Base(p))
	}
	if got, want := strings.Join(files, " "), "20260102T030405Z-demo-chart.png 20260102T030405Z-demo-chart.svg 20260102T030405Z.json 20260102T030405Z.md"; got != want {
		t.Errorf("files %s, want %s", got, want)
	}
	for _, p := range paths[:2] {
		if st, err := os.Stat(p); err != nil || st.Size() < 1000 {
			t.Errorf("chart %s: %v", p, err)
		}
	}
	md, err := os.ReadFile(paths[3])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| impl | extra | rate (pkt/s) | cost (ns/pkt) |", "| b | x | 99 | – |", "**FAIL** cheap: no",
		"| PASS | demo | fast | yes |", "[![20260102T030405Z-demo-chart](20260102T030405Z-demo-chart.png)](20260102T030405Z-demo-chart.svg)", "**ERROR**: `boom`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	path := paths[2]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Scenarios []struct {
			Name string
			Rows []struct {
				Labels map[string]string
				Values map[string]struct {
					Value float64
					Unit  string
				}
			}
			Goals []Goal
			Error string
		}
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Scenarios) != 2 || back.Scenarios[0].Rows[0].Values["rate"].Value != 1234.6 ||
		back.Scenarios[0].Rows[1].Labels["extra"] != "x" || back.Scenarios[1].Error != "boom" {
		t.Errorf("JSON round trip: %s", b)
	}
}

func TestScenarioRegistry(t *testing.T) {
	if _, ok := scenarios["dataplane"]; !ok {
		t.Fatal("dataplane scenario not registered")
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate registration did not panic")
		}
	}()
	register(Scenario{Name: "dataplane"})
}
