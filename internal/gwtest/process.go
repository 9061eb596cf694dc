package gwtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/freeport"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds ./cmd/gw once per test process (with the race detector when
// the tests run with it) and returns the path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gwtest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gw")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/gw")
		cmd := exec.Command("go", args...)
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gw: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a TCP port free on loopback right now, one this test
// process has not been given before (freeport.TCP).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.TCP()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Process is a gw started by a test.
type Process struct {
	API          string // http://127.0.0.1:PORT
	SignalingURL string // ws://127.0.0.1:PORT/peerjs of its embedded server, if on
	Client       *Client
	cmd          *exec.Cmd
	logs         *lockedBuffer
	done         chan struct{}
	exitErr      error
}

// Start runs gw with args plus a free --api-addr (and a free
// --signaling-addr unless args set one), and waits until its API answers.
// The process is killed when the test ends if it is still running.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	apiPort := FreePort(t)
	full := []string{"--api-addr", "127.0.0.1:" + strconv.Itoa(apiPort), "--log-level", "debug"}
	p := &Process{API: "http://127.0.0.1:" + strconv.Itoa(apiPort), logs: &lockedBuffer{}, done: make(chan struct{})}
	if !hasFlag(args, "--signaling-addr") {
		sigPort := FreePort(t)
		full = append(full, "--signaling-addr", "127.0.0.1:"+strconv.Itoa(sigPort))
		p.SignalingURL = "ws://127.0.0.1:" + strconv.Itoa(sigPort) + "/peerjs"
	}
	full = append(full, args...)
	p.cmd = exec.Command(Binary(t), full...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("gw %v logs:\n%s", full, p.Logs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.API + "/openapi.yaml")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-p.done:
			t.Fatalf("gw exited at start: %v\n%s", p.exitErr, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw API not up within 30s\n%s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Client = NewClient(t, p.API)
	return p
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || len(a) > len(name) && a[:len(name)+1] == name+"=" {
			return true
		}
	}
	return false
}

// Logs is what the process printed so far.
func (p *Process) Logs() string { return p.logs.String() }

// Metrics is the process's GET /metrics body.
func (p *Process) Metrics(t testing.TB) []byte {
	t.Helper()
	r, err := http.Get(p.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Signal sends sig and waits up to timeout for the process to exit,
// returning its exit code.
func (p *Process) Signal(t testing.TB, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("gw did not exit within %s of %v\n%s", timeout, sig, p.Logs())
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	if p.exitErr != nil {
		t.Fatal(p.exitErr)
	}
	return 0
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
