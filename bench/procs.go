package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gw-project/gw/internal/freeport"
)

// Child processes: the gw processes and the baseline relay run apart from
// the bench process, so that the CPU time, memory and goroutines measured
// are theirs alone.

// binaries are the programs the scenarios start, built once per run.
type binaries struct {
	once          sync.Once
	err           error
	dir           string
	gw, baseline  string
	gwOverride    string // -gw-bin
	buildDuration time.Duration
}

var bins = &binaries{}

// build compiles ./cmd/gw and ./bench/baseline (without the race detector,
// with what `make build` uses) into a temporary directory.
func (b *binaries) build(env *Env) error {
	b.once.Do(func() {
		t0 := time.Now()
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		if b.dir, err = os.MkdirTemp("", "gw-bench-bin-"); err != nil {
			b.err = err
			return
		}
		b.gw, b.baseline = filepath.Join(b.dir, "gw"), filepath.Join(b.dir, "baseline")
		for _, x := range [][2]string{{b.gw, "./cmd/gw"}, {b.baseline, "./bench/baseline"}} {
			if x[1] == "./cmd/gw" && b.gwOverride != "" {
				b.gw = b.gwOverride
				continue
			}
			env.Logf("  building %s", x[1])
			cmd := exec.Command("go", "build", "-trimpath", "-o", x[0], x[1])
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				b.err = fmt.Errorf("go build %s: %v\n%s", x[1], err, out)
				return
			}
		}
		b.buildDuration = time.Since(t0)
	})
	return b.err
}

func (b *binaries) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// moduleRoot is the directory of the go.mod the bench runs in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("bench: run it inside the gw module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// child is one running process.
type child struct {
	name string
	cmd  *exec.Cmd
	logs *tailBuffer
	done chan struct{}
	err  error
}

// startChild runs path with args; its output is kept (the last 64 KiB) for
// error messages. If firstLine is set, startChild waits for the child's
// first line of standard output and returns it.
func startChild(name, path string, args []string, firstLine bool) (*child, string, error) {
	c := &child{name: name, logs: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	c.cmd = exec.Command(path, args...)
	c.cmd.Stderr = c.logs
	var line chan string
	if firstLine {
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			return nil, "", err
		}
		line = make(chan string, 1)
		go func() {
			r := bufio.NewReader(out)
			l, _ := r.ReadString('\n')
			line <- strings.TrimSpace(l)
			_, _ = io.Copy(c.logs, r)
		}()
	} else {
		c.cmd.Stdout = c.logs
	}
	if err := c.cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if !firstLine {
		return c, "", nil
	}
	select {
	case l := <-line:
		if l == "" {
			c.stop()
			return nil, "", fmt.Errorf("%s printed nothing: %v\n%s", name, c.err, c.logs.String())
		}
		return c, l, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, "", fmt.Errorf("%s did not start within 30s\n%s", name, c.logs.String())
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end (SIGTERM), and kills it after 10 s.
func (c *child) stop() {
	if c == nil || c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procStat is a process's resource use at one instant.
type procStat struct {
	CPU      time.Duration // user+system, all threads
	Switches int64         // times a thread was switched onto a CPU, all threads
	RSS      int64         // VmRSS, bytes
	HWM      int64         // VmHWM (peak RSS), bytes
	Threads  int
	ok       bool
}

// readProc reads /proc/<pid>. CPU is the sum of the run time of the live
// threads (schedstat, nanoseconds), which is exact where stat's utime and
// stime count 10 ms ticks, and Switches the sum of their timeslices
// (schedstat's third field: every wake-up or preemption). A thread that
// exits takes both with it, so the scenarios compare samples of windows in
// which no thread ends (the relays start and stop threads only when ports
// open and close).
func readProc(pid int) procStat {
	var s procStat
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = n << 10
		case "VmHWM":
			s.HWM = n << 10
		case "Threads":
			s.Threads = int(n)
		}
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return s
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 3 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			s.CPU += time.Duration(n)
			n, _ = strconv.ParseInt(f[2], 10, 64)
			s.Switches += n
		}
	}
	s.ok = true
	return s
}

// cpuTicks is the machine's CPU time so far, all CPUs, in clock ticks:
// the total and what a hypervisor took (steal: a vCPU had work but its host
// ran something else).
type cpuTicks struct{ total, steal uint64 }

// readCPUTicks reads the first line of /proc/stat; zero where there is none.
func readCPUTicks() cpuTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTicks{}
	}
	var t cpuTicks
	// user nice system idle iowait irq softirq steal (guest time is in user)
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

