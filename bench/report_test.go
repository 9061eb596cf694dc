package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
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
	}, nil, time.Second)
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
	path, err := rep.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, "20260102T030405Z.json") {
		t.Errorf("report path %s", path)
	}
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
