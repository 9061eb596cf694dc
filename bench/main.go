// Command bench is gw's benchmark suite (`make bench`, or `go run ./bench`).
// It runs the registered scenarios in one process, prints a table per
// scenario with its goals marked PASS or FAIL, and writes the whole report as
// JSON under bench/results/. Benchmarks measure; they are not timed tests,
// and a FAIL does not change the exit status unless -strict is given.
//
//	go run ./bench -list
//	go run ./bench -scenario dataplane -duration 3s -cpuprofile cpu.prof
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		which    = flag.String("scenario", "", "comma-separated scenarios to run (default: all; see -list)")
		duration = flag.Duration("duration", 2*time.Second, "length of each measurement window")
		out      = flag.String("out", "bench/results", "directory for the JSON report (empty: none)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
		memprof  = flag.String("memprofile", "", "write an allocation profile here at the end")
		list     = flag.Bool("list", false, "list scenarios and exit")
		strict   = flag.Bool("strict", false, "exit 1 if a goal fails")
		quick    = flag.Bool("quick", false, "smoke run (CI): short windows, few trials, fewer cases; the numbers are rough")
	)
	flag.Parse()
	explicit := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if *quick && !explicit["duration"] {
		*duration = 500 * time.Millisecond
	}
	defer bins.cleanup()

	if *list {
		for _, n := range scenarioNames() {
			fmt.Printf("%-12s %s\n", n, scenarios[n].Help)
		}
		return 0
	}
	names := scenarioNames()
	if *which != "" {
		names = strings.Split(*which, ",")
		for _, n := range names {
			if _, ok := scenarios[n]; !ok {
				fmt.Fprintf(os.Stderr, "bench: no scenario %q (have %s)\n", n, strings.Join(scenarioNames(), ", "))
				return 2
			}
		}
	}

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	if *memprof != "" {
		runtime.MemProfileRate = 1 // every allocation: there should be few
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep := &Report{Started: time.Now(), Host: hostInfo(), Flags: map[string]string{}}
	flag.VisitAll(func(f *flag.Flag) { rep.Flags[f.Name] = f.Value.String() })
	env := &Env{Duration: *duration, Log: os.Stderr, Quick: *quick, Explicit: explicit}
	for _, n := range names {
		env.Logf("== %s", n)
		t0 := time.Now()
		res, err := scenarios[n].Run(ctx, env)
		rep.add(n, res, err, time.Since(t0))
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Println()
	rep.Print(os.Stdout)
	if *out != "" {
		paths, err := rep.Write(*out)
		if len(paths) > 0 {
			fmt.Printf("\nreport: %s\n", strings.Join(paths, "\n        "))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: writing report:", err)
			return 2
		}
	}
	if *memprof != "" {
		f, err := os.Create(*memprof)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	if *strict && rep.Failed() {
		return 1
	}
	return 0
}
