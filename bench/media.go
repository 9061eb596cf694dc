package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gw-project/gw/bench/rtpload"
)

// The media scenario: app → gw A → WebRTC (DTLS-SRTP over loopback) → gw B
// → app, for several stream counts, against the same path through the
// naive baseline relay (bench/baseline), in the same run. The load
// generator and the sink run in this process; each relay side runs in a
// process of its own, so CPU, memory and goroutines are the relay's.
//
// Per stream count and system it measures: latency at a fixed low rate,
// the highest zero-loss rate (a short search), everything at 90% of that
// rate, and then both systems alternately at one common rate, which is
// where packets per CPU-second are compared. Every window times its
// packets, so each point has its latency too.

func init() {
	register(Scenario{
		Name: "media",
		Help: "app → gw A → WebRTC → gw B → app vs the naive pion relay: zero-loss pps, latency, CPU/Mpkt, RSS",
		Run:  runMedia,
	})
}

// mediaPT is the payload type apps send and get (H.264, dynamic).
const mediaPT = 96

var mediaFlags = struct {
	streams, ports, gwArgs, pprof, systems *string
	size, variantAt                        *int
	trial, latWindow                       *time.Duration
	steps                                  *int
	latRate, goalRate, startRate, maxRate  *float64
	frames                                 *string
	gwBin, gwAlt, gwAltArgs                *string
	floor                                  *bool
}{
	gwAlt:     flag.String("media.gw-alt", "", "also measure this gw binary, as system \"gw-alt\" (before/after comparisons in one run; \"self\": the same binary)"),
	gwAltArgs: flag.String("media.gw-alt-args", "", "extra flags for the gw-alt processes (instead of -media.gw-args)"),
	streams:   flag.String("media.streams", "1,8,32", "stream counts (one media connection each)"),
	systems:   flag.String("media.systems", "gw,baseline", "systems to measure: gw, baseline"),
	ports:     flag.String("media.ports", "30000-31999", "UDP ports of the relays, in quarters: gw A, gw B, the baseline (udp-forward in its second half), its variant"),
	floor:     flag.Bool("media.floor", true, "also measure udp-forward, two plain UDP forwarders in the relays' place (no WebRTC), at the latency point and in the comparisons: what the two process hops cost alone"),
	gwArgs:    flag.String("media.gw-args", "", "extra flags for both gw processes, space separated (e.g. to compare a setting)"),
	gwBin:     flag.String("media.gw-bin", "", "use this gw binary instead of building ./cmd/gw (before/after comparisons)"),
	pprof:     flag.String("media.pprof", "", "directory: take CPU profiles of both gw processes (--pprof-addr) during each max-rate window, and heap profiles as it ends"),
	size:      flag.Int("media.size", 1200, "RTP packet size in bytes, header included"),
	variantAt: flag.Int("media.variant-at", 8, "stream count at which the baseline is also measured with gw's SRTP profile (0: never)"),
	trial:     flag.Duration("media.trial", time.Second, "length of each rate-search trial"),
	latWindow: flag.Duration("media.latency-window", 0, "length of the latency window (default: 5 × -duration)"),
	steps:     flag.Int("media.steps", 7, "rate-search trials per system and stream count"),
	latRate:   flag.Float64("media.latency-rate", 1000, "packets/s (all streams) of the latency measurement"),
	goalRate:  flag.Float64("media.goal-rate", 10000, "packets/s through one stream that must pass without loss; also the rate of the memory (load) point over all streams (0: neither)"),
	startRate: flag.Float64("media.start-rate", 4000, "first rate the search tries (packets/s, all streams)"),
	maxRate:   flag.Float64("media.max-rate", 400000, "the search never offers more (packets/s)"),
	frames:    flag.String("media.frames", "0,30", "traffic patterns: bursts per second, like a camera's frames; 0 spreads packets evenly"),
}

type mediaOptions struct {
	Streams          []int
	Systems          []string
	PortMin, PortMax int
	GWArgs           []string
	GWAlt            string
	GWAltArgs        []string
	PprofDir         string
	Size             int
	VariantAt        int
	Floor            bool // measure udp-forward
	Trial, Window    time.Duration
	LatWindow        time.Duration
	Warmup           time.Duration
	Steps            int
	LatRate          float64
	GoalRate         float64
	StartRate        float64
	MaxRate          float64
	Frames           []float64 // traffic patterns (Sender.Frames)
	BaselineRcvbuf   int
}

