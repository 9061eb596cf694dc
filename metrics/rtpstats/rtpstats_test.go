package rtpstats

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

// The references below are written from RFC 3550 and kept deliberately
// naive: refSource is appendix A.1/A.3 transliterated (int arithmetic, the
// C code's branches), and groundTruth computes the same figures from what
// the test generator knows (unwrapped sequence numbers and timestamps,
// which copies are duplicates) with the formulas of A.3 and A.8, so that
// the wrap-around handling of Receiver is checked against something that
// never wraps.

// refSource is RFC 3550 A.1 and A.3, statement by statement.
type refSource struct {
	maxSeq        uint16
	cycles        uint32
	baseSeq       uint32
	badSeq        uint32
	probation     int
	received      uint32
	expectedPrior uint32
	receivedPrior uint32
	started       bool
}

func (s *refSource) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1
	s.cycles = 0
	s.received = 0
	s.receivedPrior = 0
	s.expectedPrior = 0
}

func (s *refSource) updateSeq(seq uint16) int {
	if !s.started { // "on the first packet of a new source"
		s.started = true
		s.initSeq(seq)
		s.maxSeq = seq - 1
		s.probation = minSequential
	}
	udelta := seq - s.maxSeq
	if s.probation != 0 {
		if seq == s.maxSeq+1 {
			s.probation--
			s.maxSeq = seq
			if s.probation == 0 {
				s.initSeq(seq)
				s.received++
				return 1
			}
		} else {
			s.probation = minSequential - 1
			s.maxSeq = seq
		}
		return 0
	} else if udelta < maxDropout {
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	} else if udelta <= seqMod-maxMisorder {
		if uint32(seq) == s.badSeq {
			s.initSeq(seq)
		} else {
			s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return 0
		}
	}
	s.received++
	return 1
}

// report is A.3: cumulative lost and the fraction of the interval since the
// last report, as the 8-bit value.
func (s *refSource) report() (extMax uint32, expected uint32, lost int32, fraction uint8) {
	extMax = s.cycles + uint32(s.maxSeq)
	expected = extMax - s.baseSeq + 1
	lost = int32(expected - s.received)
	expectedInterval := expected - s.expectedPrior
	s.expectedPrior = expected
	receivedInterval := s.received - s.receivedPrior
	s.receivedPrior = s.received
	lostInterval := int32(expectedInterval - receivedInterval)
	if expectedInterval == 0 || lostInterval <= 0 {
		fraction = 0
	} else {
		fraction = uint8((lostInterval << 8) / int32(expectedInterval))
	}
	return
}

// pkt is one datagram as the generator made it.
type pkt struct {
	n       int64         // unwrapped sequence number
	ts      int64         // unwrapped RTP timestamp
	arrival time.Duration // since the stream's start
	dup     bool          // a second copy
}

func (p pkt) seq() uint16 { return uint16(p.n) }
func (p pkt) rtpTS() uint32 {
	return uint32(p.ts)
}

// impairments are what the test injects on the path.
type impairments struct {
	loss     float64       // Bernoulli loss probability
	burst    int           // every so often, drop this many in a row (0: never)
	delay    time.Duration // extra delay, uniform in [0, delay)
	dup      float64       // probability a delivered packet arrives twice
	clean    int           // the first packets are not impaired (probation)
	seq0     int64         // first sequence number (near 65535 to wrap early)
	ts0      int64         // first timestamp (near 2^32 to wrap early)
	tsStep   int64         // timestamp increment per packet
	ptime    time.Duration // packet interval at the sender
	nPackets int
}

// generate makes a stream with the impairments, in arrival order.
func generate(rng *rand.Rand, im impairments) []pkt {
	var out []pkt
	for i := 0; i < im.nPackets; i++ {
		p := pkt{n: im.seq0 + int64(i), ts: im.ts0 + int64(i)*im.tsStep, arrival: time.Duration(i) * im.ptime}
		if i >= im.clean && i < im.nPackets-1 { // the last one arrives: it bounds expected
			if im.burst > 0 && i%500 == 250 {
				i += im.burst - 1 // this one and the next burst-1 are lost
				continue
			}
			if rng.Float64() < im.loss {
				continue
			}
			if im.delay > 0 {
				p.arrival += time.Duration(rng.Int64N(int64(im.delay)))
			}
		}
		out = append(out, p)
		if i >= im.clean && i < im.nPackets-1 && rng.Float64() < im.dup {
			d := p
			d.dup = true
			d.arrival += time.Duration(1 + rng.Int64N(int64(3*im.ptime)))
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].arrival < out[b].arrival })
	return out
}

