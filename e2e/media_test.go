package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

var gstElements = []string{
	"videotestsrc", "audiotestsrc", "audioconvert", "audioresample", "x264enc", "vp8enc", "opusenc",
	"rtph264pay", "rtpvp8pay", "rtpopuspay", "rtph264depay", "rtpvp8depay", "rtpopusdepay",
	"h264parse", "avdec_h264", "vp8dec", "opusdec", "rtpjitterbuffer", "udpsrc", "udpsink", "fakesink",
}

// waitBrowserDecodes waits until the browser's call decodes video frames
// in codec (H264, VP8) and receives audio samples.
func waitBrowserDecodes(t *testing.T, b *gwtest.Browser, codec string, frames, samples int) browserStats {
	t.Helper()
	b.WaitJS(t, fmt.Sprintf(`e2e.stats().then((s) => s.in_video && s.in_video.codec === "video/%s" && s.in_video.frames > %d && s.in_audio && s.in_audio.samples > %d)`,
		codec, frames, samples), 90*time.Second, "e2e.stats().then(JSON.stringify)")
	return gwtest.Eval[browserStats](t, b, "e2e.stats()")
}

// The first test (and, under official-peerjs, its fourth): a
// PeerJS browser calls a gw peer with its fake camera and microphone. The
// app behind the peer is examples/camera.py: it answers with its test
// picture and tone, and has gw redirect the browser's video and audio to
// UDP ports where GStreamer decodes them. The browser decodes camera.py's
// picture too. With H.264 camera.py runs its pipeline itself (--gst); with
// VP8 the test runs the pipeline camera.py prints, sending to the fixed
// ports camera.py forwards from. Then the browser hangs up, camera.py sees
// the call end, and on Ctrl-C it deletes its peer.
func TestBrowserCallsGw(t *testing.T) {
	gwtest.RequireGStreamer(t, gstElements...)
	requirePython(t)
	eachSignaling(t, func(t *testing.T, e *env) {
		b := e.browser(t, "e2ecaller")
		for _, tc := range []struct {
			codec, decode string
			gst           bool
		}{
			{"H264", "rtph264depay ! h264parse ! avdec_h264", true},
			{"VP8", "rtpvp8depay ! vp8dec", false},
		} {
			t.Run(tc.codec, func(t *testing.T) {
				id := "cam-" + strings.ToLower(tc.codec)
				const videoPT, audioPT = 100, 109
				vOut, aOut := testPorts.Take(t), testPorts.Take(t)
				recv := gwtest.StartGst(t, fmt.Sprintf(
					"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=video,encoding-name=%s,clock-rate=90000,payload=%d "+
						"! rtpjitterbuffer latency=100 ! %s ! fakesink name=video silent=false sync=false "+
						"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=%d "+
						"! rtpjitterbuffer latency=100 ! rtpopusdepay ! opusdec ! fakesink name=audio silent=false sync=false",
					vOut, tc.codec, videoPT, tc.decode, aOut, audioPT), "video", "audio")
				recv.WaitBound(t, vOut, aOut)
				args := []string{"--id", id, "--codec", tc.codec, "--audio",
					"--video-pt", strconv.Itoa(videoPT), "--audio-pt", strconv.Itoa(audioPT),
					"--width", "320", "--height", "240", "--fps", "15", "--kbps", "300",
					"--recv-video", fmt.Sprintf("127.0.0.1:%d", vOut), "--recv-audio", fmt.Sprintf("127.0.0.1:%d", aOut)}
				if tc.gst {
					args = append(args, "--gst")
				} else {
					args = append(args, "--video-in", strconv.Itoa(testPorts.Take(t)), "--audio-in", strconv.Itoa(testPorts.Take(t)))
				}
				cam := startCamera(t, e.gw, args...)
				_, at := cam.waitLine(t, 0, 30*time.Second, "peer "+id+" open")
				if !tc.gst {
					line, _ := cam.waitLine(t, 0, time.Second, "  gst-launch-1.0 ")
					gwtest.StartGst(t, afterWord(t, line, "gst-launch-1.0"))
				}

				gwtest.Eval[bool](t, b, fmt.Sprintf("e2e.callWithCamera(%q)", id))
				cam.waitLine(t, at, 30*time.Second, "answered", "to e2ecaller")
				recv.WaitBuffers(t, "video", 30, 90*time.Second)
				recv.WaitBuffers(t, "audio", 50, 90*time.Second)
				st := waitBrowserDecodes(t, b, tc.codec, 20, 24000)
				if out := st["out_video"]; out.Codec != "video/"+tc.codec {
					t.Errorf("browser sends video in %q, want %s", out.Codec, tc.codec)
				}

				gwtest.Eval[bool](t, b, "(e2e.call.conn.close(), true)")
				cam.waitLine(t, at, 30*time.Second, "call mc-", "with e2ecaller closed")
				cam.interrupt(t)
				cam.waitLine(t, at, time.Second, "peer "+id+" deleted")
				// The id is free at the signaling server again.
				e.gw.Client.DeletePeer(e.gw.Client.CreatePeer(id))
			})
		}
	})
}

// The second test (and, under official-peerjs, its fourth): a gw
// peer calls a PeerJS browser with GStreamer's test picture in H.264 and
// in VP8, and Opus sound; the browser answers without a camera, and its
// getStats shows video frames decoded and audio samples received. gw's
// hang-up closes the browser's call.
func TestGwCallsBrowser(t *testing.T) {
	gwtest.RequireGStreamer(t, gstElements...)
	eachSignaling(t, func(t *testing.T, e *env) {
		b := e.browser(t, "e2ecallee")
		for _, tc := range []struct {
			codec, encode string
		}{
			{"H264", "x264enc tune=zerolatency speed-preset=ultrafast bitrate=300 key-int-max=15 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1"},
			{"VP8", "vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=15 ! rtpvp8pay"},
		} {
			t.Run(tc.codec, func(t *testing.T) {
				c := e.gw.Client
				p := c.CreatePeer("gwcaller-" + strings.ToLower(tc.codec))
				defer c.DeletePeer(p)
				vid, vport := openMedia(t, c, true)
				aid, aport := openMedia(t, c, false)
				r := c.Expect(202, "POST", "/media/connections", map[string]any{
					"peer_id": p.ID, "token": p.Token, "target_id": "e2ecallee",
					"constraints": map[string]any{
						"video": true, "videoReceiveEnabled": false, "audio": true, "audioReceiveEnabled": false,
						"video_params": map[string]any{"band_width": 0, "codec": tc.codec, "media_id": vid, "payload_type": 96, "sampling_rate": 90000},
						"audio_params": map[string]any{"band_width": 0, "codec": "OPUS", "media_id": aid, "payload_type": 111, "sampling_rate": 48000},
					},
				}).Map(t)
				mc := r["params"].(map[string]any)["media_connection_id"].(string)
				gwtest.StartGst(t, fmt.Sprintf(
					"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! %s pt=96 ! udpsink host=127.0.0.1 port=%d "+
						"audiotestsrc is-live=true wave=ticks ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port=%d",
					tc.encode, vport, aport))
				c.WaitEvent("/media/connections/"+mc+"/events", "READY", 30*time.Second)
				// 30 frames, and a second of sound at 48 kHz.
				waitBrowserDecodes(t, b, tc.codec, 30, 48000)

				c.Expect(204, "DELETE", "/media/connections/"+mc, nil)
				b.WaitJS(t, "e2e.call.closed", 30*time.Second, "JSON.stringify(e2e.log)")
			})
		}
	})
}
