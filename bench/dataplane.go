package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gw-project/gw/bench/loadgen"
	"github.com/gw-project/gw/dataplane"
	_ "github.com/gw-project/gw/dataplane/udp"
)

// The dataplane scenario: load generator → dataplane port → sink that
// forwards each batch with Send → counting receiver, for each implementation
// and payload size. It searches the highest offered rate the chain carries
// without loss, then measures at that rate: throughput, CPU per datagram
// (the process's less the harness's, which is what the dataplane costs,
// Go runtime included; the worker thread's own, via RUSAGE_THREAD from
// inside the sink, when workers are pinned and so locked to their threads),
// and allocations per datagram.

func init() {
	register(Scenario{
		Name: "dataplane",
		Help: "UDP → dataplane port → Send → UDP relay, per implementation and payload: zero-loss rate, CPU/packet, allocs/packet",
		Run:  runDataplane,
	})
}

var dpFlags = struct {
	impls, payloads, cpus, ports *string
	loadgenGSO, receiverGRO      *bool
	portGRO                      *bool
	trial                        *time.Duration
	steps                        *int
	rate                         *float64
}{
	impls:       flag.String("dataplane.impls", "", "implementations to compare (default: all registered)"),
	payloads:    flag.String("dataplane.payloads", "200,1200", "payload sizes in bytes"),
	cpus:        flag.String("dataplane.cpus", "", "pin receive workers to these CPUs (Config.CPUs), e.g. 1"),
	ports:       flag.String("dataplane.ports", "46000-46999", "port range for the dataplane under test"),
	loadgenGSO:  flag.Bool("dataplane.loadgen-gso", true, "load generator sends each burst as one GSO message (cheap; without -dataplane.port-gro the kernel splits it, so the port still sees separate datagrams, as from apps)"),
	portGRO:     flag.Bool("dataplane.port-gro", false, "let the port under test use UDP_GRO: with a GSO load generator it then gets coalesced buffers, which apps sending datagram by datagram never produce"),
	receiverGRO: flag.Bool("dataplane.receiver-gro", false, "counting receiver enables UDP_GRO (cheaper harness; forwarded GSO then stays coalesced end to end)"),
	trial:       flag.Duration("dataplane.trial", 400*time.Millisecond, "length of each rate-search trial"),
	steps:       flag.Int("dataplane.steps", 6, "rate-search trials per case"),
	rate:        flag.Float64("dataplane.rate", 0, "skip the search and measure at this offered rate (datagrams/s)"),
}

// dpOptions are the scenario's knobs, resolved from flags (tests set them
// directly).
type dpOptions struct {
	Impls              []string
	Payloads           []int
	CPUs               []int
	PortMin, PortMax   int
	LoadgenGSO, RxGRO  bool
	PortGRO            bool
	Trial              time.Duration
	Steps              int
	FixedRate          float64
	Measure, Warmup    time.Duration
	DrainQuiet         time.Duration
	SampleTimeout      time.Duration
	MaxMeasureAttempts int
}