// groundTruth computes the figures from the generator's knowledge, for a
// stream whose first two packets arrive in order (probation passes at the
// second) and which neither restarts nor reorders by more than 100.
type groundTruth struct {
	clockRate     float64
	i             int
	base, max     int64
	received      int64
	dups, reorder int64
	seen          map[int64]bool
	expPrior      int64
	recPrior      int64
	jitter        float64
	lastTransit   float64
}

func (g *groundTruth) add(p pkt) {
	transit := p.arrival.Seconds()*g.clockRate - float64(p.ts)
	if g.i > 0 {
		g.jitter += (math.Abs(transit-g.lastTransit) - g.jitter) / 16
	}
	g.lastTransit = transit
	g.i++
	switch {
	case g.i == 1:
		g.seen = map[int64]bool{}
		return // probation
	case g.i == 2:
		g.base, g.max = p.n, p.n
	case g.seen[p.n]:
		g.dups++
	case p.n < g.max:
		g.reorder++
	}
	g.seen[p.n] = true
	g.max = max(g.max, p.n)
	g.received++
}

// interval returns A.3's figures since the previous call.
func (g *groundTruth) interval() (expected, lost int64, fraction float64) {
	expected = g.max - g.base + 1
	lost = expected - g.received
	ei, ri := expected-g.expPrior, g.received-g.recPrior
	g.expPrior, g.recPrior = expected, g.received
	if li := ei - ri; ei > 0 && li > 0 {
		fraction = float64(li*256/ei) / 256
	}
	return expected, lost, fraction
}

var t0 = time.Now()

func TestAgainstReferences(t *testing.T) {
	cases := []struct {
		name string
		im   impairments
		rate uint32
	}{
		{"clean audio", impairments{nPackets: 3000, ptime: 20 * time.Millisecond, tsStep: 960, seq0: 1000, ts0: 5}, 48000},
		{"loss", impairments{nPackets: 5000, loss: 0.05, burst: 7, clean: 3, ptime: 20 * time.Millisecond, tsStep: 960, seq0: 7, ts0: 1 << 20}, 48000},
		{"jitter and reorder", impairments{nPackets: 5000, delay: 100 * time.Millisecond, clean: 8, ptime: 20 * time.Millisecond, tsStep: 160, seq0: 300, ts0: 9}, 8000},
		{"duplicates", impairments{nPackets: 5000, dup: 0.03, delay: 5 * time.Millisecond, clean: 3, ptime: 10 * time.Millisecond, tsStep: 900, seq0: 40000, ts0: 0}, 90000},
		{"wrap", impairments{nPackets: 200000, loss: 0.02, burst: 40, delay: 30 * time.Millisecond, dup: 0.01, clean: 10, ptime: 5 * time.Millisecond, tsStep: 3000, seq0: 65500, ts0: 1<<32 - 50000}, 90000},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ci)+1, 42))
			stream := generate(rng, c.im)
			r := New(Config{ClockRate: c.rate})
			var ref refSource
			g := groundTruth{clockRate: float64(c.rate)}
			publishes := 0
			var lastAt time.Time
			for _, p := range stream {
				at := t0.Add(p.arrival)
				pub := r.Update(p.seq(), p.rtpTS(), 100, at)
				ref.updateSeq(p.seq())
				g.add(p)
				if !pub {
					continue
				}
				publishes++
				s := r.Snapshot()
				if publishes > 1 && s.At.Sub(lastAt) < DefaultInterval {
					t.Fatalf("published %v after the previous one", s.At.Sub(lastAt))
				}
				lastAt = s.At
				if !s.Valid {
					if g.i > 1 {
						t.Fatalf("not valid after %d packets", g.i)
					}
					continue
				}
				extMax, refExp, refLost, refFrac := ref.report()
				exp, lost, frac := g.interval()
				if s.ExtHighestSeq != extMax || s.Expected != uint64(refExp) || s.Lost != int64(refLost) || s.FractionLost != float64(refFrac)/256 {
					t.Fatalf("packet %d: got ext %d expected %d lost %d fraction %v; A.1 reference ext %d expected %d lost %d fraction %v",
						g.i, s.ExtHighestSeq, s.Expected, s.Lost, s.FractionLost, extMax, refExp, refLost, float64(refFrac)/256)
				}
				if int64(s.Expected) != exp || s.Lost != lost || s.FractionLost != frac || int64(s.Received) != g.received {
					t.Fatalf("packet %d: got expected %d lost %d fraction %v received %d; ground truth %d %d %v %d",
						g.i, s.Expected, s.Lost, s.FractionLost, s.Received, exp, lost, frac, g.received)
				}
				if math.Abs(s.Jitter-g.jitter/g.clockRate) > 1e-9 {
					t.Fatalf("packet %d: jitter %v s, reference %v s", g.i, s.Jitter, g.jitter/g.clockRate)
				}
				if int64(s.Duplicates) != g.dups || int64(s.Reordered) != g.reorder {
					t.Fatalf("packet %d: duplicates %d reordered %d, ground truth %d %d", g.i, s.Duplicates, s.Reordered, g.dups, g.reorder)
				}
				if s.Packets != uint64(g.i) || s.Bytes != 100*uint64(g.i) {
					t.Fatalf("packets %d bytes %d after %d packets", s.Packets, s.Bytes, g.i)
				}
			}
			// One per interval, each late by up to a packet gap.
			if min := int(stream[len(stream)-1].arrival / (DefaultInterval + 150*time.Millisecond)); publishes < min {
				t.Errorf("%d publications over %v", publishes, stream[len(stream)-1].arrival)
			}
		})
	}
}

