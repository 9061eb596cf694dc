package controlplane

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// browserPage serves a page with the PeerJS client (from the pinned npm
// package) that registers at gw's signaling server as id, with the fake
// camera and microphone as window.local.
func browserPage(t *testing.T, e *testEnv, id string) *gwtest.Browser {
	t.Helper()
	lib, err := os.ReadFile(filepath.Join(gwtest.NPMDir(t), "node_modules", "peerjs", "dist", "peerjs.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	_, sigPort, _ := net.SplitHostPort(e.sigAddr)
	page := fmt.Sprintf(`<!doctype html><title>gw media test</title><script src="/peerjs.min.js"></script>
<script>
window.log = [];
window.peer = new Peer(%q, {host: "127.0.0.1", port: %s, path: "/", key: "peerjs", config: {iceServers: []}, debug: 1});
peer.on("open", () => { window.opened = true; });
peer.on("error", (e) => log.push("peer error: " + e.type + " " + e));
window.ready = navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240}, audio: true}).then(s => { window.local = s; });
window.watch = (c) => {
  window.call = c;
  c.on("stream", (s) => { window.remote = s; });
  c.on("close", () => { window.hungUp = true; });
  c.on("error", (e) => log.push("call error: " + e));
};
peer.on("call", (c) => { window.incoming = c; window.watch(c); c.answer(window.local); });
// inbound decoding and outbound sending, by kind, from getStats.
window.rtpStats = async () => {
  const out = {};
  if (!window.call || !window.call.peerConnection) return out;
  const stats = await window.call.peerConnection.getStats();
  const codecs = {};
  stats.forEach(s => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  stats.forEach(s => {
    if (s.type === "inbound-rtp") out["in_" + s.kind] = {frames: s.framesDecoded || 0, packets: s.packetsReceived || 0, codec: codecs[s.codecId] || ""};
    if (s.type === "outbound-rtp") out["out_" + s.kind] = {packets: s.packetsSent || 0, codec: codecs[s.codecId] || ""};
    if (s.type === "transport" && s.srtpCipher) out.srtpCipher = s.srtpCipher;
  });
  return out;
};
</script>`, id, sigPort)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/peerjs.min.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(lib)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	b := gwtest.StartBrowser(t)
	b.Navigate(t, srv.URL)
	b.WaitJS(t, "window.opened && window.local", 30*time.Second, "JSON.stringify(window.log)")
	return b
}

// waitDecoded waits until the browser decoded frames of kind (video) or
// received packets (audio) with the given codec.
func waitBrowserReceives(t *testing.T, b *gwtest.Browser, codec string) {
	t.Helper()
	b.WaitJS(t, `(async () => { const s = await rtpStats(); return s.in_video && s.in_video.frames > 10 && s.in_video.codec === "video/`+codec+`" && s.in_audio && s.in_audio.packets > 20; })()`,
		60*time.Second, `rtpStats().then(JSON.stringify)`)
}

// gw calls a PeerJS browser: the browser answers with its camera; GStreamer
// pictures reach the browser's decoder and the browser's camera reaches
// GStreamer's; gw's hang-up closes the browser's call.
func TestMediaBrowserAnswersGwCall(t *testing.T) {
	gwtest.RequireGStreamer(t, "videotestsrc", "vp8enc", "rtpvp8pay", "rtpvp8depay", "vp8dec", "opusenc", "rtpopuspay", "rtpopusdepay", "opusdec")
	e := newTestEnv(t)
	b := browserPage(t, e, "browsercallee")
	p := e.c.CreatePeer("gwcaller")
	vid, vport := openMedia(t, e.c, true)
	aid, aport := openMedia(t, e.c, false)
	videoOut, audioOut := appPorts.Take(t), appPorts.Take(t)
	recv := gwtest.StartGst(t, fmt.Sprintf(
		"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96 ! "+
			"rtpjitterbuffer latency=100 ! rtpvp8depay ! vp8dec ! fakesink name=video silent=false sync=false "+
			"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111 ! "+
			"rtpjitterbuffer latency=100 ! rtpopusdepay ! opusdec ! fakesink name=audio silent=false sync=false",
		videoOut, audioOut), "video", "audio")
	recv.WaitBound(t, videoOut, audioOut)
	r := e.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": p.ID, "token": p.Token, "target_id": "browsercallee",
		"constraints": map[string]any{
			"video": true, "audio": true,
			"video_params": map[string]any{"band_width": 1000, "codec": "VP8", "media_id": vid, "payload_type": 96},
			"audio_params": map[string]any{"band_width": 64, "codec": "OPUS", "media_id": aid, "payload_type": 111},
			"metadata":     map[string]any{"camera": "gw"},
		},
		"redirect_params": map[string]any{
			"video": map[string]any{"ip_v4": "127.0.0.1", "port": videoOut},
			"audio": map[string]any{"ip_v4": "127.0.0.1", "port": audioOut},
		},
	}).Map(t)
	mc := r["params"].(map[string]any)["media_connection_id"].(string)
	e.c.WaitEvent(mcPath(mc, "/events"), "READY", 30*time.Second)
	gwtest.StartGst(t, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc deadline=1 keyframe-max-dist=15 ! rtpvp8pay pt=96 ! udpsink host=127.0.0.1 port=%d "+
			"audiotestsrc is-live=true ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port=%d", vport, aport))
	if md := gwtest.Eval[string](t, b, "JSON.stringify(window.incoming.metadata)"); md != `{"camera":"gw"}` {
		t.Fatalf("browser sees metadata %s", md)
	}
	waitBrowserReceives(t, b, "VP8")
	// gw offers AEAD-GCM first; a browser takes it.
	if c := gwtest.Eval[string](t, b, "rtpStats().then(s => s.srtpCipher || '')"); c != "SRTP_AEAD_AES_128_GCM" {
		t.Errorf("SRTP profile %q, want SRTP_AEAD_AES_128_GCM", c)
	}
	recv.WaitBuffers(t, "video", 20, 60*time.Second)
	recv.WaitBuffers(t, "audio", 20, 60*time.Second)
	e.c.Expect(204, "DELETE", mcPath(mc, ""), nil)
	b.WaitJS(t, "window.hungUp", 30*time.Second, "JSON.stringify(window.log)")
}

