package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gw-project/gw/internal/gwtest"
)

// viewerMedia is what the page shows of the call.
type viewerMedia struct {
	Muted, Paused   bool
	Audio           int // audio tracks received
	Detail, Shown   string
	AudioPackets    int
	VideoCodec      string
	UnmuteButtonOff bool
}

// The viewer page gw's signaling server serves, used as a person would:
// examples/camera.py, run with --gst, answers with GStreamer's test
// picture and sound. With gw's own server the browser opens
// /?peer=<id> and the page starts by itself; with the official PeerJS
// server the page is told where it is (&signaling=), and the test types
// the peer id and clicks Watch. The page reaches "connected", its video
// element shows frames and it plays the sound unmuted. Its data panel
// opens a data channel, whose messages camera.py has gw deliver to a test
// app, and shows the app's reply. When camera.py stops (Ctrl-C), the page
// says the call and the data channel ended. The page sends its own
// (fake) camera too, which camera.py has gw deliver to a test port.
func TestViewer(t *testing.T) {
	gwtest.RequireGStreamer(t, "videotestsrc", "audiotestsrc", "audioconvert", "audioresample", "x264enc", "h264parse",
		"rtph264pay", "opusenc", "rtpopuspay", "udpsink")
	requirePython(t)
	eachSignaling(t, func(t *testing.T, e *env) {
		app := newUDPApp(t)
		// The page also sends its (fake) camera: camera.py has gw deliver
		// it here.
		backVideo := newUDPApp(t)
		cam := startCamera(t, e.gw, "--id", "viewcam", "--gst", "--audio",
			"--width", "320", "--height", "240", "--fps", "15", "--kbps", "300",
			"--data-to", fmt.Sprintf("127.0.0.1:%d", app.port()),
			"--recv-video", fmt.Sprintf("127.0.0.1:%d", backVideo.port()))
		cam.waitLine(t, 0, 30*time.Second, "peer viewcam open")

		b := gwtest.StartBrowser(t)
		ser, reply, shown := "binary", "hello browser", "hello browser"
		if e.official == nil {
			b.Navigate(t, e.page+"?peer=viewcam&send=1&data="+ser)
		} else {
			// With json, a datagram holding JSON text reaches the page as
			// that value.
			ser, reply, shown = "json", `{"from": "camera"}`, `{"from":"camera"}`
			b.Navigate(t, e.page+"?send=1&data="+ser+e.signalingParam())
			b.Run(t, chromedp.SendKeys(chromedp.ID("target"), "viewcam"), chromedp.Click(chromedp.ID("watch")))
		}
		status := `gwViewer.status + ": " + gwViewer.detail`
		b.WaitJS(t, `gwViewer.status === "connected"`, 90*time.Second, status)
		b.WaitJS(t, `document.getElementById("remote").getVideoPlaybackQuality().totalVideoFrames > 30`, 60*time.Second,
			`JSON.stringify(document.getElementById("remote").getVideoPlaybackQuality())`)
		page := gwtest.Eval[viewerMedia](t, b, `(() => {
			const v = document.getElementById("remote");
			return { Muted: v.muted, Paused: v.paused, Audio: v.srcObject.getAudioTracks().length,
				Detail: gwViewer.detail, Shown: document.getElementById("status").textContent,
				AudioPackets: gwViewer.media.audio ? gwViewer.media.audio.packets : 0,
				VideoCodec: gwViewer.media.video ? gwViewer.media.video.codec : "",
				UnmuteButtonOff: document.getElementById("unmute").hidden };
		})()`)
		if page.Muted || page.Paused || page.Audio != 1 || page.AudioPackets == 0 || !page.UnmuteButtonOff {
			t.Errorf("the page does not play the sound: %+v", page)
		}
		if page.VideoCodec != "H264" || !strings.Contains(page.Detail, "viewcam") || !strings.Contains(page.Detail, "video and sound") || page.Shown != page.Detail {
			t.Errorf("the page says %q (shows %q), codec %q", page.Detail, page.Shown, page.VideoCodec)
		}
		cam.waitLine(t, 0, 10*time.Second, "connected to") // camera.py saw READY
		// The page's camera reaches camera.py's redirect as RTP.
		for _, pkt := range backVideo.wait(t, 30, 30*time.Second) {
			if len(pkt) < 12 || pkt[0]>>6 != 2 {
				t.Fatalf("not RTP from the page's camera: % x", pkt[:min(len(pkt), 12)])
			}
		}

		// The data panel.
		b.Run(t, chromedp.Click(chromedp.ID("connect-data")))
		b.WaitJS(t, `gwViewer.dataStatus === "open"`, 30*time.Second, `gwViewer.dataStatus + ": " + gwViewer.dataDetail`)
		line, _ := cam.waitLine(t, 0, 30*time.Second, "data connection", "send yours to")
		addr := afterWord(t, line, "send yours to")
		port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		if err != nil {
			t.Fatalf("data port in %q: %v", line, err)
		}
		b.Run(t, chromedp.SendKeys(chromedp.ID("message"), "hello gw"), chromedp.Click(chromedp.ID("send-button")))
		if got := app.wait(t, 1, 30*time.Second)[0]; string(got) != "hello gw" {
			t.Errorf("the app got %q from the page", got)
		}
		app.send(t, port, []byte(reply))
		b.WaitJS(t, fmt.Sprintf(`gwViewer.log.some((e) => e.dir === "in" && e.text === %q)`, shown), 30*time.Second, "JSON.stringify(gwViewer.log)")

		// camera.py stops: it deletes its peer, which ends the call and the
		// data connection, and the page says so.
		cam.interrupt(t)
		b.WaitJS(t, `gwViewer.status === "closed" && gwViewer.dataStatus === "closed"`, 30*time.Second,
			`[gwViewer.status, gwViewer.detail, gwViewer.dataStatus, gwViewer.dataDetail].join(" | ")`)
	})
}
