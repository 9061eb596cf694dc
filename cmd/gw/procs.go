package main

import (
	"log/slog"
	"os"
	"runtime"
	"strconv"

	"github.com/gw-project/gw/internal/procs"
)

// governProcs starts governing GOMAXPROCS by load unless told not to, the
// user fixed it (GOMAXPROCS in the environment), or dataplane workers are
// pinned (on one P, each wake-up of a worker locked to its thread would
// hand the P between threads: the switches the governor saves). It returns
// what gw runs with, for the log, and what stops the governor.
func governProcs(adaptive, pinned bool, log *slog.Logger) (mode string, stop func()) {
	fixed := strconv.Itoa(runtime.GOMAXPROCS(0))
	if _, set := os.LookupEnv("GOMAXPROCS"); set || !adaptive || pinned || fixed == "1" {
		return fixed, func() {}
	}
	g, err := procs.Start(procs.DefaultPolicy, log)
	if err != nil {
		log.Warn("GOMAXPROCS stays fixed", "err", err)
		return fixed, func() {}
	}
	return "adaptive, 1-" + fixed, g.Stop
}
