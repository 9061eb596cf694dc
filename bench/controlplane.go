package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The controlplane scenario: gw's REST API alone, against gw processes with
// their embedded signaling server on loopback, driven from this process.
//
//   - status: N keep-alive connections ask GET /peers/{id}/status as fast as
//     gw answers: requests/s, latency, gw CPU per request.
//   - create+delete: workers register fresh peers (POST /peers, which
//     answers once the signaling server accepted the peer) and delete them:
//     pairs/s, latency of each step; then whether gw's goroutines and file
//     descriptors come back to where they were.
//   - long-poll: one poller per peer, each on a connection of its own, held
//     in GET /peers/{id}/events on a second gw: RSS and goroutines per held
//     poll; then every peer is deleted and every poll must be answered.

func init() {
	register(Scenario{
		Name: "controlplane",
		Help: "REST API: status and create/delete requests/s, 1,000 held long-polls and their memory",
		Run:  runControlplane,
	})
}

var cpFlags = struct {
	clients, ports *string
	workers, polls *int
}{
	clients: flag.String("controlplane.clients", "1,8,64", "concurrent connections asking for a peer's status"),
	ports:   flag.String("controlplane.ports", "28500-28999", "gw's UDP port range (nothing is opened there; given so that no default range is shared)"),
	workers: flag.Int("controlplane.workers", 16, "concurrent create+delete workers"),
	polls:   flag.Int("controlplane.polls", 1000, "long-polls held at once (one peer each)"),
}

type cpOptions struct {
	Bin              string
	PortMin, PortMax int
	Clients          []int
	Workers          int
	Polls            int
	// SetupWorkers create and delete the long-poll peers; few, so that gw
	// keeps few idle workers with stacks of their own from the setup.
	SetupWorkers   int
	Warmup, Window time.Duration
	Hold           time.Duration
	// Settle bounds the wait for goroutines and fds to come back.
	Settle time.Duration
	// AnswerWait bounds the wait for the polls' answers after the deletes.
	AnswerWait time.Duration
}

// Leaks show per peer or per request, so after thousands of either a
// handful more goroutines or fds (a probe's own connection, a timer firing)
// is noise, not a leak.
const cpSlackGoroutines, cpSlackFDs = 10, 4

// cpMaxKiBPerPoll: a held poll is a connection (fasthttp's 4 KiB read and
// write buffers, its RequestCtx), a goroutine stack and a timer; 64 KiB
// leaves room for Go's heap growth and still means 1,000 polls < 64 MiB.
const cpMaxKiBPerPoll = 64

func runControlplane(ctx context.Context, env *Env) (*Result, error) {
	o := cpOptions{Warmup: 300 * time.Millisecond, Window: env.Duration, Hold: env.Duration,
		Workers: *cpFlags.workers, Polls: *cpFlags.polls, SetupWorkers: 8,
		Settle: 10 * time.Second, AnswerWait: 15 * time.Second}
	if env.Quick {
		o.Warmup = 100 * time.Millisecond
		if !env.Explicit["controlplane.clients"] {
			*cpFlags.clients = "1,8"
		}
		if !env.Explicit["controlplane.workers"] {
			o.Workers = 4
		}
		if !env.Explicit["controlplane.polls"] {
			o.Polls = 100
		}
	}
	var err error
	if o.Clients, err = intList(*cpFlags.clients); err != nil || len(o.Clients) == 0 {
		return nil, fmt.Errorf("-controlplane.clients %q: want a list of counts", *cpFlags.clients)
	}
	if o.PortMin, o.PortMax, err = portRange(*cpFlags.ports); err != nil {
		return nil, fmt.Errorf("-controlplane.ports: %w", err)
	}
	if o.Workers < 1 || o.Polls < 1 {
		return nil, errors.New("-controlplane.workers and -controlplane.polls must be positive")
	}
	if err := bins.build(env); err != nil {
		return nil, err
	}
	o.Bin = bins.gw
	return controlplaneScenario(ctx, env, o)
}

