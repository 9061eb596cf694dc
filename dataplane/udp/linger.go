package udp

import (
	"sync/atomic"
	"time"
)

const (
	// lingerWindow is how often rates are re-judged.
	lingerWindow = 100 * time.Millisecond
	// lingerPortWakes is the wake-ups a second over which a waiting port
	// of a busy plane is polled on the tick instead: an empty poll on a
	// tick that other ports share costs a system call, a wake-up for a
	// datagram or two many times that. A port whose datagrams come in runs
	// (a camera's frames) wakes once a run or so, and keeps waiting.
	lingerPortWakes = 200
	// lingerPollHits: a polling port keeps polling while at least this
	// share of its polls find datagrams; runs leave most ticks empty (30
	// frames a second find something on at most 60 of 500 2 ms ticks).
	lingerPollHits = 0.15
)

// linger moves a busy plane's workers from waking on each datagram to
// reading on a common tick. While the plane receives at least minRate
// packets/s over all its ports, a port whose worker wakes up at least
// lingerPortWakes times a second sleeps until the next tick (a multiple of
// tick since the plane started), then reads whatever arrived without
// waiting, relays it and sleeps again. The timers of all such ports fire
// at the same instant, so one thread wake-up serves every busy port, and
// what each port read leaves in one batch, instead of a wake-up and a send
// per datagram. A datagram waits at most a tick (Go's timers are coarse: on
// Linux an idle process's timer sleep lasts at least a millisecond). The
// port waits in the netpoller again below 3/4 of the plane's rate, or when
// fewer than lingerPollHits of its polls find anything.
type linger struct {
	tick    time.Duration
	minRate float64
	epoch   time.Time

	pkts    atomic.Uint64 // received over all ports
	polling atomic.Int64  // ports polling now
	hot     atomic.Bool
	judgeAt atomic.Int64  // ns since epoch of the last judgement
	judgedN atomic.Uint64 // pkts at the last judgement
}

// lingerEpoch is every linger's: the ticks of a process's planes and ICE
// sockets fall together, so one wake-up serves them all.
var lingerEpoch = time.Now()

func newLinger(tick time.Duration, minRate int) *linger {
	if tick <= 0 || minRate <= 0 {
		return nil
	}
	return &linger{tick: tick, minRate: float64(minRate), epoch: lingerEpoch}
}

// portLinger is one worker's part: its own traffic and mode.
type portLinger struct {
	since time.Duration // window start, since the plane's epoch
	reads uint64        // reads in the window, empty polls included
	hits  uint64        // reads that returned datagrams
	poll  bool
}

// judge decides a port's mode from its last window of el. Waiting, each
// read is a wake-up.
func (s *portLinger) judge(el time.Duration) bool {
	if s.poll {
		return float64(s.hits) >= lingerPollHits*float64(s.reads)
	}
	return perSecond(s.hits, el) >= lingerPortWakes
}

// hotter applies hysteresis: on at rate >= min, off below 3/4 of it.
func hotter(on bool, rate, min float64) bool {
	return rate >= min || on && rate >= min*3/4
}

// perSecond is n events over d as a rate.
func perSecond(n uint64, d time.Duration) float64 {
	return float64(n) / d.Seconds()
}

// next is called by a worker after each read, with the messages it read
// (n; a GRO buffer of several datagrams counts once) and whether they
// filled its batch. It returns whether the worker polls next, having slept
// until the next tick if so.
func (l *linger) next(s *portLinger, n int, full bool) bool {
	now := time.Since(l.epoch)
	s.reads++
	if n > 0 {
		l.pkts.Add(uint64(n))
		s.hits++
	}
	if last := time.Duration(l.judgeAt.Load()); now-last >= lingerWindow && l.judgeAt.CompareAndSwap(int64(last), int64(now)) {
		total := l.pkts.Load()
		l.hot.Store(hotter(l.hot.Load(), perSecond(total-l.judgedN.Swap(total), now-last), l.minRate))
	}
	if el := now - s.since; el >= lingerWindow {
		s.poll = s.judge(el)
		s.since, s.reads, s.hits = now, 0, 0
	}
	if !s.poll || !l.hot.Load() {
		return false
	}
	if !full {
		time.Sleep(l.tick - now%l.tick)
	}
	return true
}