// stealShare is the share of the CPUs' time between a and b that the
// hypervisor took; 0 if unknown.
func stealShare(a, b cpuTicks) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total)
}

// rest is a JSON client of one HTTP API.
type rest struct {
	base string
	http *http.Client
}

func newREST(base string) *rest {
	return &rest{base: base, http: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
}

// apiError is a response with an unexpected status.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// call sends body (JSON, if not nil) and decodes the answer into out (if
// not nil); a status other than want is an *apiError.
func (r *rest) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &apiError{method, path, resp.StatusCode, string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == status
}

// gwProc is a gw process driven over its REST API.
type gwProc struct {
	*child
	api          *rest
	signalingURL string
	pprofAddr    string
}

// startGW runs the gw binary with its API and (unless args turn it off)
// its signaling server on free loopback ports, and waits until the API
// answers.
func startGW(name, bin string, args []string, pprof bool) (*gwProc, error) {
	apiPort, err := freeport.TCP()
	if err != nil {
		return nil, err
	}
	full := []string{"--api-addr", "127.0.0.1:" + strconv.Itoa(apiPort), "--log-level", "warn"}
	g := &gwProc{api: newREST("http://127.0.0.1:" + strconv.Itoa(apiPort))}
	if !hasArg(args, "--signaling-addr") {
		sigPort, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		full = append(full, "--signaling-addr", "127.0.0.1:"+strconv.Itoa(sigPort))
		g.signalingURL = "ws://127.0.0.1:" + strconv.Itoa(sigPort) + "/peerjs"
	}
	if pprof {
		p, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		g.pprofAddr = "127.0.0.1:" + strconv.Itoa(p)
		full = append(full, "--pprof-addr", g.pprofAddr)
	}
	full = append(full, args...)
	c, _, err := startChild(name, bin, full, false)
	if err != nil {
		return nil, err
	}
	g.child = c
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := g.api.call(context.Background(), "GET", "/openapi.yaml", nil, 200, nil); err == nil || isStatus(err, 200) {
			return g, nil
		} else if errors.As(err, new(*json.SyntaxError)) {
			return g, nil // answered, not JSON: up
		}
		if c.exited() {
			return nil, fmt.Errorf("%s exited at start: %v\n%s", name, c.err, c.logs.String())
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s: API not up within 30s\n%s", name, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasArg(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// peer is a gw peer the bench created.
type peer struct{ id, token string }

// createPeer registers a peer and waits for its OPEN.
func (g *gwProc) createPeer(ctx context.Context, id string) (peer, error) {
	var resp struct {
		Params struct {
			PeerID string `json:"peer_id"`
			Token  string `json:"token"`
		} `json:"params"`
	}
	if err := g.api.call(ctx, "POST", "/peers", map[string]any{"key": "peerjs", "domain": "localhost", "peer_id": id, "turn": false}, 201, &resp); err != nil {
		return peer{}, err
	}
	p := peer{resp.Params.PeerID, resp.Params.Token}
	_, err := g.api.waitEvent(ctx, "/peers/"+p.id+"/events?token="+p.token, "OPEN")
	return p, err
}

// waitEvent long-polls path until the event named want (others are
// skipped), for a minute at most; CLOSE or ERROR first is an error.
func (r *rest) waitEvent(ctx context.Context, path, want string) (map[string]any, error) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var ev map[string]any
		err := r.call(ctx, "GET", path, nil, 200, &ev)
		if isStatus(err, 408) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ev["event"] == want {
			return ev, nil
		}
		if ev["event"] == "CLOSE" || ev["event"] == "ERROR" {
			return nil, fmt.Errorf("%s while waiting for %s: %v", ev["event"], want, ev)
		}
	}
	return nil, fmt.Errorf("no %s on %s within a minute", want, path)
}

// goroutines reads go_goroutines from gw's /metrics (-1 if unknown).
func (g *gwProc) goroutines() int {
	resp, err := g.api.http.Get(g.api.base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// profile fetches a CPU profile of secs seconds from gw's --pprof-addr
// into path.
func (g *gwProc) profile(path string, secs int) error {
	if g.pprofAddr == "" {
		return errors.New("no --pprof-addr")
	}
	if err := g.fetchProfile(path, fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs+30)*time.Second); err != nil {
		return err
	}
	// The heap as the window ends, beside the CPU profile.
	return g.fetchProfile(strings.TrimSuffix(path, ".pprof")+"-heap.pprof", "heap", 30*time.Second)
}

func (g *gwProc) fetchProfile(path, what string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/%s", g.pprofAddr, what))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("pprof: %s %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