func controlplaneScenario(ctx context.Context, env *Env, o cpOptions) (*Result, error) {
	// The pollers' connections, plus slack for everything else.
	if err := raiseNoFile(uint64(o.Polls + slices.Max(o.Clients) + o.Workers + 256)); err != nil {
		return nil, err
	}
	// The long-poll gw's polls must outlast the hold.
	evTimeout := max(time.Minute, o.Hold+30*time.Second)
	res := &Result{Notes: []string{
		"clients: concurrent keep-alive HTTP/1.1 connections (fasthttp client in the bench process, which shares the CPUs with gw); p50/p99 per request; " +
			"gw CPU per operation (all of gw's threads, its embedded signaling server included)",
		"create+delete: rate is pairs/s, each a POST /peers with a fresh peer_id (answered once the signaling server accepted the peer over a new WebSocket) " +
			"then DELETE /peers/{id}; its p50/p99 are of the pair, the create and delete rows give each step",
		"gw idle rows: the first gw before the status runs and after the create+delete run, its clients' connections closed; the leak goals' goroutines leave out " +
			"fasthttp's idle workers, which it keeps for 10-20 s",
		fmt.Sprintf("long-poll: a second gw (--event-timeout %s); each peer has one poller on a new connection of its own; per poll = (RSS held - RSS peers idle) / polls, "+
			"so it includes the connection; released p50/p99: from a peer's DELETE to its poll's answer (CLOSE); RSS need not fall back, as Go keeps freed memory for reuse", evTimeout),
		fmt.Sprintf("goals: no speed goals, as rates depend on the machine; correctness (no errors, every poll held and answered, goroutines and fds back within %d and %d) "+
			"and one budget: %d KiB per held poll, room for its connection's buffers, request context, goroutine stack and Go's heap growth, so that 1,000 polls cost under %d MiB",
			cpSlackGoroutines, cpSlackFDs, cpMaxKiBPerPoll, cpMaxKiBPerPoll),
	}}
	g, err := startGW("gw", o.Bin, []string{"--port-range", fmt.Sprintf("%d-%d", o.PortMin, o.PortMax)}, true)
	if err != nil {
		return nil, err
	}
	err = cpThroughput(ctx, env, g, o, res)
	g.stop()
	if err != nil {
		return res, fmt.Errorf("%w\n-- gw:\n%s", err, g.logs.String())
	}
	// The long-polls get a gw of their own, so that nothing the throughput
	// runs left behind (deleted peers' events are kept a minute) blurs
	// their memory.
	g, err = startGW("gw long-poll", o.Bin, []string{"--port-range", fmt.Sprintf("%d-%d", o.PortMin, o.PortMax),
		"--event-timeout", evTimeout.String()}, true)
	if err != nil {
		return res, err
	}
	defer g.stop()
	if err := cpLongPolls(ctx, env, g, o, evTimeout, res); err != nil {
		return res, fmt.Errorf("%w\n-- gw long-poll:\n%s", err, g.logs.String())
	}
	return res, nil
}