func mediaOptionsFromFlags(env *Env) (mediaOptions, error) {
	o := mediaOptions{
		Systems: strings.Split(*mediaFlags.systems, ","), PprofDir: *mediaFlags.pprof, Size: *mediaFlags.size,
		VariantAt: *mediaFlags.variantAt, Floor: *mediaFlags.floor, Trial: *mediaFlags.trial, Window: env.Duration, LatWindow: *mediaFlags.latWindow,
		Warmup: 300 * time.Millisecond, Steps: *mediaFlags.steps, LatRate: *mediaFlags.latRate, GoalRate: *mediaFlags.goalRate,
		StartRate: *mediaFlags.startRate, MaxRate: *mediaFlags.maxRate,
		// The baseline's app-facing sockets get what gw's ports ask for
		// (dataplane.DefaultSockBuf), so that loss compares relays, not
		// socket buffers.
		BaselineRcvbuf: 4 << 20,
	}
	if env.Quick {
		o.Trial, o.Steps, o.Warmup = 400*time.Millisecond, 3, 200*time.Millisecond
		if !env.Explicit["media.streams"] {
			*mediaFlags.streams = "1,8"
		}
	}
	if o.LatWindow <= 0 {
		// A p99 of 2,000 packets rests on 20 of them: take more.
		o.LatWindow = 5 * o.Window
	}
	var err error
	if o.Streams, err = intList(*mediaFlags.streams); err != nil || len(o.Streams) == 0 {
		return o, fmt.Errorf("-media.streams %q: want a list of counts", *mediaFlags.streams)
	}
	if o.PortMin, o.PortMax, err = portRange(*mediaFlags.ports); err != nil {
		return o, fmt.Errorf("-media.ports: %w", err)
	}
	if o.PortMax-o.PortMin < 400 {
		return o, errors.New("-media.ports: want at least 400 ports")
	}
	if n := slices.Max(o.Streams); n > (o.PortMax-o.PortMin)/8 {
		return o, fmt.Errorf("-media.ports: %d streams need %d ports or more", n, 8*n)
	}
	for _, f := range strings.Split(*mediaFlags.frames, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 1000 {
			return o, fmt.Errorf("-media.frames %q: want a list of bursts per second (0: evenly spaced)", *mediaFlags.frames)
		}
		o.Frames = append(o.Frames, v)
	}
	o.GWArgs = strings.Fields(*mediaFlags.gwArgs)
	o.GWAltArgs = strings.Fields(*mediaFlags.gwAltArgs)
	for _, s := range o.Systems {
		if s != "gw" && s != "baseline" {
			return o, fmt.Errorf("-media.systems: no system %q (gw, baseline)", s)
		}
	}
	if o.GWAlt = *mediaFlags.gwAlt; o.GWAlt != "" {
		o.Systems = append(o.Systems, "gw-alt")
	}
	return o, nil
}

func portRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX", s)
	}
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	if hi, err = strconv.Atoi(b); err != nil {
		return 0, 0, err
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%q: bad range", s)
	}
	return lo, hi, nil
}

func runMedia(ctx context.Context, env *Env) (*Result, error) {
	o, err := mediaOptionsFromFlags(env)
	if err != nil {
		return nil, err
	}
	bins.gwOverride = *mediaFlags.gwBin
	if err := bins.build(env); err != nil {
		return nil, err
	}
	return mediaScenario(ctx, env, o)
}

// mediaCase is one system carrying n streams, with its harness.
type mediaCase struct {
	env    *Env
	o      mediaOptions
	system string // "gw", "gw-alt", "baseline", "baseline-gcm128", "udp-forward"
	n      int
	relay  relay
	sink   *rtpload.Sink
	gen    *rtpload.Sender
}

func newMediaCase(ctx context.Context, env *Env, o mediaOptions, system string, n int) (*mediaCase, error) {
	c := &mediaCase{env: env, o: o, system: system, n: n}
	var err error
	if c.sink, err = rtpload.NewSink(n); err != nil {
		return nil, err
	}
	go func() { _ = c.sink.Run() }()
	env.Logf("  %s, %d streams: setting up", system, n)
	switch system {
	case "gw":
		c.relay, err = newGWRelay(ctx, env, o, n, c.sink.Addr(), bins.gw, o.GWArgs)
	case "gw-alt":
		bin := o.GWAlt
		if bin == "self" {
			bin = bins.gw
		}
		c.relay, err = newGWRelay(ctx, env, o, n, c.sink.Addr(), bin, o.GWAltArgs)
	case "baseline", "baseline-gcm128":
		srtp := "default"
		if system == "baseline-gcm128" {
			srtp = "gcm128"
		}
		// The third quarter of the range, the variant the fourth: both
		// run at once at the stream count where they are compared.
		base := o.PortMin + (o.PortMax-o.PortMin)/2 + 1
		if system == "baseline-gcm128" {
			base = o.PortMin + 3*(o.PortMax-o.PortMin)/4 + 1
		}
		c.relay, err = newBaselineRelay(ctx, env, n, base, srtp, c.sink.Addr(), o.BaselineRcvbuf)
	case "udp-forward":
		c.relay, err = newBaselineRelay(ctx, env, n, o.PortMin+5*(o.PortMax-o.PortMin)/8+1, "none", c.sink.Addr(), o.BaselineRcvbuf)
	default:
		err = fmt.Errorf("no system %q", system)
	}
	if err != nil {
		c.sink.Close()
		return nil, err
	}
	if c.gen, err = rtpload.NewSender(c.relay.ingress(), o.Size, mediaPT); err != nil {
		c.close()
		return nil, err
	}
	// Every stream must deliver before anything is measured.
	for attempt := 0; ; attempt++ {
		w, err := c.run(ctx, float64(max(200, 20*n)), time.Second, 0)
		if err != nil {
			c.close()
			return nil, err
		}
		if w.silent == 0 {
			break
		}
		if attempt == 10 {
			c.close()
			return nil, fmt.Errorf("%s: %d of %d streams deliver nothing", system, w.silent, n)
		}
	}
	return c, nil
}