// TestA1EdgeCases feeds sequences built to hit every branch of A.1
// (probation failures, restarts, large jumps, late packets beyond the
// misorder limit, wrap-around) and compares with the transliteration after
// every packet.
func TestA1EdgeCases(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		// Publications only when the test asks, so the reference's
		// intervals are the same.
		r := New(Config{ClockRate: 90000, Interval: 1000 * time.Hour})
		var ref refSource
		seq := uint16(rng.Uint32())
		at := t0
		for i := 0; i < 20000; i++ {
			switch x := rng.IntN(1000); {
			case x < 850:
				seq++
			case x < 900:
				seq += uint16(2 + rng.IntN(50)) // gap
			case x < 940:
				seq -= uint16(1 + rng.IntN(99)) // late
			case x < 960:
				// repeat: a duplicate
			case x < 975:
				seq -= uint16(100 + rng.IntN(3000)) // too late: treated as a jump
			case x < 990:
				seq += uint16(3000 + rng.IntN(60000)) // jump; two in a row restart
			default:
				seq = uint16(rng.Uint32())
			}
			at = at.Add(time.Duration(rng.IntN(int(30 * time.Millisecond))))
			r.Update(seq, uint32(i)*3000, 1200, at)
			ref.updateSeq(seq)
			if rng.IntN(10) == 0 {
				r.Publish()
				s := r.Snapshot()
				if s.Valid != (ref.probation == 0) {
					t.Fatalf("seed %d packet %d: valid %v, reference probation %d", seed, i, s.Valid, ref.probation)
				}
				if !s.Valid {
					continue
				}
				extMax, exp, lost, frac := ref.report()
				if s.ExtHighestSeq != extMax || s.Expected != uint64(exp) || s.Received != uint64(ref.received) ||
					s.Lost != int64(lost) || s.FractionLost != float64(frac)/256 {
					t.Fatalf("seed %d packet %d: got %+v; reference ext %d expected %d received %d lost %d fraction %d/256",
						seed, i, s, extMax, exp, ref.received, lost, frac)
				}
			}
		}
	}
}

// TestInjected checks the figures against what was injected, in the units
// a dashboard shows: a loss rate comes back as the mean fraction lost, and
// i.i.d. delay uniform in [0, a) gives jitter E|X-Y| = a/3.
func TestInjected(t *testing.T) {
	const a = 20 * time.Millisecond
	im := impairments{nPackets: 50 * 600, loss: 0.05, delay: a, clean: 3, ptime: 20 * time.Millisecond, tsStep: 960, seq0: 65000, ts0: 1<<32 - 100000}
	rng := rand.New(rand.NewPCG(99, 1))
	stream := generate(rng, im)
	r := New(Config{ClockRate: 48000})
	var jitterSum, fracSum float64
	var n int
	for _, p := range stream {
		if r.Update(p.seq(), p.rtpTS(), 160, t0.Add(p.arrival)) {
			s := r.Snapshot()
			if s.Packets > 500 { // past the EWMA's warm-up
				jitterSum += s.Jitter
				fracSum += s.FractionLost
				n++
			}
		}
	}
	r.Publish()
	s := r.Snapshot()
	injected := int64(im.nPackets - len(stream))
	if s.Lost != injected {
		t.Errorf("lost %d, injected %d", s.Lost, injected)
	}
	if mean := fracSum / float64(n); math.Abs(mean-im.loss) > 0.01 {
		t.Errorf("mean fraction lost %.4f, injected %.2f (tolerance 0.01)", mean, im.loss)
	}
	want := a.Seconds() / 3
	if mean := jitterSum / float64(n); math.Abs(mean-want)/want > 0.05 {
		t.Errorf("mean jitter %.5f s, injected delay U[0,%v) gives %.5f s (tolerance 5%%)", mean, a, want)
	}
}