// cpThroughput runs the status and create+delete loads on g.
func cpThroughput(ctx context.Context, env *Env, g *gwProc, o cpOptions, res *Result) error {
	p, err := g.createPeer(ctx, "cpstatus")
	if err != nil {
		return err
	}
	before := cpSnapshot(g)
	res.Rows = append(res.Rows, cpSnapRow("gw idle, before", "-", before, math.NaN()))
	addr := strings.TrimPrefix(g.api.base, "http://")
	statusURL := g.api.base + "/peers/" + p.id + "/status?token=" + url.QueryEscape(p.token)
	var chartX, chartY []float64
	var statusReqs, statusErrs int64
	var statusErr string
	for _, c := range o.Clients {
		hc := cpClient(addr, c, 30*time.Second)
		r := cpLoad(ctx, g, c, o.Warmup, o.Window, func(int) cpOp {
			req, resp := new(fasthttp.Request), new(fasthttp.Response)
			req.SetRequestURI(statusURL)
			return func(int) ([]time.Duration, error) {
				t := time.Now()
				if err := hc.Do(req, resp); err != nil {
					return nil, err
				}
				d := time.Since(t)
				if resp.StatusCode() != fasthttp.StatusOK {
					return nil, fmt.Errorf("GET status: %d %s", resp.StatusCode(), resp.Body())
				}
				return []time.Duration{d}, nil
			}
		})
		hc.CloseIdleConnections()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		env.Logf("  status, %d clients: %.0f req/s, p50 %v p99 %v, %d errors", c, r.rate(), r.pct(0, 50), r.pct(0, 99), r.errs)
		res.Rows = append(res.Rows, r.row("status", c, 0))
		chartX, chartY = append(chartX, float64(c)), append(chartY, r.rate())
		statusReqs += int64(r.ops) + r.errs
		statusErrs += r.errs
		if statusErr == "" {
			statusErr = r.firstErr
		}
	}
	res.Goals = append(res.Goals, cpErrGoal("status: no errors", statusErrs, statusReqs, "requests", statusErr))
	res.Charts = append(res.Charts, Chart{Name: "controlplane-status", Title: "GET /peers/{id}/status, keep-alive connections",
		X: "concurrent clients", Y: "requests / s", Series: []Series{{Name: "gw", X: chartX, Y: chartY}}})

	// create+delete
	hc := cpClient(addr, o.Workers, 30*time.Second)
	var creates, createErrs atomic.Int64
	r := cpLoad(ctx, g, o.Workers, o.Warmup, o.Window, func(w int) cpOp {
		req, resp := new(fasthttp.Request), new(fasthttp.Response)
		return func(i int) ([]time.Duration, error) {
			id := fmt.Sprintf("cd-%d-%d", w, i)
			body, _ := json.Marshal(map[string]any{"key": "peerjs", "domain": "localhost", "peer_id": id, "turn": false})
			req.Reset()
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetRequestURI(g.api.base + "/peers")
			req.SetBody(body)
			creates.Add(1)
			t := time.Now()
			if err := hc.Do(req, resp); err != nil {
				createErrs.Add(1)
				return nil, fmt.Errorf("POST /peers: %w", err)
			}
			dc := time.Since(t)
			var cr struct {
				Params struct {
					Token string `json:"token"`
				} `json:"params"`
			}
			if resp.StatusCode() != fasthttp.StatusCreated || json.Unmarshal(resp.Body(), &cr) != nil {
				createErrs.Add(1)
				return nil, fmt.Errorf("POST /peers: %d %s", resp.StatusCode(), resp.Body())
			}
			req.Reset()
			req.Header.SetMethod(fasthttp.MethodDelete)
			req.SetRequestURI(g.api.base + "/peers/" + id + "?token=" + url.QueryEscape(cr.Params.Token))
			t = time.Now()
			if err := hc.Do(req, resp); err != nil {
				return nil, fmt.Errorf("DELETE /peers/%s: %w", id, err)
			}
			dd := time.Since(t)
			if resp.StatusCode() != fasthttp.StatusNoContent {
				return nil, fmt.Errorf("DELETE /peers/%s: %d %s", id, resp.StatusCode(), resp.Body())
			}
			return []time.Duration{dc + dd, dc, dd}, nil
		}
	})
	hc.CloseIdleConnections()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	env.Logf("  create+delete, %d workers: %.0f pairs/s, create p50 %v p99 %v, delete p50 %v p99 %v, %d errors",
		o.Workers, r.rate(), r.pct(1, 50), r.pct(1, 99), r.pct(2, 50), r.pct(2, 99), r.errs)
	res.Rows = append(res.Rows, r.row("create+delete", o.Workers, 0))
	for k, name := range []string{"create", "delete"} {
		row := r.row(name, o.Workers, k+1)
		row.Values[0].V, row.Values[4].V = math.NaN(), math.NaN() // rate, CPU: per pair, above
		if name == "create" {
			row.Values[3].V = float64(createErrs.Load())
		} else {
			row.Values[3].V = float64(r.errs - createErrs.Load())
		}
		res.Rows = append(res.Rows, row)
	}
	res.Goals = append(res.Goals, cpErrGoal("create+delete: no errors", r.errs, creates.Load(), "pairs", r.firstErr))

	// Everything this gw served is closed now: it should be back to where
	// it started.
	g.api.http.CloseIdleConnections()
	after := cpSettle(ctx, g, before, o.Settle)
	res.Rows = append(res.Rows, cpSnapRow("gw idle, after", "-", after, math.NaN()))
	res.Goals = append(res.Goals, cpLeakGoal(fmt.Sprintf("after %d status requests and %d create+delete pairs: goroutines and fds back", statusReqs, creates.Load()), before, after))
	return nil
}