func (c *mediaCase) close() {
	if c.relay != nil {
		c.relay.close()
	}
	if c.gen != nil {
		c.gen.Close()
	}
	c.sink.Close()
}

// mediaWindow is what one run at one rate found.
type mediaWindow struct {
	offered   float64
	sent      uint64 // whole run (warm-up, window, tail)
	lost      int64  // of sent, after draining
	dups      uint64
	backlog   int64 // sent but not delivered when sending stopped
	silent    int   // streams that delivered nothing
	behind    uint64
	secs      float64 // measurement window
	delivered uint64  // in the window
	cpu       [2]time.Duration
	switches  [2]int64    // threads switched onto a CPU
	procs     [2]procStat // at the end of the window
	gor       [2]int
	// Latency to the packet's arrival in the app's socket (what the path
	// adds), and its p99 to the app's read (with the app's own wake-up).
	p50, p99 time.Duration
	p999     time.Duration
	appP99   time.Duration
	latN     uint64
	steal    float64 // share of the machine's CPU time its hypervisor took
	windows  int     // latency windows measured for this one (leastStolen)
}

// A hypervisor that stops a vCPU for a few milliseconds delays every
// packet on it meanwhile: a handful of such stalls in a latency window at
// 1,000 packets/s are its p99, whatever relays the packets. So a latency
// window in which the hypervisor took more than maxSteal of the machine's
// CPU time is measured again, up to latencyWindows in all, and the least
// stolen counts. It is chosen by steal, never by the latencies themselves.
const (
	maxSteal       = 0.01
	latencyWindows = 3
)

// leastStolen measures with measure until a window's steal is at most
// maxSteal or latencyWindows were measured, and returns the one with the
// least steal, counting the windows in its windows field. Its sent and
// lost are those of all the windows: a loss in one set aside still shows.
func leastStolen(ctx context.Context, measure func() (mediaWindow, error)) (mediaWindow, error) {
	var best mediaWindow
	var sent uint64
	var lost int64
	for i := 1; ; i++ {
		w, err := measure()
		if err != nil {
			return w, err
		}
		sent, lost = sent+w.sent, lost+w.lost
		if i == 1 || w.steal < best.steal {
			best = w
		}
		best.windows, best.sent, best.lost = i, sent, lost
		if best.steal <= maxSteal || i == latencyWindows || ctx.Err() != nil {
			return best, nil
		}
	}
}

// windows says how many latency windows were measured: "1 window".
func windows(n int) string {
	if n == 1 {
		return "1 window"
	}
	return fmt.Sprintf("%d windows", n)
}

// latencies fills the window's latency figures from what k recorded.
func (w *mediaWindow) latencies(k *rtpload.Sink) {
	w.latN = k.Latency.Count()
	w.p50, w.p99, w.p999 = k.Latency.Quantile(0.5), k.Latency.Quantile(0.99), k.Latency.Quantile(0.999)
	w.appP99 = k.AppLatency.Quantile(0.99)
}

func (w mediaWindow) rate() float64 { return float64(w.delivered) / w.secs }

// cpuPerMpkt is CPU-seconds of both relay processes per million packets
// delivered.
func (w mediaWindow) cpuPerMpkt() float64 {
	if w.delivered == 0 {
		return math.NaN()
	}
	return (w.cpu[0] + w.cpu[1]).Seconds() / float64(w.delivered) * 1e6
}

// pass: no loss, and the relay kept up (what it had not delivered when
// sending stopped is at most 50 ms of traffic or 64 packets: more means
// queues were growing, which a short trial hides).
func (w mediaWindow) pass() bool {
	return w.sent > 0 && w.lost == 0 && w.silent == 0 && w.backlog <= max(64, int64(w.offered/20))
}

// run offers rate for warmup+window, measuring over the window (latency
// included: the sink times every packet from the stamp it carries), then
// drains.
func (c *mediaCase) run(ctx context.Context, rate float64, window, warmup time.Duration) (mediaWindow, error) {
	w := mediaWindow{offered: rate}
	n := c.n
	start := make([]uint64, n)
	for i := range n {
		start[i] = c.gen.Next(i)
		c.sink.SetFloor(i, start[i])
	}
	behind0 := c.gen.Behind()
	stop, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- c.gen.Run(rate, stop) }()
	sleepCtx(ctx, warmup)
	procs := c.relay.procs()
	var a [2]procStat
	recv := func() (t uint64) {
		for i := range n {
			t += c.sink.Received(i)
		}
		return t
	}
	r0 := recv()
	for i, p := range procs {
		a[i] = readProc(p.pid())
	}
	t0, ticks := time.Now(), readCPUTicks()
	c.sink.Latency.Reset()
	c.sink.AppLatency.Reset()
	c.sink.Record(true)
	sleepCtx(ctx, window)
	w.secs = time.Since(t0).Seconds()
	w.steal = stealShare(ticks, readCPUTicks())
	r1 := recv()
	for i, p := range procs {
		w.procs[i] = readProc(p.pid())
		w.cpu[i] = w.procs[i].CPU - a[i].CPU
		w.switches[i] = w.procs[i].Switches - a[i].Switches
	}
	c.sink.Record(false)
	w.delivered = r1 - r0
	var sentNow uint64
	for i := range n {
		sentNow += c.gen.Next(i) - start[i]
	}
	w.backlog = int64(sentNow) - int64(recv())
	close(stop)
	if err := <-errc; err != nil {
		return w, err
	}
	w.behind = c.gen.Behind() - behind0
	for i := range n {
		w.sent += c.gen.Next(i) - start[i]
	}
	// Drain: until everything arrived, or nothing arrives for 500 ms.
	last, quiet := recv(), time.Now()
	for recv() < w.sent && time.Since(quiet) < 500*time.Millisecond && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		if r := recv(); r != last {
			last, quiet = r, time.Now()
		}
	}
	w.lost = int64(w.sent) - int64(recv())
	for i := range n {
		if c.sink.Received(i) == 0 {
			w.silent++
		}
		w.dups += c.sink.Duplicates(i)
	}
	w.latencies(c.sink)
	for _, p := range procs {
		if p.exited() {
			return w, fmt.Errorf("%s: %s exited: %v\n%s", c.system, p.name, p.err, p.logs.String())
		}
	}
	return w, ctx.Err()
}