func dpOptionsFromFlags(env *Env) (dpOptions, error) {
	o := dpOptions{
		Impls:              dataplane.Names(),
		LoadgenGSO:         *dpFlags.loadgenGSO,
		RxGRO:              *dpFlags.receiverGRO,
		PortGRO:            *dpFlags.portGRO,
		Trial:              *dpFlags.trial,
		Steps:              *dpFlags.steps,
		FixedRate:          *dpFlags.rate,
		Measure:            env.Duration,
		Warmup:             200 * time.Millisecond,
		DrainQuiet:         250 * time.Millisecond,
		SampleTimeout:      time.Second,
		MaxMeasureAttempts: 4,
	}
	if *dpFlags.impls != "" {
		o.Impls = strings.Split(*dpFlags.impls, ",")
	}
	var err error
	if o.Payloads, err = intList(*dpFlags.payloads); err != nil {
		return o, fmt.Errorf("-dataplane.payloads: %w", err)
	}
	if o.CPUs, err = intList(*dpFlags.cpus); err != nil {
		return o, fmt.Errorf("-dataplane.cpus: %w", err)
	}
	lo, hi, ok := strings.Cut(*dpFlags.ports, "-")
	o.PortMin, err = strconv.Atoi(lo)
	if err == nil && ok {
		o.PortMax, err = strconv.Atoi(hi)
	}
	if err != nil || !ok {
		return o, fmt.Errorf("-dataplane.ports %q: want MIN-MAX", *dpFlags.ports)
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func runDataplane(ctx context.Context, env *Env) (*Result, error) {
	o, err := dpOptionsFromFlags(env)
	if err != nil {
		return nil, err
	}
	return dataplaneScenario(ctx, env, o)
}

// dpMeasure is one measured case.
type dpMeasure struct {
	impl     string
	size     int
	features dataplane.Features
	rate     float64 // datagrams/s through the relay, at zero loss if lost == 0
	offered  float64 // rate asked of the load generator
	lost     int64
	backlog  int64
	pass     bool // no loss, and kept up
	window   time.Duration
	fwd      uint64 // datagrams the worker handled in the window
	worker   time.Duration
	sender   time.Duration
	receiver time.Duration
	process  time.Duration
	mallocs  uint64
	rxBatch  float64 // datagrams per receive call
	txBatch  float64 // datagrams per send call
	dpDrops  uint64
	rxDrops  uint64 // harness receiver socket drops
}

func (m dpMeasure) perPkt(d time.Duration) float64 {
	if m.fwd == 0 || d < 0 {
		return math.NaN()
	}
	return float64(d.Nanoseconds()) / float64(m.fwd)
}

func dataplaneScenario(ctx context.Context, env *Env, o dpOptions) (*Result, error) {
	res := &Result{}
	got := map[string]map[int]dpMeasure{}
	for _, size := range o.Payloads {
		for _, impl := range o.Impls {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			m, err := runDPCase(ctx, env, o, impl, size)
			if err != nil {
				return res, fmt.Errorf("%s, %d bytes: %w", impl, size, err)
			}
			if got[impl] == nil {
				got[impl] = map[int]dpMeasure{}
			}
			got[impl][size] = m
			res.Rows = append(res.Rows, dpRow(m))
		}
	}
	res.Notes = []string{
		"rate: datagrams/s relayed over the window at 90% of the highest loss-free rate the search found (backing off 20% per retry if the window loses any); lost > 0: no loss-free window was had",
		"process: whole process incl. load generator and receiver; dp=process−harness: worker + Go runtime (netpoller, scheduler hand-offs), the measure of the goal",
		"worker: CPU of the port's receive thread (RUSAGE_THREAD, read inside the sink): receive + forward incl. kernel work; only with -dataplane.cpus (a pinned worker is locked to its thread, an unpinned one moves between threads)",
		fmt.Sprintf("traffic: load generator bursts of %s datagrams (GSO=%v), port GRO=%v, counting receiver GRO=%v",
			"64 (200 B) / 54 (1200 B)", o.LoadgenGSO, o.PortGRO, o.RxGRO),
	}
	res.Goals = dpGoals(got, o)
	return res, nil
}

func dpRow(m dpMeasure) Row {
	wns := m.perPkt(m.worker)
	return Row{
		Labels: []Label{{"impl", m.impl}, {"payload", strconv.Itoa(m.size)}, {"features", m.features.String()}},
		Values: []Value{
			{"rate", "pkt/s", m.rate, 0},
			{"lost", "pkt", float64(m.lost), 0},
			{"worker", "ns/pkt", wns, 0},
			{"worker rate", "Mpkt/CPU-s", 1e3 / wns, 3},
			{"process", "ns/pkt", m.perPkt(m.process), 0},
			{"dp", "ns/pkt", m.perPkt(m.process - m.sender - m.receiver), 0},
			{"harness", "ns/pkt", m.perPkt(m.sender + m.receiver), 0},
			{"allocs", "/pkt", float64(m.mallocs) / float64(max(m.fwd, 1)), 4},
			{"rx batch", "pkt/call", m.rxBatch, 1},
			{"tx batch", "pkt/call", m.txBatch, 1},
		},
	}
}

// Goals of the issue: mmsg at least twice std in datagrams per CPU-second
// of the dataplane (the process less the load generator and receiver), and
// no allocation per datagram.
func dpGoals(got map[string]map[int]dpMeasure, o dpOptions) []Goal {
	var goals []Goal
	if got["mmsg"] != nil && got["std"] != nil {
		for _, size := range o.Payloads {
			m, s := got["mmsg"][size], got["std"][size]
			dm, ds := m.perPkt(m.process-m.sender-m.receiver), s.perPkt(s.process-s.sender-s.receiver)
			ratio := ds / dm // pkt per CPU-s: mmsg / std
			detail := fmt.Sprintf("%.2f× (mmsg %.0f ns/pkt, std %.0f ns/pkt of the process less the harness", ratio, dm, ds)
			if wm, ws := m.perPkt(m.worker), s.perPkt(s.worker); !math.IsNaN(wm) && !math.IsNaN(ws) {
				detail += fmt.Sprintf("; worker threads alone %.2f×", ws/wm)
			}
			goals = append(goals, Goal{
				Name:   fmt.Sprintf("mmsg ≥ 2× std packets per dataplane CPU-second, %d B", size),
				Pass:   ratio >= 2,
				Detail: detail + ")",
			})
		}
	}
	var worst float64
	var where string
	for impl, bySize := range got {
		for size, m := range bySize {
			if a := float64(m.mallocs) / float64(max(m.fwd, 1)); a >= worst {
				worst, where = a, fmt.Sprintf("%s %d B: %d allocations for %d datagrams", impl, size, m.mallocs, m.fwd)
			}
		}
	}
	goals = append(goals, Goal{
		Name: "0 allocs/packet (whole process, measurement window)",
		// A stray runtime allocation in a window of a million datagrams is
		// not a per-packet allocation; one per thousand would be.
		Pass:   worst < 0.001,
		Detail: fmt.Sprintf("worst %.5f/pkt (%s)", worst, where),
	})
	return goals
}

// relaySink forwards every batch to dst with Send, counts, and answers CPU
// samples on the worker thread it runs on.
type relaySink struct {
	port     dataplane.Port
	dst      netip.AddrPort
	out      [][]byte
	n        uint64 // worker only
	sampler  loadgen.ThreadSampler
	sendErrs atomic.Uint64
}

func (s *relaySink) Receive(batch []dataplane.Packet) {
	s.out = s.out[:0]
	for i := range batch {
		s.out = append(s.out, batch[i].Data)
	}
	if _, err := s.port.Send(s.out, s.dst); err != nil {
		s.sendErrs.Add(1)
	}
	s.n += uint64(len(batch))
	s.sampler.Poll(s.n)
}

// dpCase is the plumbing of one (implementation, size) case.
type dpCase struct {
	env  *Env
	o    dpOptions
	dp   dataplane.Dataplane
	port dataplane.Port
	sink *relaySink
	gen  *loadgen.Sender
	recv *loadgen.Receiver
}

func runDPCase(ctx context.Context, env *Env, o dpOptions, impl string, size int) (dpMeasure, error) {
	c := &dpCase{env: env, o: o}
	defer c.close()
	var err error
	cfg := dataplane.Config{
		Addr: netip.AddrFrom4([4]byte{127, 0, 0, 1}), PortMin: o.PortMin, PortMax: o.PortMax, CPUs: o.CPUs,
	}
	if !o.PortGRO {
		cfg.Disable = dataplane.FeatureGRO
	}
	c.dp, err = dataplane.New(impl, cfg)
	if err != nil {
		return dpMeasure{}, err
	}
	if c.port, err = c.dp.Open(); err != nil {
		return dpMeasure{}, err
	}
	if c.recv, err = loadgen.NewReceiver(o.RxGRO, 64<<20); err != nil {
		return dpMeasure{}, err
	}
	go func() { _ = c.recv.Run() }()
	c.sink = &relaySink{port: c.port, dst: c.recv.Addr(), out: make([][]byte, 0, 1024)}
	c.port.SetSink(c.sink)
	if c.gen, err = loadgen.NewSender(loadgen.SenderConfig{Dst: c.port.LocalAddr(), Size: size, GSO: o.LoadgenGSO}); err != nil {
		return dpMeasure{}, err
	}

	rate := o.FixedRate
	if rate <= 0 {
		if rate, err = c.search(ctx, impl, size); err != nil {
			return dpMeasure{}, err
		}
		// Short trials flatter: leave headroom for the long window on a
		// machine others share.
		rate *= 0.9
	}
	var m dpMeasure
	for attempt := 0; attempt < o.MaxMeasureAttempts; attempt++ {
		if m, err = c.measure(ctx, rate); err != nil {
			return m, err
		}
		env.Logf("  %s %4d B measure @%8.0f/s: relayed %8.0f/s lost %d backlog %d", impl, size, rate, m.rate, m.lost, m.backlog)
		if m.pass || o.FixedRate > 0 {
			break
		}
		rate *= 0.8 // noise on a shared machine: back off and measure again
	}
	m.impl, m.size = impl, size
	m.features = c.port.Stats().Features
	return m, nil
}

func (c *dpCase) close() {
	if c.dp != nil {
		c.dp.Close()
	}
	if c.recv != nil {
		c.recv.Close()
	}
	if c.gen != nil {
		c.gen.Close()
	}
}

// search finds the highest offered rate the relay sustains: a saturation
// probe sets the scale, then short trials move up while they pass and bisect
// once one fails.
func (c *dpCase) search(ctx context.Context, impl string, size int) (float64, error) {
	sat, err := c.trial(ctx, 0, c.o.Trial)
	if err != nil {
		return 0, err
	}
	satRate := float64(sat.recvd) / c.o.Trial.Seconds()
	c.env.Logf("  %s %4d B saturated: sent %d, relayed %d (%.0f/s)", impl, size, sat.sent, sat.recvd, satRate)
	lo, hi := 0.0, 0.0 // highest passed, lowest failed (0: none yet)
	r := 0.9 * satRate
	for step := 0; step < c.o.Steps && r > 0; step++ {
		t, err := c.trial(ctx, r, c.o.Trial)
		if err != nil {
			return 0, err
		}
		pass := t.pass(r)
		c.env.Logf("  %s %4d B trial @%8.0f/s: sent %d lost %d backlog %d pass %v", impl, size, r, t.sent, t.lost(), t.backlog, pass)
		if pass {
			lo = r
		} else {
			hi = r
		}
		switch {
		case hi == 0:
			r *= 1.3
		case hi-lo <= 0.05*hi:
			step = c.o.Steps
		case lo == 0:
			r = 0.6 * hi
		default:
			r = (lo + hi) / 2
		}
	}
	if lo == 0 {
		lo = 0.3 * satRate // nothing passed: measure low and let the row show it
	}
	return lo, nil
}

type trialCounts struct {
	sent, recvd uint64
	// backlog is what was sent but not yet received when the sender
	// stopped: queued in socket buffers.
	backlog int64
}

func (t trialCounts) lost() int64 { return int64(t.sent) - int64(t.recvd) }

// pass: nothing lost, and the relay kept up: socket buffers absorb a short
// trial's worth of overload without loss, so a backlog beyond a few bursts
// or 25 ms of traffic at the end (more than scheduling delays on a busy
// 2-core machine explain) means the rate is not sustainable.
func (t trialCounts) pass(rate float64) bool {
	return t.sent > 0 && t.lost() == 0 && t.backlog <= max(4*64, int64(rate/40))
}

// trial offers rate (0: unpaced) for d, stops, lets the chain drain and
// counts what got through.
func (c *dpCase) trial(ctx context.Context, rate float64, d time.Duration) (trialCounts, error) {
	sent0, recv0 := c.begin()
	stop, errc := c.startGen(rate)
	sleepCtx(ctx, d)
	backlog := int64(c.gen.Sent()-sent0) - int64(c.recv.Stats().Datagrams-recv0)
	close(stop)
	if err := <-errc; err != nil {
		return trialCounts{}, err
	}
	c.drain(recv0 + c.gen.Sent() - sent0)
	return trialCounts{sent: c.gen.Sent() - sent0, recvd: c.recv.Stats().Datagrams - recv0, backlog: backlog}, ctx.Err()
}

func (c *dpCase) startGen(rate float64) (chan struct{}, chan error) {
	stop, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- c.gen.Run(rate, stop) }()
	return stop, errc
}

// begin starts counting afresh: the receiver ignores datagrams numbered
// before what the sender sends next (stragglers of an earlier trial).
func (c *dpCase) begin() (sent0, recv0 uint64) {
	sent0 = c.gen.Sent() // = the next sequence number
	c.recv.SetFloor(sent0)
	return sent0, c.recv.Stats().Datagrams
}

// drain waits until the receiver has counted want (all that was sent), or
// nothing at all has arrived for a while (the rest is lost). Arrivals of
// stragglers count as activity, so a trial never starts while the chain is
// still busy with an earlier one.
func (c *dpCase) drain(want uint64) {
	arrived := func() (uint64, uint64) { s := c.recv.Stats(); return s.Datagrams, s.Datagrams + s.Stale }
	_, last := arrived()
	quiet := time.Now()
	for {
		time.Sleep(5 * time.Millisecond)
		fresh, all := arrived()
		if fresh >= want {
			return
		}
		if all != last {
			last, quiet = all, time.Now()
		}
		if time.Since(quiet) > c.o.DrainQuiet {
			return
		}
	}
}

// snap is the state of every clock at one instant (give or take the
// milliseconds the threads take to answer).
type snap struct {
	worker, sender, receiver loadgen.Clock
	process                  time.Duration
	mallocs                  uint64
	stats                    dataplane.Stats
	rxDrops                  uint64
	at                       time.Time
	ok                       bool
}

// snapshot reads every clock. The allocation count is read last when a
// window starts and first when it ends, so that the window holds traffic
// only, not the snapshot's own work (Stats reads a socket option through a
// closure, which allocates).
func (c *dpCase) snapshot(start bool) snap {
	var s snap
	var ms runtime.MemStats
	if !start {
		runtime.ReadMemStats(&ms)
		s.mallocs = ms.Mallocs
	}
	var ok1, ok2, ok3 bool
	s.at = time.Now()
	s.worker, ok1 = c.sink.sampler.Sample(c.o.SampleTimeout)
	s.sender, ok2 = c.gen.Sampler.Sample(c.o.SampleTimeout)
	s.receiver, ok3 = c.recv.Sampler.Sample(c.o.SampleTimeout)
	s.process = loadgen.ProcessCPU()
	s.stats = c.port.Stats()
	s.rxDrops = c.recv.SockDrops()
	s.ok = ok1 && ok2 && ok3
	if start {
		runtime.ReadMemStats(&ms)
		s.mallocs = ms.Mallocs
	}
	return s
}

// measure offers rate, and over a window after a warm-up reads every clock.
func (c *dpCase) measure(ctx context.Context, rate float64) (dpMeasure, error) {
	sent0, recv0 := c.begin()
	stop, errc := c.startGen(rate)
	sleepCtx(ctx, c.o.Warmup)
	a := c.snapshot(true)
	sleepCtx(ctx, c.o.Measure)
	b := c.snapshot(false)
	backlog := int64(c.gen.Sent()-sent0) - int64(c.recv.Stats().Datagrams-recv0)
	close(stop)
	if err := <-errc; err != nil {
		return dpMeasure{}, err
	}
	c.drain(recv0 + c.gen.Sent() - sent0)
	if ctx.Err() != nil {
		return dpMeasure{}, ctx.Err()
	}
	if !a.ok || !b.ok {
		return dpMeasure{}, errors.New("a thread did not answer a CPU sample (no traffic?)")
	}
	t := trialCounts{sent: c.gen.Sent() - sent0, recvd: c.recv.Stats().Datagrams - recv0, backlog: backlog}
	win := b.at.Sub(a.at)
	m := dpMeasure{
		offered:  rate,
		pass:     t.pass(rate),
		backlog:  backlog,
		lost:     t.lost(),
		window:   win,
		fwd:      b.worker.Count - a.worker.Count,
		worker:   -1, // not the worker's alone unless it is locked (pinned)
		sender:   cpuDelta(a.sender.CPU, b.sender.CPU),
		receiver: cpuDelta(a.receiver.CPU, b.receiver.CPU),
		process:  cpuDelta(a.process, b.process),
		mallocs:  b.mallocs - a.mallocs,
		dpDrops:  sumDrops(b.stats) - sumDrops(a.stats),
		rxDrops:  b.rxDrops - a.rxDrops,
	}
	if len(c.o.CPUs) > 0 {
		m.worker = cpuDelta(a.worker.CPU, b.worker.CPU)
	}
	m.rate = float64(m.fwd) / win.Seconds()
	if d := b.stats.RxSyscalls - a.stats.RxSyscalls; d > 0 {
		m.rxBatch = float64(b.stats.RxPackets-a.stats.RxPackets) / float64(d)
	}
	if d := b.stats.TxSyscalls - a.stats.TxSyscalls; d > 0 {
		m.txBatch = float64(b.stats.TxPackets-a.stats.TxPackets) / float64(d)
	}
	return m, nil
}

func cpuDelta(a, b time.Duration) time.Duration {
	if a < 0 || b < 0 {
		return -1
	}
	return b - a
}

func sumDrops(s dataplane.Stats) uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