// cpLongPolls holds o.Polls long-polls on g, then releases them.
func cpLongPolls(ctx context.Context, env *Env, g *gwProc, o cpOptions, evTimeout time.Duration, res *Result) error {
	n := o.Polls
	label := strconv.Itoa(n)
	if lim := nofileLimit(g.pid()); lim > 0 && lim < 3*n+100 {
		// Each held poll is a connection, each peer two signaling sockets.
		return fmt.Errorf("gw's open-file limit %d is too low for %d peers and polls", lim, n)
	} else if lim > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("gw's open-file limit: %d; its fasthttp server sets no Concurrency (default 262144) nor MaxConnsPerIP, so nothing in gw caps the polls below that", lim))
	}
	start := cpSnapshot(g)
	res.Rows = append(res.Rows, cpSnapRow("long-poll: no peers", label, start, math.NaN()))

	// Peers, each with its OPEN taken, so that a poll waits.
	peers := make([]peer, n)
	t0 := time.Now()
	if err := cpParallel(ctx, n, o.SetupWorkers, func(i int) error {
		var err error
		peers[i], err = g.createPeer(ctx, "lp-"+strconv.Itoa(i))
		return err
	}); err != nil {
		return fmt.Errorf("creating peers: %w", err)
	}
	env.Logf("  long-poll: %d peers created in %v (%.0f/s, with their OPEN polled)", n, time.Since(t0).Round(time.Millisecond), float64(n)/time.Since(t0).Seconds())
	g.api.http.CloseIdleConnections()
	sleepCtx(ctx, 300*time.Millisecond)
	idle := cpSnapshot(g)
	res.Rows = append(res.Rows, cpSnapRow("long-poll: peers idle", label, idle, math.NaN()))
	res.Notes = append(res.Notes, fmt.Sprintf("an idle peer (gw's signaling client and, in the same process, the embedded server's side) costs %.1f KiB of RSS, %.1f goroutines and %.1f fds",
		float64(idle.proc.RSS-start.proc.RSS)/float64(n)/1024, float64(idle.live()-start.live())/float64(n), float64(idle.fds-start.fds)/float64(n)))

	// One poller per peer, each on a new connection.
	hc := cpClient(strings.TrimPrefix(g.api.base, "http://"), n+16, evTimeout+30*time.Second)
	defer hc.CloseIdleConnections()
	var released atomic.Bool
	type answer struct {
		status int
		event  string
		at     time.Time
		early  bool
		err    error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	var answered atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer answered.Add(1)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(g.api.base + "/peers/" + peers[i].id + "/events?token=" + url.QueryEscape(peers[i].token))
			a := &answers[i]
			a.err = hc.Do(req, resp)
			a.at, a.early = time.Now(), !released.Load()
			if a.err == nil {
				a.status = resp.StatusCode()
				var ev struct {
					Event string `json:"event"`
				}
				_ = json.Unmarshal(resp.Body(), &ev)
				a.event = ev.Event
			}
		}()
	}
	// stopPolls ends whatever still waits (gw gone) and the pollers with it.
	stopPolls := func() {
		g.stop()
		wg.Wait()
	}
	// Held means waiting in gw's event queue, as its goroutine profile shows.
	held := 0
	t0 = time.Now()
	deadline := t0.Add(30 * time.Second)
	for held < n && answered.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 200*time.Millisecond)
		if _, held = cpGoroutineKinds(g); held < 0 {
			held = n // no profile: trust the time waited
			sleepCtx(ctx, time.Second)
		}
	}
	env.Logf("  long-poll: %d of %d polls held after %v", held, n, time.Since(t0).Round(time.Millisecond))
	sleepCtx(ctx, o.Hold)
	if ctx.Err() != nil {
		stopPolls()
		return ctx.Err()
	}
	hold := cpSnapshot(g)
	kib := float64(hold.proc.RSS-idle.proc.RSS) / float64(n) / 1024
	res.Rows = append(res.Rows, cpSnapRow("long-poll: held", label, hold, kib))
	goroutinesPer := float64(hold.live()-idle.live()) / float64(n)
	env.Logf("  long-poll: held: RSS %+.1f MiB (%.1f KiB/poll), %.2f goroutines/poll", mib(hold.proc.RSS-idle.proc.RSS), kib, goroutinesPer)

	// Release: delete every peer; each poll must be answered (CLOSE).
	released.Store(true)
	delAt := make([]time.Time, n)
	var delErrs atomic.Int64
	var delErr atomic.Value
	_ = cpParallel(ctx, n, o.SetupWorkers, func(i int) error {
		delAt[i] = time.Now()
		if err := g.api.call(ctx, "DELETE", "/peers/"+peers[i].id+"?token="+url.QueryEscape(peers[i].token), nil, 204, nil); err != nil {
			delErrs.Add(1)
			delErr.CompareAndSwap(nil, err.Error())
		}
		return nil
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	hung := 0
	select {
	case <-done:
	case <-time.After(o.AnswerWait):
		hung = n - int(answered.Load())
		env.Logf("  long-poll: %d polls unanswered %v after the deletes", hung, o.AnswerWait)
		stopPolls()
		<-done
	}
	byStatus := map[string]int{}
	var lat []time.Duration
	ok := 0
	for i, a := range answers {
		switch {
		case a.early:
			byStatus["early"]++
		case a.err != nil:
			byStatus["error"]++
		default:
			byStatus[strconv.Itoa(a.status)]++
			if a.status == 200 && a.event == "CLOSE" {
				ok++
				lat = append(lat, a.at.Sub(delAt[i]))
			}
		}
	}
	slices.Sort(lat)
	if hung > 0 {
		return fmt.Errorf("%d of %d long-polls hung after their peers were deleted (answers: %v)", hung, n, byStatus)
	}
	hc.CloseIdleConnections()
	g.api.http.CloseIdleConnections()
	after := cpSettle(ctx, g, start, o.Settle)
	row := cpSnapRow("long-poll: released", label, after, math.NaN())
	row.Values[1].V, row.Values[2].V = ms(pctOf(lat, 50)), ms(pctOf(lat, 99))
	row.Values[3].V = float64(n - ok)
	res.Rows = append(res.Rows, row)
	env.Logf("  long-poll: released: answers %v, p50 %v p99 %v after the DELETE", byStatus, pctOf(lat, 50), pctOf(lat, 99))

	res.Goals = append(res.Goals,
		Goal{Name: fmt.Sprintf("%d long-polls held at once", n), Pass: held >= n && byStatus["early"] == 0,
			Detail: fmt.Sprintf("%d waiting in gw's event queues, %d answered before release; %.2f goroutines per poll", held, byStatus["early"], goroutinesPer)},
		cpErrGoal("deleting the polled peers: no errors", delErrs.Load(), int64(n), "deletes", fmt.Sprint(delErr.Load())),
		Goal{Name: "every long-poll answered after release", Pass: ok == n,
			Detail: fmt.Sprintf("%d of %d answered 200 CLOSE (answers by status: %v), the last %v after its DELETE", ok, n, byStatus, pctOf(lat, 100).Round(time.Microsecond))},
		Goal{Name: fmt.Sprintf("memory per held long-poll <= %d KiB", cpMaxKiBPerPoll), Pass: kib <= cpMaxKiBPerPoll,
			Detail: fmt.Sprintf("RSS %+.1f KiB per poll (Go heap+stacks in use after GC: %+.1f KiB)", kib, (hold.inuse-idle.inuse)/float64(n)/1024)},
		cpLeakGoal("after release: goroutines and fds back to before the peers", start, after),
	)
	return nil
}

// cpOp does one operation (the i-th of its worker) and gives the latency of
// each of its steps.
type cpOp func(i int) ([]time.Duration, error)

// cpResult is a load's measurement window.
type cpResult struct {
	ops      int               // operations begun and ended within the window
	lat      [][]time.Duration // per step, sorted
	errs     int64             // failed operations, warm-up included
	firstErr string
	secs     float64
	cpu      time.Duration // gw's, over the window
}

// cpLoad runs workers operations back to back for warmup+window and
// measures the window.
func cpLoad(ctx context.Context, g *gwProc, workers int, warmup, window time.Duration, newOp func(w int) cpOp) cpResult {
	t0 := time.Now().Add(warmup)
	t1 := t0.Add(window)
	var mu sync.Mutex
	var r cpResult
	var wg sync.WaitGroup
	for w := range workers {
		op := newOp(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat [][]time.Duration
			var ops int
			var errs int64
			var firstErr string
			for i := 0; ctx.Err() == nil; i++ {
				s := time.Now()
				if s.After(t1) {
					break
				}
				d, err := op(i)
				e := time.Now()
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					continue
				}
				if s.Before(t0) || e.After(t1) {
					continue
				}
				ops++
				for k, x := range d {
					if k == len(lat) {
						lat = append(lat, nil)
					}
					lat[k] = append(lat[k], x)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			r.ops += ops
			r.errs += errs
			if r.firstErr == "" {
				r.firstErr = firstErr
			}
			for k := range lat {
				if k == len(r.lat) {
					r.lat = append(r.lat, nil)
				}
				r.lat[k] = append(r.lat[k], lat[k]...)
			}
		}()
	}
	sleepCtx(ctx, time.Until(t0))
	c0 := readProc(g.pid())
	sleepCtx(ctx, time.Until(t1))
	c1 := readProc(g.pid())
	wg.Wait()
	for _, l := range r.lat {
		slices.Sort(l)
	}
	r.secs = window.Seconds()
	r.cpu = -1
	if c0.ok && c1.ok {
		r.cpu = c1.CPU - c0.CPU
	}
	return r
}

func (r cpResult) rate() float64 { return float64(r.ops) / r.secs }

func (r cpResult) pct(step int, p float64) time.Duration {
	if step >= len(r.lat) {
		return -1
	}
	return pctOf(r.lat[step], p)
}

// row is the window as a table row; step picks the latencies.
func (r cpResult) row(test string, clients, step int) Row {
	cpu := math.NaN()
	if r.cpu >= 0 && r.ops > 0 {
		cpu = r.cpu.Seconds() / float64(r.ops) * 1000
	}
	return Row{
		Labels: []Label{{"test", test}, {"clients", strconv.Itoa(clients)}},
		Values: []Value{
			{"rate", "op/s", r.rate(), 0},
			{"p50", "ms", ms(r.pct(step, 50)), 3},
			{"p99", "ms", ms(r.pct(step, 99)), 3},
			{"errors", "", float64(r.errs), 0},
			{"gw CPU", "s/1k op", cpu, 3},
			{"gw RSS", "MiB", math.NaN(), 1},
			{"goroutines", "", math.NaN(), 0},
			{"fds", "", math.NaN(), 0},
			{"threads", "", math.NaN(), 0},
			{"per poll", "KiB", math.NaN(), 1},
		},
	}
}

// cpSnapRow is gw's state as a row with the same columns.
func cpSnapRow(test, clients string, s cpSnap, perPoll float64) Row {
	nan := math.NaN()
	return Row{
		Labels: []Label{{"test", test}, {"clients", clients}},
		Values: []Value{
			{"rate", "op/s", nan, 0},
			{"p50", "ms", nan, 3},
			{"p99", "ms", nan, 3},
			{"errors", "", nan, 0},
			{"gw CPU", "s/1k op", nan, 3},
			{"gw RSS", "MiB", mib(s.proc.RSS), 1},
			{"goroutines", "", float64(s.goroutines), 0},
			{"fds", "", float64(s.fds), 0},
			{"threads", "", float64(s.proc.Threads), 0},
			{"per poll", "KiB", perPoll, 1},
		},
	}
}

func cpErrGoal(name string, errs, of int64, what, first string) Goal {
	d := fmt.Sprintf("%d of %d %s failed", errs, of, what)
	if errs > 0 && first != "" {
		d += "; first: " + first
	}
	return Goal{Name: name, Pass: errs == 0 && of > 0, Detail: d}
}

func cpLeakGoal(name string, before, after cpSnap) Goal {
	ok := before.fds >= 0 && after.fds >= 0 &&
		after.live() <= before.live()+cpSlackGoroutines && after.fds <= before.fds+cpSlackFDs
	return Goal{Name: name, Pass: ok, Detail: fmt.Sprintf("goroutines %d → %d (not counting %d → %d idle fasthttp workers), fds %d → %d, threads %d → %d, RSS %.1f → %.1f MiB (Go heap+stacks in use after GC %.1f → %.1f MiB)",
		before.live(), after.live(), before.idle, after.idle, before.fds, after.fds, before.proc.Threads, after.proc.Threads,
		mib(before.proc.RSS), mib(after.proc.RSS), before.inuse/(1<<20), after.inuse/(1<<20))}
}

// cpClient is a keep-alive client of gw's API with up to conns connections.
// Idle connections close after a second, so that its cleaner goroutine ends
// soon after the load; it dials with net.Dialer, since fasthttp's default
// dialer starts a process-wide goroutine that never ends (goleak).
func cpClient(addr string, conns int, timeout time.Duration) *fasthttp.HostClient {
	var d net.Dialer
	return &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxIdleConnDuration: time.Second,
		ReadTimeout: timeout, WriteTimeout: 30 * time.Second,
		Dial: func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }}
}