// search finds the highest rate that passes short trials: up by 1.6× while
// they pass, then bisection.
func (c *mediaCase) search(ctx context.Context) (float64, error) {
	lo, hi := 0.0, 0.0
	r := c.o.StartRate
	for step := 0; step < c.o.Steps && r > 0; step++ {
		w, err := c.run(ctx, r, c.o.Trial, c.o.Warmup)
		if err != nil {
			return 0, err
		}
		c.env.Logf("    %s %2d streams trial @%7.0f/s: sent %d lost %d backlog %d pass %v", c.system, c.n, r, w.sent, w.lost, w.backlog, w.pass())
		if w.pass() {
			lo = r
		} else {
			hi = r
		}
		switch {
		case hi == 0 && r >= c.o.MaxRate:
			step = c.o.Steps
		case hi == 0:
			r = min(r*1.6, c.o.MaxRate)
		case hi-lo <= 0.06*hi:
			step = c.o.Steps
		case lo == 0:
			r = hi / 2
		default:
			r = (lo + hi) / 2
		}
	}
	return lo, nil
}

// mediaPoint is one measured (system, streams, point).
type mediaPoint struct {
	system  string
	n       int
	point   string // "latency", "load", "max", "compare", "goal"
	traffic string // trafficName
	w       mediaWindow
	srtp    string
	maxR    float64 // for "max": the rate the search found
}

func mediaRow(p mediaPoint) Row {
	w := p.w
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	pps := math.NaN()
	if cpu := (w.cpu[0] + w.cpu[1]).Seconds(); cpu > 0 {
		pps = float64(w.delivered) / cpu
	}
	return Row{
		Labels: []Label{{"system", p.system}, {"streams", strconv.Itoa(p.n)}, {"traffic", p.traffic}, {"point", p.point}},
		Values: []Value{
			{"offered", "pkt/s", w.offered, 0},
			{"delivered", "pkt/s", w.rate(), 0},
			{"lost", "pkt", float64(w.lost), 0},
			{"p50", "µs", us(w.p50), 0},
			{"p99", "µs", us(w.p99), 0},
			{"p99.9", "µs", us(w.p999), 0},
			{"app p99", "µs", us(w.appP99), 0},
			{"CPU", "s/Mpkt", w.cpuPerMpkt(), 2},
			{"CPU send", "s/Mpkt", w.cpu[0].Seconds() / float64(max(w.delivered, 1)) * 1e6, 2},
			{"CPU recv", "s/Mpkt", w.cpu[1].Seconds() / float64(max(w.delivered, 1)) * 1e6, 2},
			{"pkt/CPU-s", "", pps, 0},
			{"switches send", "/pkt", float64(w.switches[0]) / float64(max(w.delivered, 1)), 2},
			{"switches recv", "/pkt", float64(w.switches[1]) / float64(max(w.delivered, 1)), 2},
			{"RSS send", "MB", mb(w.procs[0].RSS), 1},
			{"RSS recv", "MB", mb(w.procs[1].RSS), 1},
			{"peak send", "MB", mb(w.procs[0].HWM), 1},
			{"peak recv", "MB", mb(w.procs[1].HWM), 1},
			{"goroutines send", "", float64(w.gor[0]), 0},
			{"goroutines recv", "", float64(w.gor[1]), 0},
			{"steal", "%", 100 * w.steal, 1},
		},
	}
}

