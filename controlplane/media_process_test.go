package controlplane

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

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

// appPorts are the UDP ports the tests' receiving apps (GStreamer) bind:
// a range no other test package uses, below the kernel's ephemeral range,
// so that no socket another process opens meanwhile can take a port
// between its hand-out and the pipeline's bind.
var appPorts = gwtest.NewUDPPorts(27200, 27499)

// Real encoders through two gw processes: GStreamer encodes H.264 (x264),
// VP8 and Opus and sends RTP to gw A's media ports, the way the original
// gateway's samples do; gw A calls gw B; at B GStreamer depayloads and
// decodes what arrives, and decoded frames are counted.
func TestMediaGStreamerThroughTwoGateways(t *testing.T) {
	gwtest.RequireGStreamer(t, "videotestsrc", "audiotestsrc", "x264enc", "rtph264pay", "rtph264depay", "h264parse", "avdec_h264",
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
			videoOut, audioOut := appPorts.Take(t), appPorts.Take(t)
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
			recv := gwtest.StartGst(t, fmt.Sprintf(
				"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=video,encoding-name=%s,clock-rate=90000,payload=%d ! "+
					"rtpjitterbuffer latency=100 ! %s ! %s ! fakesink name=video silent=false sync=false "+
					"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=109 ! "+
					"rtpjitterbuffer latency=100 ! rtpopusdepay ! opusdec ! fakesink name=audio silent=false sync=false",
				videoOut, tc.codec, tc.calleePT, tc.depay, tc.dec, audioOut), "video", "audio")
			recv.WaitBound(t, videoOut, audioOut)
			a.Client.WaitEvent(mcPath(callerMC, "/events"), "READY", 20*time.Second)
			// The sending app: the caller sample's pipeline.
			gwtest.StartGst(t, fmt.Sprintf(
				"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! %s ! %s pt=%d ! udpsink host=127.0.0.1 port=%d "+
					"audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port=%d",
				tc.enc, tc.pay, tc.callerPT, vport, aport))
			recv.WaitBuffers(t, "video", 30, 60*time.Second)
			recv.WaitBuffers(t, "audio", 50, 60*time.Second)
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

// Over --dataplane-linger's rate (on by default), a paced stream through
// two gw processes is read on the tick, in batches, and nothing is lost
// or reordered.
func TestMediaTwoProcessesPacedOverLinger(t *testing.T) {
	a, b := twoProcesses(t)
	alice := newSide(t, a.Client, "lingeralice", 100, 111)
	bob := newSide(t, b.Client, "lingerbob", 100, 111)
	call(t, alice, bob, nil)
	exchangeRTP(t, alice, bob, "warm") // the path is up
	_ = bob.videoApp.conn.SetReadBuffer(8 << 20)
	sum0, count0 := batchSizes(t, a)

	// 6,000 packets at 4,000/s, evenly spaced (a timer would wake the
	// sender too late and send them in twos and threes), sent on after the
	// warm-up's sequence numbers.
	const n, first = 6000, 20000
	ssrc := 0x1000 + uint32(alice.videoPT)
	stop, sent := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-sent })
	go func() {
		defer close(sent)
		at := time.Now()
		for k := 0; k < n; k++ {
			for time.Now().Before(at) {
				runtime.Gosched()
			}
			at = at.Add(250 * time.Microsecond)
			select {
			case <-stop:
				return
			default:
			}
			alice.videoApp.send(alice.videoPort, rtpBytes(uint8(alice.videoPT), ssrc, first+k, fmt.Sprintf("paced-%d", k)))
		}
	}()
	buf := make([]byte, 2048)
	next := 0
	for next < n {
		_ = bob.videoApp.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, _, err := bob.videoApp.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("packet %d of %d not relayed: %v", next, n, err)
		}
		var p rtp.Packet
		var k int
		if p.Unmarshal(buf[:l]) != nil || !strings.HasPrefix(string(p.Payload), "paced-") {
			continue // the warm-up's tail
		}
		if _, err := fmt.Sscanf(string(p.Payload), "paced-%d", &k); err != nil || k != next || p.SequenceNumber != uint16(first+k) {
			t.Fatalf("got %q (seq %d), want packet %d", p.Payload, p.SequenceNumber, next)
		}
		next++
	}
	sum1, count1 := batchSizes(t, a)
	if mean := (sum1 - sum0) / (count1 - count0); mean < 2 {
		t.Errorf("gw A read %.0f datagrams in %.0f receive calls (%.1f a call) at 4,000 packets/s, want batches gathered over the linger", sum1-sum0, count1-count0, mean)
	}
}

// batchSizes scrapes the sum and count of gw_dataplane_batch_size (over all
// of g's ports) from its /metrics.
func batchSizes(t *testing.T, g *gwtest.Process) (sum, count float64) {
	t.Helper()
	body := g.Metrics(t)
	found := 0
	for _, line := range strings.Split(string(body), "\n") {
		for name, v := range map[string]*float64{"gw_dataplane_batch_size_sum ": &sum, "gw_dataplane_batch_size_count ": &count} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				if _, err := fmt.Sscan(rest, v); err != nil {
					t.Fatalf("%s%s: %v", name, rest, err)
				}
				found++
			}
		}
	}
	if found != 2 {
		t.Fatalf("no gw_dataplane_batch_size in /metrics:\n%s", body)
	}
	return sum, count
}