// cpParallel runs f(0..n-1) on workers goroutines; the first error stops
// handing out more.
func cpParallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// cpSnap is gw's resource use at one instant.
type cpSnap struct {
	proc       procStat
	fds        int
	goroutines int // go_goroutines
	// idle are fasthttp workers parked in its pool, polls requests waiting
	// in an event queue (-1: no goroutine profile).
	idle, polls int
	// inuse is Go's heap and stacks in use after a forced GC (NaN: unknown).
	inuse float64
}

// live are the goroutines doing or waiting for something.
func (s cpSnap) live() int { return s.goroutines - max(s.idle, 0) }

// cpSnapshot reads g's state: RSS first, before the probes themselves
// allocate in gw.
func cpSnapshot(g *gwProc) cpSnap {
	s := cpSnap{proc: readProc(g.pid()), fds: countFDs(g.pid()), inuse: math.NaN()}
	m := cpMetrics(g)
	s.goroutines = int(m["go_goroutines"])
	s.idle, s.polls = cpGoroutineKinds(g)
	if g.pprofAddr != "" {
		// The heap profile endpoint runs a GC first when asked to.
		if resp, err := cpPprofClient.Get("http://" + g.pprofAddr + "/debug/pprof/heap?gc=1"); err == nil {
			resp.Body.Close()
			m := cpMetrics(g)
			s.inuse = m["go_memstats_heap_inuse_bytes"] + m["go_memstats_stack_inuse_bytes"]
		}
	}
	return s
}