func mediaScenario(ctx context.Context, env *Env, o mediaOptions) (*Result, error) {
	if len(o.Frames) == 0 {
		o.Frames = []float64{0}
	}
	res := &Result{}
	var points []mediaPoint
	add := func(p mediaPoint) {
		points = append(points, p)
		res.Rows = append(res.Rows, mediaRow(p))
	}
	if o.PprofDir != "" {
		if err := os.MkdirAll(o.PprofDir, 0o755); err != nil {
			return nil, err
		}
	}
	// The harness alone: sender straight to sink, for the latency floor.
	if h, err := leastStolen(ctx, func() (mediaWindow, error) { return harnessLatency(ctx, o) }); err == nil {
		add(mediaPoint{system: "harness", n: 1, point: "harness", traffic: trafficName(0), w: h})
		env.Logf("  harness alone @%.0f/s: p50 %v p99 %v p99.9 %v (read by the app: p99 %v)", o.LatRate, h.p50, h.p99, h.p999, h.appP99)
	}
	srtp := map[string]string{}
	for _, n := range o.Streams {
		cases := map[string]*mediaCase{}
		closeAll := func() {
			for _, c := range cases {
				c.close()
			}
		}
		// Set up every system, and measure latency on evenly spaced
		// packets (in bursts, a packet's latency is mostly its wait
		// behind the burst). udp-forward, for scale, is measured there
		// and in the comparisons only.
		setUp := slices.Clone(o.Systems)
		if o.Floor {
			setUp = append(setUp, "udp-forward")
		}
		for _, system := range setUp {
			c, err := newMediaCase(ctx, env, o, system, n)
			if err != nil {
				closeAll()
				return res, fmt.Errorf("%s, %d streams: %w", system, n, err)
			}
			cases[system] = c
			srtp[system] = c.relay.srtp()
			c.gen.Frames = 0
			w, err := leastStolen(ctx, func() (mediaWindow, error) { return c.run(ctx, o.LatRate, o.LatWindow, o.Warmup) })
			if err != nil {
				closeAll()
				return res, err
			}
			w.gor = c.relay.goroutines()
			env.Logf("    %s %2d streams latency @%.0f/s: p50 %v p99 %v p99.9 %v (read by the app: p99 %v) lost %d, steal %.1f%% (the least stolen of %s)", system, n, o.LatRate, w.p50, w.p99, w.p999, w.appP99, w.lost, 100*w.steal, windows(w.windows))
			add(mediaPoint{system: system, n: n, point: "latency", traffic: trafficName(0), w: w, srtp: srtp[system]})
			// Memory under a steady heavy load, before the rate search
			// overloads the relay (its trials offer up to twice what
			// passes, and pion's per-connection queues fill then): the
			// goal rate over all streams, in every pattern.
			if o.GoalRate > 0 && system != "udp-forward" {
				for _, frames := range o.Frames {
					c.gen.Frames = frames
					w, err := c.run(ctx, o.GoalRate, o.Window, o.Warmup)
					if err != nil {
						closeAll()
						return res, err
					}
					w.gor = c.relay.goroutines()
					env.Logf("    %s %2d streams %s @%.0f/s: lost %d, RSS %.1f/%.1f MB, peak %.1f/%.1f MB", system, n, trafficName(frames), o.GoalRate, w.lost,
						mb(w.procs[0].RSS), mb(w.procs[1].RSS), mb(w.procs[0].HWM), mb(w.procs[1].HWM))
					add(mediaPoint{system: system, n: n, point: "load", traffic: trafficName(frames), w: w, srtp: srtp[system]})
				}
			}
		}
		// The variant (the baseline with gw's SRTP profile) joins the
		// comparisons at one stream count.
		if n == o.VariantAt && cases["baseline"] != nil {
			c, err := newMediaCase(ctx, env, o, "baseline-gcm128", n)
			if err != nil {
				closeAll()
				return res, fmt.Errorf("baseline-gcm128, %d streams: %w", n, err)
			}
			cases["baseline-gcm128"] = c
			srtp["baseline-gcm128"] = c.relay.srtp()
		}
		for _, frames := range o.Frames {
			for _, c := range cases {
				c.gen.Frames = frames
			}
			if err := mediaPattern(ctx, env, o, n, frames, cases, srtp, add); err != nil {
				closeAll()
				return res, err
			}
		}
		closeAll()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.Goals = mediaGoals(points, o)
	res.Notes = mediaNotes(o, srtp)
	res.Charts = mediaCharts(points, o)
	return res, nil
}

// trafficName names a traffic pattern in rows, goals and charts.
func trafficName(frames float64) string {
	if frames == 0 {
		return "paced"
	}
	return strconv.FormatFloat(frames, 'f', -1, 64) + " bursts/s"
}

// mediaPattern measures n streams of one traffic pattern: each system's
// highest zero-loss rate, gw's goal rate, and every system at one common
// rate, alternately, twice: packets per CPU-second compare there.
func mediaPattern(ctx context.Context, env *Env, o mediaOptions, n int, frames float64, cases map[string]*mediaCase,
	srtp map[string]string, add func(mediaPoint)) error {
	traffic := trafficName(frames)
	maxRate := map[string]float64{}
	for _, system := range o.Systems {
		c := cases[system]
		r, err := c.search(ctx)
		if err != nil {
			return err
		}
		rate := 0.9 * r
		if r == 0 {
			rate = o.StartRate / 4
		}
		var mw mediaWindow
		for attempt := 0; attempt < 3; attempt++ {
			profDone := c.startProfiles(rate, n)
			mw, err = c.run(ctx, rate, o.Window, o.Warmup)
			profDone()
			if err != nil {
				return err
			}
			mw.gor = c.relay.goroutines()
			env.Logf("    %s %2d streams %s measure @%7.0f/s: delivered %.0f/s lost %d backlog %d, %.2f CPU-s/Mpkt, RSS %.1f/%.1f MB",
				system, n, traffic, rate, mw.rate(), mw.lost, mw.backlog, mw.cpuPerMpkt(), float64(mw.procs[0].RSS)/(1<<20), float64(mw.procs[1].RSS)/(1<<20))
			if mw.pass() {
				break
			}
			rate *= 0.85
		}
		maxRate[system] = rate
		if !mw.pass() {
			maxRate[system] = 0
		}
		add(mediaPoint{system: system, n: n, point: "max", traffic: traffic, w: mw, srtp: srtp[system], maxR: maxRate[system]})
		if system == "gw" && n == 1 && o.GoalRate > 0 {
			// The goal's rate, twice at most: a shared machine may
			// stall any one window.
			var gw mediaWindow
			for attempt := 0; attempt < 2; attempt++ {
				gw, err = c.run(ctx, o.GoalRate, o.Window, o.Warmup)
				if err != nil {
					return err
				}
				gw.gor = c.relay.goroutines()
				env.Logf("    gw 1 stream %s @%.0f/s: lost %d backlog %d (attempt %d)", traffic, o.GoalRate, gw.lost, gw.backlog, attempt+1)
				if gw.pass() {
					break
				}
			}
			add(mediaPoint{system: "gw", n: 1, point: "goal", traffic: traffic, w: gw, srtp: srtp["gw"]})
		}
	}
	common := math.Inf(1)
	for _, r := range maxRate {
		if r > 0 {
			common = min(common, r)
		}
	}
	if math.IsInf(common, 1) {
		common = o.LatRate
	}
	common = max(o.LatRate, 0.8*common)
	best := map[string]mediaWindow{}
	systems := append(slices.Clone(o.Systems), "baseline-gcm128", "udp-forward")
	for round := 0; round < 2; round++ {
		for _, system := range systems {
			c := cases[system]
			if c == nil {
				continue
			}
			w, err := c.run(ctx, common, o.Window, o.Warmup)
			if err != nil {
				return err
			}
			w.gor = c.relay.goroutines()
			d := float64(max(w.delivered, 1))
			env.Logf("    %s %2d streams %s compare @%7.0f/s: %.2f CPU-s/Mpkt (send %.2f, recv %.2f), switches/pkt %.2f + %.2f, lost %d", system, n, traffic, common,
				w.cpuPerMpkt(), w.cpu[0].Seconds()/d*1e6, w.cpu[1].Seconds()/d*1e6, float64(w.switches[0])/d, float64(w.switches[1])/d, w.lost)
			if b, ok := best[system]; !ok || w.cpuPerMpkt() < b.cpuPerMpkt() {
				best[system] = w
			}
		}
	}
	for _, system := range systems {
		if w, ok := best[system]; ok {
			add(mediaPoint{system: system, n: n, point: "compare", traffic: traffic, w: w, srtp: srtp[system]})
		}
	}
	return nil
}

func (c *mediaCase) startProfiles(rate float64, n int) func() {
	r, ok := c.relay.(*gwRelay)
	if !ok || c.o.PprofDir == "" {
		return func() {}
	}
	secs := max(1, int((c.o.Window+c.o.Warmup)/time.Second))
	done := make(chan struct{}, 2)
	for i, g := range []*gwProc{r.a, r.b} {
		path := filepath.Join(c.o.PprofDir, fmt.Sprintf("gw-%c-%dstreams-%.0fpps.pprof", 'A'+i, n, rate))
		go func() {
			if err := g.profile(path, secs); err != nil {
				c.env.Logf("    profile %s: %v", path, err)
			}
			done <- struct{}{}
		}()
	}
	return func() { <-done; <-done }
}

// harnessLatency measures sender → sink with nothing between.
func harnessLatency(ctx context.Context, o mediaOptions) (mediaWindow, error) {
	sink, err := rtpload.NewSink(1)
	if err != nil {
		return mediaWindow{}, err
	}
	go func() { _ = sink.Run() }()
	defer sink.Close()
	gen, err := rtpload.NewSender([]netip.AddrPort{sink.Addr()}, o.Size, mediaPT)
	if err != nil {
		return mediaWindow{}, err
	}
	defer gen.Close()
	stop, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- gen.Run(o.LatRate, stop) }()
	sleepCtx(ctx, o.Warmup)
	sink.Record(true)
	t0, ticks := time.Now(), readCPUTicks()
	r0 := sink.Received(0)
	sleepCtx(ctx, o.LatWindow)
	w := mediaWindow{offered: o.LatRate, secs: time.Since(t0).Seconds(), steal: stealShare(ticks, readCPUTicks())}
	w.delivered = sink.Received(0) - r0
	sink.Record(false)
	close(stop)
	if err := <-errc; err != nil {
		return w, err
	}
	w.latencies(sink)
	return w, nil
}

