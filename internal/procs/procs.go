// Package procs sets how many threads run the process's Go code at once
// (GOMAXPROCS) from the process's demand: one while the work fits in one,
// the runtime's default when it does not.
//
// pion hands each received packet through a chain of goroutines. While a
// second P is idle, every hand-off wakes a thread on another CPU, which
// finds nothing to run once the sender has gone back to waiting; on the
// VM gw is benchmarked on, that wake-up costs more than the packet's own
// work. On one P the chain runs back to back on one thread. Under load
// the other CPUs are needed, and their threads are busy anyway, so little
// is wasted.
package procs

import (
	"errors"
	"log/slog"
	"runtime"
	"time"
)

// Policy says when to change. A sample's demand is the CPUs the process
// used plus those its threads waited for while runnable (another process
// had the CPU).
type Policy struct {
	// Samples are taken every Interval, and every IdleInterval while the
	// last one demanded Idle or less: a sample wakes the process, which
	// on a VM costs about as much as reading the figures, and a gw with
	// little to do should spend little on watching itself. One P has
	// room for several times Idle, so a rise from there is caught in
	// time all the same.
	Interval, IdleInterval time.Duration
	Idle                   float64
	// On one P, a sample demanding more than Up brings the default back at
	// once, so a rising load is served within one Interval (socket buffers
	// hold the rest). Counting the waits makes a process that other
	// programs crowd out of its one CPU take more threads, and so a larger
	// share, as it would on the default.
	Up float64
	// On the default, every sample demanding less than Down for Hold goes
	// to one P. On many Ps the same work measures higher (the wasted
	// wake-ups), so Down sits well under Up and a load does not flap
	// between the two.
	Down float64
	Hold time.Duration
}

// DefaultPolicy changes to one P after two seconds below 0.4 CPUs, and
// back at the first sample above 0.75: within 50 ms, or 250 ms when the
// last sample was below 0.2 (it looks four times a second then).
var DefaultPolicy = Policy{
	Interval: 50 * time.Millisecond, IdleInterval: 250 * time.Millisecond, Idle: 0.2,
	Up: 0.75, Down: 0.4, Hold: 2 * time.Second,
}

// state is the governor's decision, apart from clocks and the runtime.
type state struct {
	one  bool          // on one P
	calm time.Duration // how long every sample has been below Down
}

// step takes the demand x (CPUs) over dt and reports whether to switch
// (s.one is then the new setting).
func (s *state) step(p Policy, x float64, dt time.Duration) bool {
	if s.one {
		if x > p.Up {
			s.one, s.calm = false, 0
			return true
		}
		return false
	}
	if x >= p.Down {
		s.calm = 0
		return false
	}
	s.calm += dt
	if s.calm >= p.Hold {
		s.one, s.calm = true, 0
		return true
	}
	return false
}

// Governor adjusts GOMAXPROCS until stopped.
type Governor struct {
	stop chan struct{}
	done chan struct{}
}

// ErrUnsupported: the process's CPU time cannot be read on this system.
var ErrUnsupported = errors.New("procs: process CPU time not available on this system")

// Start governs GOMAXPROCS with p, beginning on the runtime's default
// (ignoring a GOMAXPROCS in the environment: callers that honour one do
// not start a Governor). With a default of one it starts nothing. log
// gets each change at debug level.
func Start(p Policy, log *slog.Logger) (*Governor, error) {
	if p.Interval <= 0 || p.IdleInterval < p.Interval || p.Hold <= 0 || p.Idle < 0 || p.Down <= p.Idle || p.Up <= p.Down {
		return nil, errors.New("procs: policy needs 0 < Interval <= IdleInterval, Hold > 0 and 0 <= Idle < Down < Up")
	}
	if _, err := cpuTime(); err != nil {
		return nil, err
	}
	runtime.SetDefaultGOMAXPROCS()
	g := &Governor{stop: make(chan struct{}), done: make(chan struct{})}
	if runtime.GOMAXPROCS(0) == 1 {
		close(g.done)
		return g, nil
	}
	go g.run(p, log)
	return g, nil
}

// Stop ends the governing and restores the runtime's default.
func (g *Governor) Stop() {
	select {
	case <-g.done:
		return
	default:
	}
	close(g.stop)
	<-g.done
}

func (g *Governor) run(p Policy, log *slog.Logger) {
	defer close(g.done)
	defer runtime.SetDefaultGOMAXPROCS()
	var w waits
	defer w.close()
	t := time.NewTimer(p.Interval)
	defer t.Stop()
	var s state
	lastWall := time.Now()
	lastCPU, _ := cpuTime()
	w.since()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		cpu, err := cpuTime()
		waited := w.since()
		now := time.Now()
		dt := now.Sub(lastWall)
		if err != nil || dt <= 0 {
			t.Reset(p.Interval)
			continue
		}
		x := float64(cpu-lastCPU+waited) / float64(dt)
		lastWall, lastCPU = now, cpu
		if x <= p.Idle {
			t.Reset(p.IdleInterval)
		} else {
			t.Reset(p.Interval)
		}
		if !s.step(p, x, dt) {
			continue
		}
		if s.one {
			runtime.GOMAXPROCS(1)
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
		log.Debug("GOMAXPROCS changed", "gomaxprocs", runtime.GOMAXPROCS(0), "demand_cpus", x)
	}
}