// A PeerJS browser calls gw: the call arrives as CALL with its metadata;
// the app answers with H.264, which the browser decodes, and receives the
// browser's camera in H.264; the browser's hang-up fires CLOSE at gw.
func TestMediaBrowserCallsGw(t *testing.T) {
	gwtest.RequireGStreamer(t, "videotestsrc", "x264enc", "rtph264pay", "rtph264depay", "h264parse", "avdec_h264", "opusenc", "rtpopuspay")
	e := newTestEnv(t)
	p := e.c.CreatePeer("gwcallee")
	b := browserPage(t, e, "browsercaller")
	gwtest.Eval[bool](t, b, `(() => { watch(peer.call("gwcallee", window.local, {metadata: {hello: "gw"}})); return true; })()`)
	ev := e.c.WaitEvent(e.c.PeerEvents(p), "CALL", 30*time.Second)
	mc := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	st := e.c.Expect(200, "GET", mcPath(mc, "/status"), nil).Map(t)
	if st["remote_id"] != "browsercaller" || st["metadata"].(map[string]any)["hello"] != "gw" {
		t.Fatalf("status %v", st)
	}
	vid, vport := openMedia(t, e.c, true)
	aid, aport := openMedia(t, e.c, false)
	videoOut := appPorts.Take(t)
	recv := gwtest.StartGst(t, fmt.Sprintf(
		"udpsrc address=127.0.0.1 port=%d caps=application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=100 ! "+
			"rtpjitterbuffer latency=100 ! rtph264depay ! h264parse ! avdec_h264 ! fakesink name=video silent=false sync=false", videoOut), "video")
	recv.WaitBound(t, videoOut)
	e.c.Expect(202, "POST", mcPath(mc, "/answer"), map[string]any{
		"constraints": map[string]any{
			"video": true, "audio": true,
			"video_params": map[string]any{"band_width": 1000, "codec": "H264", "media_id": vid, "payload_type": 100},
			"audio_params": map[string]any{"band_width": 64, "codec": "OPUS", "media_id": aid, "payload_type": 111},
		},
		"redirect_params": map[string]any{"video": map[string]any{"ip_v4": "127.0.0.1", "port": videoOut}},
	})
	e.c.WaitEvent(mcPath(mc, "/events"), "READY", 30*time.Second)
	gwtest.StartGst(t, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! "+
			"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=100 ! udpsink host=127.0.0.1 port=%d "+
			"audiotestsrc is-live=true ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! udpsink host=127.0.0.1 port=%d", vport, aport))
	waitBrowserReceives(t, b, "H264")
	recv.WaitBuffers(t, "video", 20, 60*time.Second)
	// PLI from the app reaches the browser (it answers with a key frame;
	// here it must just be accepted).
	e.c.Expect(201, "POST", mcPath(mc, "/pli"), map[string]any{"ip_v4": "127.0.0.1", "port": videoOut})
	gwtest.Eval[bool](t, b, "(() => { window.call.close(); return true; })()")
	e.c.WaitEvent(mcPath(mc, "/events"), "CLOSE", 30*time.Second, "STREAM")
}
