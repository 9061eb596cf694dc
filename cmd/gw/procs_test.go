package main

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// An idle gw goes to one P; told not to, or given GOMAXPROCS, or with
// pinned workers, it keeps what it started with.
func TestAdaptiveProcs(t *testing.T) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		t.Skip("GOMAXPROCS is set for the tests, and gw would inherit it")
	}
	// A gw started from here gets the same default (same CPUs, same cgroup).
	n := runtime.GOMAXPROCS(0)
	if n < 2 {
		t.Skip("one CPU: nothing to govern")
	}
	all := strconv.Itoa(n)
	t.Run("idle", func(t *testing.T) {
		g := gwtest.Start(t)
		waitLog(t, g, `gomaxprocs="adaptive, 1-`+all+`"`, 10*time.Second)
		// Watched in the log: scraping /metrics often would be load.
		waitLog(t, g, `msg="GOMAXPROCS changed" gomaxprocs=1 `, 15*time.Second)
		if n := gomaxprocs(t, g); n != 1 {
			t.Fatalf("/metrics says GOMAXPROCS %d after the change to 1", n)
		}
	})
	for _, c := range []struct {
		name, env, want string
		args            []string
	}{
		{"off", "", all, []string{"--adaptive-procs=false"}},
		{"GOMAXPROCS set", "2", "2", nil},
		{"pinned", "", all, []string{"--dataplane-cpus", "0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("GOMAXPROCS", c.env)
			}
			g := gwtest.Start(t, c.args...)
			waitLog(t, g, "gomaxprocs="+c.want+"\n", 10*time.Second)
			// Longer than the default policy's hold.
			time.Sleep(3 * time.Second)
			if got := gomaxprocs(t, g); strconv.Itoa(got) != c.want {
				t.Fatalf("GOMAXPROCS %d after 3 s idle, want %s", got, c.want)
			}
		})
	}
}

// waitLog waits for want in g's log (the ready line follows the API
// coming up).
func waitLog(t *testing.T, g *gwtest.Process, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(g.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in gw's log within %v", want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var gomaxprocsLine = regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\d+)$`)

// gomaxprocs reads a gw's GOMAXPROCS from its /metrics.
func gomaxprocs(t *testing.T, g *gwtest.Process) int {
	t.Helper()
	m := gomaxprocsLine.FindSubmatch(g.Metrics(t))
	if m == nil {
		t.Fatal("/metrics has no go_sched_gomaxprocs_threads")
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}
