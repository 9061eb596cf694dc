package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"
)

// A Scenario is one benchmark. It measures, and says whether the numbers
// meet the goals written for it. Scenarios register in init (see
// register); each lives in its own file and may define its own flags, named
// "<scenario>.<flag>".
type Scenario struct {
	Name string
	// Help is one line for -list.
	Help string
	Run  func(ctx context.Context, env *Env) (*Result, error)
}

// Env is what a scenario gets from the runner.
type Env struct {
	// Duration is how long each measurement window lasts.
	Duration time.Duration
	// Log takes progress lines (stderr), so the table stays readable.
	Log io.Writer
	// Quick asks for a smoke run (CI): fewer, shorter trials.
	Quick bool
	// Explicit names the flags given on the command line (so a quick run
	// shortens only what the user left at its default).
	Explicit map[string]bool
}

// Logf writes a progress line.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Log, format+"\n", args...)
}

// Result is what a scenario found.
type Result struct {
	Rows  []Row
	Goals []Goal
	// Notes are printed under the table: how to read it, caveats.
	Notes []string
	// Charts are drawn as PNG and SVG next to the report.
	Charts []Chart
}

// Chart is a line chart: one line per series, over shared x values.
type Chart struct {
	// Name is the file name stem (unique within the scenario).
	Name, Title, X, Y string
	LogY              bool
	Series            []Series
}

// Series is one line; NaN values are left out.
type Series struct {
	Name string
	X, Y []float64
}

// Row is one measured case: labels saying which case (implementation,
// payload size...) and the values measured.
type Row struct {
	Labels []Label
	Values []Value
}

// Label names one dimension of a case.
type Label struct {
	Name, Value string
}

// Value is one measured number. Prec is how many decimals to print.
type Value struct {
	Name string
	Unit string
	V    float64
	Prec int
}

// Goal is a target the scenario checks its numbers against.
type Goal struct {
	Name   string
	Pass   bool
	Detail string
}

var scenarios = map[string]Scenario{}

// register adds a scenario; a duplicate name is a programming error.
func register(s Scenario) {
	if _, dup := scenarios[s.Name]; dup {
		panic("bench: duplicate scenario " + s.Name)
	}
	scenarios[s.Name] = s
}

// scenarioNames lists the registered scenarios, sorted.
func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