func findPoint(points []mediaPoint, system string, n int, traffic, point string) (mediaPoint, bool) {
	for _, p := range points {
		if p.system == system && p.n == n && p.traffic == traffic && p.point == point {
			return p, true
		}
	}
	return mediaPoint{}, false
}

func mediaGoals(points []mediaPoint, o mediaOptions) []Goal {
	var goals []Goal
	for _, fr := range o.Frames {
		traffic := trafficName(fr)
		for _, n := range o.Streams {
			g, ok1 := findPoint(points, "gw", n, traffic, "compare")
			b, ok2 := findPoint(points, "baseline", n, traffic, "compare")
			if !ok1 || !ok2 {
				continue
			}
			ratio := b.w.cpuPerMpkt() / g.w.cpuPerMpkt()
			detail := fmt.Sprintf("%.2f× at %.0f pkt/s (gw %.2f, baseline %.2f CPU-s per Mpkt, both relay processes)",
				ratio, g.w.offered, g.w.cpuPerMpkt(), b.w.cpuPerMpkt())
			if f, ok := findPoint(points, "udp-forward", n, traffic, "compare"); ok {
				detail += fmt.Sprintf("; two plain UDP forwarders in their place (udp-forward) %.2f", f.w.cpuPerMpkt())
			}
			goals = append(goals, Goal{
				Name:   fmt.Sprintf("gw ≥ 2× the baseline's packets per CPU-second, %d stream(s), %s", n, traffic),
				Pass:   ratio >= 2,
				Detail: detail,
			})
		}
	}
	for _, fr := range o.Frames {
		if p, ok := findPoint(points, "gw", 1, trafficName(fr), "goal"); ok {
			goals = append(goals, Goal{
				Name: fmt.Sprintf("zero loss at %.0f packets/s through one stream, %s", o.GoalRate, p.traffic),
				Pass: p.w.pass(),
				Detail: fmt.Sprintf("sent %d, lost %d, backlog %d at the end of sending, %.0f pkt/s delivered",
					p.w.sent, p.w.lost, p.w.backlog, p.w.rate()),
			})
		}
	}
	if p, ok := findPoint(points, "gw", 1, trafficName(0), "latency"); ok {
		h, _ := findPoint(points, "harness", 1, trafficName(0), "harness")
		detail := fmt.Sprintf("p50 %s, p99 %s, p99.9 %s from the app's send to the packet's arrival at the other app, over %d packets (the harness alone: p99 %s); to the app's read: p99 %s (the harness alone: %s); the hypervisor took %.1f%% of the CPUs' time meanwhile (steal; the least stolen of %s)",
			fmtDur(p.w.p50), fmtDur(p.w.p99), fmtDur(p.w.p999), p.w.latN, fmtDur(h.w.p99), fmtDur(p.w.appP99), fmtDur(h.w.appP99), 100*p.w.steal, windows(p.w.windows))
		if f, ok := findPoint(points, "udp-forward", 1, trafficName(0), "latency"); ok {
			detail += fmt.Sprintf("; two plain UDP forwarders in gw's place (udp-forward): p50 %s, p99 %s, with %.1f%% steal",
				fmtDur(f.w.p50), fmtDur(f.w.p99), 100*f.w.steal)
		}
		goals = append(goals, Goal{
			Name:   fmt.Sprintf("p99 added latency ≤ 1 ms at %.0f packets/s (one stream, paced)", o.LatRate),
			Pass:   p.w.p99 <= time.Millisecond && p.w.latN > 0,
			Detail: detail,
		})
	}
	// VmHWM is the peak since the process started: the last pattern's
	// load point covers setup, the latency window and every pattern at
	// the goal rate; the last max point covers the whole run, overloads
	// of the rate search included (shown, not judged).
	last := trafficName(o.Frames[len(o.Frames)-1])
	if p, ok := findPoint(points, "gw", 8, last, "load"); ok {
		peak := max(p.w.procs[0].HWM, p.w.procs[1].HWM)
		detail := fmt.Sprintf("peak (VmHWM) gw A %.1f MB, gw B %.1f MB, %d packets lost", mb(p.w.procs[0].HWM), mb(p.w.procs[1].HWM), p.w.lost)
		if m, ok := findPoint(points, "gw", 8, last, "max"); ok {
			detail += fmt.Sprintf("; peak over the whole run, the rate search's overloads included: %.1f / %.1f MB", mb(m.w.procs[0].HWM), mb(m.w.procs[1].HWM))
		}
		goals = append(goals, Goal{
			Name:   fmt.Sprintf("RSS ≤ 40 MB per gw process with 8 streams at %.0f packets/s (every pattern)", o.GoalRate),
			Pass:   peak > 0 && peak <= 40<<20 && p.w.pass(),
			Detail: detail,
		})
	}
	return goals
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) + " µs"
}

