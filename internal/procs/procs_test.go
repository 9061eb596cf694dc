package procs

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	p := Policy{Interval: 100 * time.Millisecond, IdleInterval: 100 * time.Millisecond, Up: 0.75, Down: 0.4, Hold: 300 * time.Millisecond}
	dt := p.Interval
	var s state
	steps := []struct {
		demand float64
		change bool
		one    bool
	}{
		{0.1, false, false},
		{0.5, false, false}, // not calm: the hold starts again
		{0.1, false, false},
		{0.1, false, false},
		{0.1, true, true},   // three calm samples: one P
		{0.75, false, true}, // not above Up
		{0.2, false, true},
		{0.9, true, false}, // one sample above Up: back at once
		{0.1, false, false},
		{0.4, false, false}, // Down itself is not calm
		{0.1, false, false},
		{0.1, false, false},
		{0.0, true, true},
	}
	for i, st := range steps {
		if got := s.step(p, st.demand, dt); got != st.change || s.one != st.one {
			t.Fatalf("sample %d (demand %.2f): switch %v one %v, want switch %v one %v",
				i, st.demand, got, s.one, st.change, st.one)
		}
	}
}

func TestStartRefusesBadPolicy(t *testing.T) {
	for _, change := range []func(p *Policy){
		func(p *Policy) { *p = Policy{} },
		func(p *Policy) { p.Down = p.Up },
		func(p *Policy) { p.Down = p.Idle },
		func(p *Policy) { p.Idle = -1 },
		func(p *Policy) { p.Hold = 0 },
		func(p *Policy) { p.IdleInterval = p.Interval / 2 },
	} {
		p := DefaultPolicy
		change(&p)
		if g, err := Start(p, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			g.Stop()
			t.Errorf("Start(%+v) accepted", p)
		}
	}
}

// The process's own load drives it: idle, it goes to one P; goroutines
// that burn CPU bring the default back; idle again, one P; Stop restores
// the default.
func TestGovernsByLoad(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	all := runtime.GOMAXPROCS(0)
	if all < 2 {
		t.Skip("one CPU: nothing to govern")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	p := DefaultPolicy
	p.Interval, p.IdleInterval, p.Hold = 20*time.Millisecond, 40*time.Millisecond, 200*time.Millisecond
	g, err := Start(p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			g.Stop()
		}
	}()
	waitProcs(t, 1, "idle")

	var burning atomic.Bool
	burning.Store(true)
	var wg sync.WaitGroup
	for range all {
		wg.Go(func() {
			x := 0
			for burning.Load() {
				x++
			}
			_ = x
		})
	}
	waitProcs(t, all, "burning CPU")
	burning.Store(false)
	wg.Wait()
	waitProcs(t, 1, "idle again")

	g.Stop()
	stopped = true
	if n := runtime.GOMAXPROCS(0); n != all {
		t.Fatalf("after Stop GOMAXPROCS = %d, want the default %d", n, all)
	}
	g.Stop() // a second Stop returns
}

func waitProcs(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOMAXPROCS still %d after 10 s, want %d", when, runtime.GOMAXPROCS(0), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
