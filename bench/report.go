package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one run of the suite: what ran, where, and what it found. It is
// what goes to bench/results/<timestamp>.json.
type Report struct {
	Started   time.Time         `json:"started"`
	Host      Host              `json:"host"`
	Flags     map[string]string `json:"flags"`
	Scenarios []ScenarioReport  `json:"scenarios"`
}

// Host describes the machine, since numbers mean little without it.
type Host struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	Kernel    string `json:"kernel,omitempty"`
	CPUModel  string `json:"cpu_model,omitempty"`
}

// ScenarioReport is one scenario's part of a Report.
type ScenarioReport struct {
	Name    string    `json:"name"`
	Error   string    `json:"error,omitempty"`
	Seconds float64   `json:"seconds"`
	Columns []string  `json:"columns,omitempty"`
	Rows    []jsonRow `json:"rows,omitempty"`
	Goals   []Goal    `json:"goals,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
	// Charts are the plot files drawn for the scenario (PNG and SVG),
	// relative to the report's directory.
	Charts   []string `json:"charts,omitempty"`
	result   *Result  // for printing
	duration time.Duration
}

type jsonRow struct {
	Labels map[string]string    `json:"labels"`
	Values map[string]jsonValue `json:"values"`
}

type jsonValue struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

func hostInfo() Host {
	h := Host{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}

// add records a scenario's outcome.
func (r *Report) add(name string, res *Result, err error, took time.Duration) {
	sr := ScenarioReport{Name: name, Seconds: took.Seconds(), result: res, duration: took}
	if err != nil {
		sr.Error = err.Error()
	}
	if res != nil {
		sr.Columns = columns(res.Rows)
		for _, row := range res.Rows {
			jr := jsonRow{Labels: map[string]string{}, Values: map[string]jsonValue{}}
			for _, l := range row.Labels {
				jr.Labels[l.Name] = l.Value
			}
			for _, v := range row.Values {
				if math.IsNaN(v.V) || math.IsInf(v.V, 0) {
					continue // not measured (JSON has no NaN)
				}
				jr.Values[v.Name] = jsonValue{Value: v.V, Unit: v.Unit}
			}
			sr.Rows = append(sr.Rows, jr)
		}
		sr.Goals = res.Goals
		sr.Notes = res.Notes
	}
	r.Scenarios = append(r.Scenarios, sr)
}

// columns are the label names, then the value names, in first-seen order.
func columns(rows []Row) []string {
	var labels, values []string
	seen := map[string]bool{}
	for _, row := range rows {
		for _, l := range row.Labels {
			if !seen["l:"+l.Name] {
				seen["l:"+l.Name] = true
				labels = append(labels, l.Name)
			}
		}
		for _, v := range row.Values {
			if !seen["v:"+v.Name] {
				seen["v:"+v.Name] = true
				values = append(values, v.Name)
			}
		}
	}
	return append(labels, values...)
}

// Failed reports whether any goal failed or any scenario errored.
func (r *Report) Failed() bool {
	for _, s := range r.Scenarios {
		if s.Error != "" {
			return true
		}
		for _, g := range s.Goals {
			if !g.Pass {
				return true
			}
		}
	}
	return false
}

// Print writes the human-readable report: per scenario, a table, notes
// and goals with PASS/FAIL.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "gw bench  %s  %s %s/%s  %d CPUs  kernel %s\n",
		r.Started.Format(time.RFC3339), r.Host.GoVersion, r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.Kernel)
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n== %s (%.1fs)\n", s.Name, s.Seconds)
		if s.Error != "" {
			fmt.Fprintf(w, "ERROR: %s\n", s.Error)
		}
		if s.result == nil {
			continue
		}
		printTable(w, s.result.Rows)
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, g := range s.Goals {
			verdict := "PASS"
			if !g.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(w, "  %s  %s: %s\n", verdict, g.Name, g.Detail)
		}
	}
}

func printTable(w io.Writer, rows []Row) {
	if len(rows) == 0 {
		return
	}
	cols := columns(rows)
	units := map[string]string{}
	for _, row := range rows {
		for _, v := range row.Values {
			units[v.Name] = v.Unit
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for i, c := range cols {
		if u := units[c]; u != "" {
			c += " (" + u + ")"
		}
		fmt.Fprint(tw, c)
		if i < len(cols)-1 {
			fmt.Fprint(tw, "\t")
		}
	}
	fmt.Fprintln(tw, "\t")
	for _, row := range rows {
		cells := map[string]string{}
		for _, l := range row.Labels {
			cells[l.Name] = l.Value
		}
		for _, v := range row.Values {
			cells[v.Name] = formatValue(v)
		}
		for i, c := range cols {
			fmt.Fprint(tw, cells[c])
			if i < len(cols)-1 {
				fmt.Fprint(tw, "\t")
			}
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
}

// stamp names a run's files.
func (r *Report) stamp() string { return r.Started.UTC().Format("20060102T150405Z") }

// Write saves the report in dir: the plots of every scenario
// (<timestamp>-<chart>.png and .svg), <timestamp>.json and <timestamp>.md.
// It returns the paths written; a chart that cannot be drawn is reported
// and skipped.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	var errs []error
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		if s.result == nil {
			continue
		}
		for _, c := range s.result.Charts {
			files, err := drawChart(c, filepath.Join(dir, r.stamp()+"-"+c.Name))
			if err != nil {
				errs = append(errs, fmt.Errorf("chart %s: %w", c.Name, err))
			}
			for _, f := range files {
				s.Charts = append(s.Charts, filepath.Base(f))
			}
			paths = append(paths, files...)
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return paths, err
	}
	path := filepath.Join(dir, r.stamp()+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return paths, err
	}
	paths = append(paths, path)
	var md strings.Builder
	r.Markdown(&md)
	path = filepath.Join(dir, r.stamp()+".md")
	if err := os.WriteFile(path, []byte(md.String()), 0o644); err != nil {
		return paths, err
	}
	return append(paths, path), errors.Join(errs...)
}

// Markdown writes the report as Markdown: per scenario a table, the goals
// with PASS/FAIL, the notes, and the charts (PNG, linked to the SVG).
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "# gw bench %s\n\n", r.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "%s, %s/%s, %d CPUs (%s), kernel %s.\n\n", r.Host.GoVersion, r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.CPUModel, r.Host.Kernel)
	var flags []string
	for k, v := range r.Flags {
		if v != "" {
			flags = append(flags, fmt.Sprintf("`-%s=%s`", k, v))
		}
	}
	sort.Strings(flags)
	fmt.Fprintf(w, "Flags: %s\n\n", strings.Join(flags, " "))
	var goals []string
	for _, s := range r.Scenarios {
		for _, g := range s.Goals {
			goals = append(goals, fmt.Sprintf("| %s | %s | %s | %s |", verdict(g.Pass), s.Name, mdEscape(g.Name), mdEscape(g.Detail)))
		}
	}
	if len(goals) > 0 {
		fmt.Fprintf(w, "## Goals\n\n| | scenario | goal | measured |\n|---|---|---|---|\n%s\n\n", strings.Join(goals, "\n"))
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "## %s (%.0f s)\n\n", s.Name, s.Seconds)
		if s.Error != "" {
			fmt.Fprintf(w, "**ERROR**: `%s`\n\n", mdEscape(firstLine(s.Error)))
		}
		if s.result != nil && len(s.result.Rows) > 0 {
			markdownTable(w, s.result.Rows)
			fmt.Fprintln(w)
		}
		for _, g := range s.Goals {
			fmt.Fprintf(w, "- **%s** %s: %s\n", verdict(g.Pass), mdEscape(g.Name), mdEscape(g.Detail))
		}
		if len(s.Goals) > 0 {
			fmt.Fprintln(w)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "- %s\n", mdEscape(n))
		}
		if len(s.Notes) > 0 {
			fmt.Fprintln(w)
		}
		for _, c := range s.Charts {
			if stem, ok := strings.CutSuffix(c, ".png"); ok {
				fmt.Fprintf(w, "[![%s](%s)](%s.svg)\n\n", stem, c, stem)
			}
		}
	}
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func markdownTable(w io.Writer, rows []Row) {
	cols := columns(rows)
	units := map[string]string{}
	for _, row := range rows {
		for _, v := range row.Values {
			units[v.Name] = v.Unit
		}
	}
	head := make([]string, len(cols))
	align := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c
		if u := units[c]; u != "" {
			head[i] += " (" + u + ")"
		}
		align[i] = "---:"
	}
	fmt.Fprintf(w, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, row := range rows {
		cells := map[string]string{}
		for _, l := range row.Labels {
			cells[l.Name] = l.Value
		}
		for _, v := range row.Values {
			cells[v.Name] = formatValue(v)
		}
		out := make([]string, len(cols))
		for i, c := range cols {
			out[i] = mdEscape(cells[c])
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(out, " | "))
	}
}

// formatValue prints v with its precision; NaN (not measured) as "–".
func formatValue(v Value) string {
	if math.IsNaN(v.V) {
		return "–"
	}
	return strconv.FormatFloat(v.V, 'f', v.Prec, 64)
}