func mediaNotes(o mediaOptions, srtp map[string]string) []string {
	var prof []string
	for _, s := range []string{"gw", "gw-alt", "baseline", "baseline-gcm128", "udp-forward"} {
		if p, ok := srtp[s]; ok {
			prof = append(prof, s+": "+p)
		}
	}
	return []string{
		fmt.Sprintf("path: app → relay side 1 → WebRTC (DTLS-SRTP, loopback) → relay side 2 → app; %d-byte RTP packets (H.264 payload type %d); one media connection (PeerConnection) per stream", o.Size, mediaPT),
		"traffic: paced = packets evenly spaced, round-robin over the streams; N bursts/s = each stream's packets sent in N bursts a second, back to back, the way a camera's packetizer hands over a frame: every stream's frame begins at once and leaves as one run, stream after stream; in bursts a packet's latency includes its wait behind the packets before it in its burst, so the latency goal is judged paced",
		"latency: from the send time stamped in the payload to the packet's arrival in the receiving app's socket (the kernel's receive timestamp), so it is what the path adds; app p99 = to when the app's read returned, which adds the wait for the app's own thread to be woken and run",
		fmt.Sprintf("points (latency at each): latency = at -media.latency-rate, paced, measured again while the hypervisor takes over %.0f%% of the CPUs' time, up to %d windows, and the least stolen counts (its loss is that of all of them); ", 100*maxSteal, latencyWindows) + "load = at -media.goal-rate over all streams, before the rate search (whose overloads fill pion's queues), for memory; max = 90% of the highest rate a short search passed without loss (backing off 15% if the window loses); goal = gw at -media.goal-rate, 1 stream; compare = every system at one rate (80% of the lowest max), alternately, best of two windows: packets per CPU-second compare here",
		"CPU: both relay processes (schedstat of their threads) per million packets delivered; send = the side apps send to, recv = the side that delivers; switches = times the process's threads were switched onto a CPU (schedstat: each wake-up or preemption) per packet delivered; RSS = VmRSS at the end of the window, peak = VmHWM; goroutines from gw's /metrics and the baseline's /stats; steal = share of all CPUs' time in the window that the hypervisor gave to others while a vCPU had work (/proc/stat), which stalls whatever ran there",
		"SRTP profiles negotiated: " + strings.Join(prof, "; "),
		"baseline: bench/baseline, pion's rtp-to-webrtc way: ReadFromUDP + WriteRTP per packet, ReadRTP + Marshal + WriteToUDP on the other side, pion's default interceptors, 4 MiB receive buffers on its app sockets like gw's ports",
		"udp-forward: bench/baseline -role forward, two processes in the relays' place that pass each datagram on with ReadFromUDP + WriteToUDP, no WebRTC: what two process hops that handle each datagram on its own cost on this machine, for scale (-media.floor)",
	}
}

