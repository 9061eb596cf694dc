package controlplane

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// twoProcesses runs two gw processes; the second's peers register at the
// first's embedded signaling server, as a second machine would.
func twoProcesses(t *testing.T) (*gwtest.Process, *gwtest.Process) {
	t.Helper()
	a := gwtest.Start(t, "--event-timeout", "1s", "--port-range", "26000-26499")
	b := gwtest.Start(t, "--event-timeout", "1s", "--port-range", "26500-26999", "--signaling-addr", "off", "--signaling-url", a.SignalingURL)
	return a, b
}

// The first test: two gw processes, synthetic RTP both ways with
// the payload types each app asked for and payloads intact, RTCP both ways,
// PLI to the sender's RTCP port, hang-up seen on both sides.
func TestMediaTwoProcesses(t *testing.T) {
	a, b := twoProcesses(t)
	alice := newSide(t, a.Client, "procalice", 100, 111)
	bob := newSide(t, b.Client, "procbob", 123, 96)
	callerMC, calleeMC := call(t, alice, bob, map[string]any{"from": "process a"})
	bobSeesV, _ := exchangeRTP(t, alice, bob, "p-a2b")
	exchangeRTP(t, bob, alice, "p-b2a")
	checkRTCPAndPLI(t, alice, bob, callerMC, calleeMC, bobSeesV)
	bob.c.Expect(204, "DELETE", mcPath(calleeMC, ""), nil)
	bob.c.WaitEvent(mcPath(calleeMC, "/events"), "CLOSE", 10*time.Second, "STREAM")
	alice.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
	for _, s := range []*side{alice, bob} {
		for _, path := range []string{"/media/" + s.videoID, "/media/rtcp/" + s.vrtcpID} {
			if r := s.c.Do("DELETE", path, nil); r.Status != 404 {
				t.Errorf("DELETE %s after the call: %d", path, r.Status)
			}
		}
	}
}

// requireGStreamer fails the test (these tests must run) if an element is
// missing, naming the Debian package that has it.
func requireGStreamer(t *testing.T, elements ...string) {
	t.Helper()
	if _, err := exec.LookPath("gst-launch-1.0"); err != nil {
		t.Fatalf("gst-launch-1.0 not found (apt-get install gstreamer1.0-tools; .ci/run does): %v", err)
	}
	pkg := map[string]string{
		"x264enc": "gstreamer1.0-plugins-ugly", "avdec_h264": "gstreamer1.0-libav",
		"opusenc": "gstreamer1.0-plugins-base", "opusdec": "gstreamer1.0-plugins-base",
	}
	for _, el := range elements {
		if err := exec.Command("gst-inspect-1.0", "--exists", el).Run(); err != nil {
			p := pkg[el]
			if p == "" {
				p = "gstreamer1.0-plugins-good"
			}
			t.Fatalf("GStreamer element %s is missing (apt-get install %s; .ci/run does)", el, p)
		}
	}
}

// gstPipeline is a gst-launch-1.0 process of a test.
type gstPipeline struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder
	// frames counts buffers reaching the sinks named in counted.
	frames map[string]int
	cond   *sync.Cond
}

// startGst runs a pipeline. Sinks named in counted must be fakesinks with
// silent=false: with -v, gst-launch prints a line for every buffer they
// get, which is how decoded frames are counted.
func startGst(t *testing.T, pipeline string, counted ...string) *gstPipeline {
	t.Helper()
	g := &gstPipeline{done: make(chan struct{}), frames: map[string]int{}}
	g.cond = sync.NewCond(&g.mu)
	// -q would also silence the per-buffer lines.
	flag := "-q"
	if len(counted) > 0 {
		flag = "-v"
	}
	args := append([]string{flag}, strings.Fields(pipeline)...)
	g.cmd = exec.Command("gst-launch-1.0", args...)
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stderr = g.cmd.Stdout
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("gst-launch-1.0: %v", err)
	}
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			if g.out.Len() < 1<<16 {
				g.out.WriteString(line + "\n")
			}
			for _, name := range counted {
				if strings.Contains(line, "("+name+":sink)") && strings.Contains(line, "chain") {
					g.frames[name]++
				}
			}
			g.cond.Broadcast()
			g.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
		_ = g.cmd.Wait()
	}()
	t.Cleanup(g.stop)
	return g
}

func (g *gstPipeline) stop() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Kill()
	<-g.done
}