// cpSettle waits (up to timeout) for g's goroutines and fds to come back
// to base's, and returns the last snapshot.
func cpSettle(ctx context.Context, g *gwProc, base cpSnap, timeout time.Duration) cpSnap {
	deadline := time.Now().Add(timeout)
	for {
		sleepCtx(ctx, 250*time.Millisecond)
		s := cpSnapshot(g)
		if s.live() <= base.live()+cpSlackGoroutines && s.fds <= base.fds+cpSlackFDs || time.Now().After(deadline) || ctx.Err() != nil {
			return s
		}
	}
}

// cpMetrics reads gw's /metrics samples without labels.
func cpMetrics(g *gwProc) map[string]float64 {
	m := map[string]float64{}
	resp, err := g.api.http.Get(g.api.base + "/metrics")
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.ContainsAny(name, "{#") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[name] = f
		}
	}
	return m
}

// Each probe on a connection of its own, closed after: no pprof connection
// lingers in gw's fd count.
var cpPprofClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// cpGoroutineKinds reads gw's goroutine profile: fasthttp workers parked in
// its pool (they wait for a connection and end after 10-20 s idle), and
// requests waiting in an event queue; -1, -1 without a profile.
func cpGoroutineKinds(g *gwProc) (idle, polls int) {
	if g.pprofAddr == "" {
		return -1, -1
	}
	resp, err := cpPprofClient.Get("http://" + g.pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1, -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return -1, -1
	}
	// debug=1 groups identical stacks: "N @ pcs" then "#\tpc\tfunc+off\tfile:line" lines.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	count := 0
	var worker, serving, polling bool
	flush := func() {
		if worker && !serving {
			idle += count
		}
		if polling {
			polls += count
		}
		count, worker, serving, polling = 0, false, false, false
	}
	for sc.Scan() {
		l := sc.Text()
		if n, rest, ok := strings.Cut(l, " @ "); ok && rest != "" {
			flush()
			count, _ = strconv.Atoi(n)
			continue
		}
		if !strings.HasPrefix(l, "#") {
			continue
		}
		switch {
		case strings.Contains(l, "fasthttp.(*workerPool).workerFunc"):
			worker = true
		case strings.Contains(l, "fasthttp.(*Server).serveConn"):
			serving = true
		case strings.Contains(l, "controlplane.(*eventQueue).poll"):
			polling = true
		}
	}
	flush()
	return idle, polls
}

// countFDs is the number of open file descriptors of pid (-1: unknown).
func countFDs(pid int) int {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// nofileLimit is pid's soft RLIMIT_NOFILE (0: unknown).
func nofileLimit(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// pctOf is the p-th percentile of sorted d (-1: none).
func pctOf(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// ms is d in milliseconds, NaN for none.
func ms(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return float64(d) / float64(time.Millisecond)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