// mediaCharts: per stream count, each system's packets per CPU-second,
// highest zero-loss rate and memory for each traffic pattern, and latency.
func mediaCharts(points []mediaPoint, o mediaOptions) []Chart {
	systems := []string{"gw", "gw-alt", "baseline", "baseline-gcm128", "udp-forward"}
	series := func(point, traffic string, f func(mediaWindow) float64, name func(string) string, only ...string) []Series {
		var out []Series
		for _, s := range systems {
			if len(only) > 0 && !slices.Contains(only, s) {
				continue
			}
			se := Series{Name: name(s)}
			for _, n := range o.Streams {
				if p, ok := findPoint(points, s, n, traffic, point); ok {
					se.X = append(se.X, float64(n))
					se.Y = append(se.Y, f(p.w))
				}
			}
			if len(se.X) > 0 {
				out = append(out, se)
			}
		}
		return out
	}
	pktPerCPU := func(w mediaWindow) float64 { return 1e6 / w.cpuPerMpkt() }
	var eff, maxRate, mem []Series
	for _, fr := range o.Frames {
		tr := trafficName(fr)
		named := func(s string) string { return s + ", " + tr }
		eff = append(eff, series("compare", tr, pktPerCPU, named)...)
		maxRate = append(maxRate, series("max", tr, func(w mediaWindow) float64 { return w.offered * b2f(w.pass()) }, named, "gw", "baseline")...)
		if fr == o.Frames[len(o.Frames)-1] { // peaks cover what came before
			for _, side := range []struct {
				i    int
				name string
			}{{0, "send side"}, {1, "recv side"}} {
				hwm := func(w mediaWindow) float64 { return mb(w.procs[side.i].HWM) }
				mem = append(mem, series("load", tr, hwm, func(s string) string { return s + " " + side.name }, "gw", "baseline")...)
				mem = append(mem, series("max", tr, hwm, func(s string) string { return s + " " + side.name + ", whole run" }, "gw", "baseline")...)
			}
		}
	}
	var lat []Series
	for _, q := range []struct {
		name string
		f    func(mediaWindow) float64
	}{
		{"p50", func(w mediaWindow) float64 { return float64(w.p50) / 1e3 }},
		{"p99", func(w mediaWindow) float64 { return float64(w.p99) / 1e3 }},
		{"p99.9", func(w mediaWindow) float64 { return float64(w.p999) / 1e3 }},
	} {
		lat = append(lat, series("latency", trafficName(0), q.f, func(s string) string { return s + " " + q.name }, "gw", "baseline", "udp-forward")...)
	}
	return []Chart{
		{Name: "media-efficiency", Title: "Packets per CPU-second (both relay processes, same rate)", X: "streams", Y: "packets / CPU-second",
			Series: eff},
		{Name: "media-max-rate", Title: "Highest zero-loss rate (90% of the search's)", X: "streams", Y: "packets / s",
			Series: maxRate},
		{Name: "media-latency", Title: fmt.Sprintf("Added latency (app's send to arrival at the other app) at %.0f packets/s, paced", o.LatRate), X: "streams", Y: "µs", LogY: true,
			Series: lat},
		{Name: "media-memory", Title: fmt.Sprintf("Peak RSS per process: at %.0f packets/s, and over the whole run", o.GoalRate), X: "streams", Y: "MB", Series: mem},
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return math.NaN()
}
