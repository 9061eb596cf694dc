package main

import (
	"io"
	"net/http"
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
	n := runtime.NumCPU()
	if n < 2 {
		t.Skip("one CPU: nothing to govern")
	}
	all := strconv.Itoa(n)
	t.Run("idle", func(t *testing.T) {
		g := gwtest.Start(t)
		if !strings.Contains(g.Logs(), `gomaxprocs="adaptive, 1-`+all+`"`) {
			t.Fatalf("ready line does not say adaptive:\n%s", g.Logs())
		}
		// Watched in the log: scraping /metrics often would be load.
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(g.Logs(), `msg="GOMAXPROCS changed" gomaxprocs=1 `) {
			if time.Now().After(deadline) {
				t.Fatal("an idle gw did not go to one P within 15 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := gomaxprocs(t, g.API); n != 1 {
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
			if !strings.Contains(g.Logs(), "gomaxprocs="+c.want+"\n") {
				t.Fatalf("ready line does not say gomaxprocs=%s:\n%s", c.want, g.Logs())
			}
			// Longer than the default policy's hold.
			time.Sleep(3 * time.Second)
			if got := gomaxprocs(t, g.API); strconv.Itoa(got) != c.want {
				t.Fatalf("GOMAXPROCS %d after 3 s idle, want %s", got, c.want)
			}
		})
	}
}

var gomaxprocsLine = regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\d+)$`)

// gomaxprocs reads a gw's GOMAXPROCS from its /metrics.
func gomaxprocs(t *testing.T, api string) int {
	t.Helper()
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := gomaxprocsLine.FindSubmatch(b)
	if m == nil {
		t.Fatal("/metrics has no go_sched_gomaxprocs_threads")
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}
