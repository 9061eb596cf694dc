package gwtest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// gstPackages names the Debian package of the elements that are not in
// gstreamer1.0-plugins-good, for the message when one is missing.
var gstPackages = map[string]string{
	"videotestsrc": "gstreamer1.0-plugins-base", "audiotestsrc": "gstreamer1.0-plugins-base",
	"videoconvert": "gstreamer1.0-plugins-base", "audioconvert": "gstreamer1.0-plugins-base",
	"audioresample": "gstreamer1.0-plugins-base", "opusenc": "gstreamer1.0-plugins-base",
	"opusdec": "gstreamer1.0-plugins-base", "rtpopuspay": "gstreamer1.0-plugins-good",
	"x264enc": "gstreamer1.0-plugins-ugly", "avdec_h264": "gstreamer1.0-libav",
	"h264parse": "gstreamer1.0-plugins-bad", "fakesink": "gstreamer1.0-tools",
}

// RequireGStreamer fails the test (it must run, not skip) when
// gst-launch-1.0 or one of the elements is missing, naming the package.
func RequireGStreamer(t testing.TB, elements ...string) {
	t.Helper()
	if _, err := exec.LookPath("gst-launch-1.0"); err != nil {
		t.Fatalf("gst-launch-1.0 not found (apt-get install gstreamer1.0-tools; .ci/run does): %v", err)
	}
	for _, el := range elements {
		if exec.Command("gst-inspect-1.0", "--exists", el).Run() != nil {
			pkg := gstPackages[el]
			if pkg == "" {
				pkg = "gstreamer1.0-plugins-good"
			}
			t.Fatalf("GStreamer element %s is missing (apt-get install %s; .ci/run does)", el, pkg)
		}
	}
}

// Gst is a gst-launch-1.0 process run by a test. It counts the buffers
// reaching each fakesink named in StartGst's counted: such a sink must be
// "fakesink name=NAME silent=false", whose per-buffer message gst-launch
// prints in verbose mode. Behind a decoder, buffers are decoded frames
// (video) or decoded chunks (audio).
type Gst struct {
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every count or exit
	counts  map[string]int
	tail    []string // last lines printed, for failure messages
}

// StartGst runs gst-launch-1.0 with pipeline (split on white space: no
// quoting) and stops it when the test ends.
func StartGst(t testing.TB, pipeline string, counted ...string) *Gst {
	t.Helper()
	args := []string{"-q"}
	if len(counted) > 0 {
		args[0] = "-v"
	}
	args = append(args, strings.Fields(pipeline)...)
	return startGstArgs(t, args, counted)
}

func startGstArgs(t testing.TB, args []string, counted []string) *Gst {
	t.Helper()
	g := &Gst{done: make(chan struct{}), changed: make(chan struct{}), counts: map[string]int{}}
	g.cmd = exec.Command("gst-launch-1.0", args...)
	InGroup(g.cmd)
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stderr = g.cmd.Stdout
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("gst-launch-1.0: %v", err)
	}
	// The marker of a buffer at sink NAME, in fakesink's last-message.
	marks := make(map[string]string, len(counted))
	for _, name := range counted {
		marks[name] = "(" + name + ":sink)"
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			hit := false
			for name, m := range marks {
				if strings.Contains(line, "chain") && strings.Contains(line, m) {
					g.counts[name]++
					hit = true
				}
			}
			if !hit {
				g.tail = append(g.tail, line)
				if len(g.tail) > 40 {
					g.tail = g.tail[len(g.tail)-40:]
				}
			}
			if hit {
				close(g.changed)
				g.changed = make(chan struct{})
			}
			g.mu.Unlock()
		}
		_ = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(g.Stop)
	return g
}

// Stop kills the pipeline (idempotent).
func (g *Gst) Stop() {
	select {
	case <-g.done:
		return
	default:
	}
	KillGroup(g.cmd)
	<-g.done
}

// Count is how many buffers sink got so far.
func (g *Gst) Count(sink string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[sink]
}

// Output is the pipeline's last lines other than buffer messages.
func (g *Gst) Output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.tail, "\n")
}

// WaitBuffers waits until sink got n buffers; timeout only guards against
// a hang. A pipeline that ends first fails the test with what it said.
func (g *Gst) WaitBuffers(t testing.TB, sink string, n int, timeout time.Duration) {
	t.Helper()
	guard := time.NewTimer(timeout)
	defer guard.Stop()
	for {
		g.mu.Lock()
		got, changed := g.counts[sink], g.changed
		g.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-g.done:
			t.Fatalf("pipeline exited with %d of %d buffers at %s:\n%s", g.Count(sink), n, sink, g.Output())
		case <-guard.C:
			t.Fatalf("%d of %d buffers at %s after %s; pipeline said:\n%s", g.Count(sink), n, sink, timeout, g.Output())
		}
	}
}

// WaitBound waits until something holds each UDP port on 127.0.0.1 (the
// pipeline's udpsrc elements): what is sent there before is lost. A
// pipeline that exits first (its bind failed) fails the test with what it
// said.
func (g *Gst) WaitBound(t testing.TB, ports ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range ports {
		for {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			if err != nil {
				break
			}
			c.Close()
			select {
			case <-g.done:
				t.Fatalf("pipeline exited before binding UDP port %d:\n%s", port, g.Output())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing bound UDP port %d within 30s; pipeline said:\n%s", port, g.Output())
			}
		}
	}
}

// UDPPorts hands out UDP ports from a range a test package reserved for
// itself (so they cannot collide with other packages' sockets running at
// the same time), each checked free on loopback when handed out.
type UDPPorts struct {
	mu     sync.Mutex
	lo, hi int
	next   int
}

// NewUDPPorts hands out ports lo..hi, round robin.
func NewUDPPorts(lo, hi int) *UDPPorts {
	return &UDPPorts{lo: lo, hi: hi, next: lo}
}

// Take returns a port free right now.
func (u *UDPPorts) Take(t testing.TB) int {
	t.Helper()
	c := u.bind(t)
	c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// String is the range, as gw's --port-range takes it.
func (u *UDPPorts) String() string { return fmt.Sprintf("%d-%d", u.lo, u.hi) }

// Listen binds a UDP socket on 127.0.0.1 at the next free port of the
// range, closed when the test ends.
func (u *UDPPorts) Listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c := u.bind(t)
	t.Cleanup(func() { c.Close() })
	return c
}

// bind binds the next free port of the range, round robin.
func (u *UDPPorts) bind(t testing.TB) *net.UDPConn {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for range u.hi - u.lo + 1 {
		p := u.next
		if u.next++; u.next > u.hi {
			u.next = u.lo
		}
		if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}); err == nil {
			return c
		}
	}
	t.Fatalf("no free UDP port in %d-%d", u.lo, u.hi)
	return nil
}