func TestNoClockRate(t *testing.T) {
	r := New(Config{})
	r.Update(1, 0, 10, t0)
	r.Update(2, 100000, 10, t0.Add(time.Millisecond))
	r.Publish()
	if s := r.Snapshot(); s.Jitter != 0 || s.Received != 1 || !s.Valid {
		t.Errorf("%+v", s)
	}
	var zero Receiver
	if s := zero.Snapshot(); s.Packets != 0 || !s.At.IsZero() {
		t.Errorf("zero receiver snapshot %+v", s)
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	r := New(Config{ClockRate: 90000})
	seq, ts, at := uint16(65000), uint32(1<<32-9000), t0
	allocs := testing.AllocsPerRun(20000, func() {
		r.Update(seq, ts, 1200, at)
		seq += 1 + uint16(seq%7/6) // a gap now and then
		ts += 3000
		at = at.Add(11 * time.Millisecond)
		if seq%100 == 0 {
			r.Update(seq-3, ts-9000, 1200, at) // late
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
	if r.Snapshot().Packets == 0 {
		t.Error("nothing published")
	}
}

// TestCounts: Counts are live while the snapshot waits for its interval.
func TestCounts(t *testing.T) {
	r := New(Config{ClockRate: 90000})
	for i := range 5 {
		r.Update(uint16(i), uint32(i*3000), 100+i, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if p, b := r.Counts(); p != 5 || b != 510 {
		t.Errorf("Counts %d packets %d bytes, want 5 and 510", p, b)
	}
	if s := r.Snapshot(); s.Packets != 1 || s.Bytes != 100 {
		t.Errorf("snapshot %d packets %d bytes: published only at the first", s.Packets, s.Bytes)
	}
}

// TestConcurrentSnapshot: a reader never sees a torn snapshot (the -race
// run also checks the publication is data-race free).
func TestConcurrentSnapshot(t *testing.T) {
	r := New(Config{ClockRate: 8000, Interval: time.Millisecond})
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		at := t0
		for i := 0; i < 200000; i++ {
			if i%9 == 4 {
				continue // lost
			}
			at = at.Add(time.Millisecond)
			r.Update(uint16(i), uint32(i*8), 50, at)
		}
	}()
	var last uint64
	for {
		s := r.Snapshot()
		if s.Lost != int64(s.Expected)-int64(s.Received) || s.Bytes != 50*s.Packets {
			t.Fatalf("torn snapshot %+v", s)
		}
		if s.Packets < last {
			t.Fatalf("packets went back from %d to %d", last, s.Packets)
		}
		last = s.Packets
		select {
		case <-done:
			wg.Wait()
			return
		default:
		}
	}
}

// TestRestart: after Restart, the loss and jitter figures are those of a
// Receiver that saw only the new source; the packet counts go on.
func TestRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	first := generate(rng, impairments{nPackets: 700, loss: 0.1, delay: 30 * time.Millisecond, clean: 3, ptime: 10 * time.Millisecond, tsStep: 900, seq0: 65400, ts0: 77})
	second := generate(rng, impairments{nPackets: 900, loss: 0.03, delay: 10 * time.Millisecond, dup: 0.02, clean: 3, ptime: 10 * time.Millisecond, tsStep: 900, seq0: 12, ts0: 1 << 31})
	cfg := Config{ClockRate: 90000, Interval: 1000 * time.Hour}
	restarted, fresh := New(cfg), New(cfg)
	start := t0
	for _, p := range first {
		restarted.Update(p.seq(), p.rtpTS(), 100, start.Add(p.arrival))
	}
	restarted.Restart()
	start = start.Add(first[len(first)-1].arrival + time.Second)
	for _, p := range second {
		at := start.Add(p.arrival)
		restarted.Update(p.seq(), p.rtpTS(), 100, at)
		fresh.Update(p.seq(), p.rtpTS(), 100, at)
	}
	restarted.Publish()
	fresh.Publish()
	got, want := restarted.Snapshot(), fresh.Snapshot()
	if got.Valid != want.Valid || got.ExtHighestSeq != want.ExtHighestSeq || got.Expected != want.Expected ||
		got.Received != want.Received || got.Lost != want.Lost || got.FractionLost != want.FractionLost || got.Jitter != want.Jitter {
		t.Errorf("after Restart %+v\nfresh receiver %+v", got, want)
	}
	if got.Packets != uint64(len(first)+len(second)) || got.Bytes != 100*got.Packets {
		t.Errorf("packets %d bytes %d, want %d packets", got.Packets, got.Bytes, len(first)+len(second))
	}
	if !got.Valid || got.Lost <= 0 {
		t.Errorf("second source not measured: %+v", got)
	}
	var idle Receiver
	idle.Restart() // before any packet: nothing to do
}