// waitFrames waits until sink counted n buffers; timeout is a hang guard.
func (g *gstPipeline) waitFrames(t *testing.T, sink string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer timer.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.frames[sink] < n {
		select {
		case <-g.done:
			t.Fatalf("pipeline ended with %d frames at %s:\n%s", g.frames[sink], sink, g.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d frames decoded at %s within %s; pipeline said:\n%s", g.frames[sink], n, sink, timeout, g.out.String())
		}
		g.cond.Wait()
	}
}

// waitBound waits until something (a pipeline's udpsrc) holds UDP port on
// loopback: what arrives before is lost, and a browser sends its only key
// frame right after connecting.
func waitBound(t *testing.T, ports ...int) {
	t.Helper()
	for _, port := range ports {
		waitFor(t, fmt.Sprintf("UDP port %d bound", port), 30*time.Second, func() bool {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
	}
}

// freeUDPPort is a UDP port free on loopback now, for a pipeline to bind.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Real encoders through two gw processes: GStreamer encodes H.264 (x264),
// VP8 and Opus and sends RTP to gw A's media ports, the way the original
// gateway's samples do; gw A calls gw B; at B GStreamer depayloads and
// decodes what arrives, and decoded frames are counted.
func TestMediaGStreamerThroughTwoGateways(t *testing.T) {
	requireGStreamer(t, "videotestsrc", "audiotestsrc", "x264enc", "rtph264pay", "rtph264depay", "h264parse", "avdec_h264",
		"vp8enc", "rtpvp8pay", "rtpvp8depay", "vp8dec", "opusenc", "rtpopuspay", "rtpopusdepay", "opusdec",
		"udpsrc", "udpsink", "rtpjitterbuffer", "fakesink")
	a, b := twoProcesses(t)
	caller := a.Client.CreatePeer("gstcaller")
	callee := b.Client.CreatePeer("gstcallee")
	for _, tc := range []struct {
		codec, enc, pay, depay, dec string
		callerPT, calleePT          int
	}{
		{"H264", "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=500 ! video/x-h264,profile=constrained-baseline",
			"rtph264pay config-interval=-1", "rtph264depay ! h264parse", "avdec_h264", 100, 102},
		{"VP8", "vp8enc deadline=1 keyframe-max-dist=15 target-bitrate=500000", "rtpvp8pay", "rtpvp8depay", "vp8dec", 96, 120},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			vid, vport := openMedia(t, a.Client, true)
			aid, aport := openMedia(t, a.Client, false)
			videoOut, audioOut := freeUDPPort(t), freeUDPPort(t)
			r := a.Client.Expect(202, "POST", "/media/connections", map[string]any{
				"peer_id": caller.ID, "token": caller.Token, "target_id": callee.ID,
				"constraints": map[string]any{
					"video": true, "audio": true, "videoReceiveEnabled": false, "audioReceiveEnabled": false,
					"video_params": map[string]any{"band_width": 1000, "codec": tc.codec, "media_id": vid, "payload_type": tc.callerPT, "sampling_rate": 90000},
					"audio_params": map[string]any{"band_width": 64, "codec": "OPUS", "media_id": aid, "payload_type": 111, "sampling_rate": 48000},
				},
			}).Map(t)
			callerMC := r["params"].(map[string]any)["media_connection_id"].(string)
			ev := b.Client.WaitEvent(b.Client.PeerEvents(callee), "CALL", 20*time.Second)
			calleeMC := ev["call_params"].(map[string]any)["media_connection_id"].(string)
			b.Client.Expect(202, "POST", mcPath(calleeMC, "/answer"), map[string]any{
				"constraints": map[string]any{
					"video": false, "audio": false,
					"video_params": map[string]any{"band_width": 0, "codec": tc.codec, "payload_type": tc.calleePT},
					"audio_params": map[string]any{"band_width": 0, "codec": "OPUS", "payload_type": 109},
				},
				"redirect_params": map[string]any{
					"video": map[string]any{"ip_v4": "127.0.0.1", "port": videoOut},
					"audio": map[string]any{"ip_v4": "127.0.0.1", "port": audioOut},
				},
			})
			// The receiving app: what the original gateway's callee sample
			// runs, with the payload types it asked for.
			recv := startGst(t, fmt.Sprintf(
				"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=video,encoding-name=%s,clock-rate=90000,payload=%d ! "+
					"rtpjitterbuffer latency=100 ! %s ! %s ! fakesink name=video silent=false sync=false "+
					"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=109 ! "+
					"rtpjitterbuffer latency=100 ! rtpopusdepay ! opusdec ! fakesink name=audio silent=false sync=false",
				videoOut, tc.codec, tc.calleePT, tc.depay, tc.dec, audioOut), "video", "audio")
			waitBound(t, videoOut, audioOut)
			a.Client.WaitEvent(mcPath(callerMC, "/events"), "READY", 20*time.Second)
			// The sending app: the caller sample's pipeline.
			startGst(t, fmt.Sprintf(
				"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! %s ! %s pt=%d ! udpsink host=127.0.0.1 port=%d "+
					"audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port=%d",
				tc.enc, tc.pay, tc.callerPT, vport, aport))
			recv.waitFrames(t, "video", 30, 60*time.Second)
			recv.waitFrames(t, "audio", 50, 60*time.Second)
			b.Client.WaitEvent(mcPath(calleeMC, "/events"), "STREAM", 10*time.Second, "READY")
			a.Client.Expect(204, "DELETE", mcPath(callerMC, ""), nil)
			b.Client.WaitEvent(mcPath(calleeMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
		})
	}
}

// The remote gw dies without a word (SIGKILL): no close_notify, no data
// channel closing; ICE failing is what ends the call, with CLOSE.
func TestMediaRemoteProcessDies(t *testing.T) {
	a, b := twoProcesses(t)
	alice := newSide(t, a.Client, "diealice", 100, 111)
	bob := newSide(t, b.Client, "diebob", 100, 111)
	callerMC, _ := call(t, alice, bob, nil)
	exchangeRTP(t, alice, bob, "before-kill")
	start := time.Now()
	b.Signal(t, syscall.SIGKILL, 10*time.Second)
	alice.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 90*time.Second, "STREAM")
	t.Logf("CLOSE %s after the remote died", time.Since(start).Round(time.Second))
	waitFor(t, "ports released", 10*time.Second, func() bool {
		r := alice.c.Do("DELETE", "/media/"+alice.videoID, nil)
		return r.Status == 404
	})
}
