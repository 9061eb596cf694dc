package controlplane

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMediaPortsCreateDelete(t *testing.T) {
	e := newTestEnv(t)
	vid, vport := openMedia(t, e.c, true)
	aid, aport := openMedia(t, e.c, false)
	rid, rport := openRTCP(t, e.c)
	// Ports are handed out lowest first, each a real UDP port of gw.
	if vport == aport || aport == rport {
		t.Fatalf("ports %d %d %d", vport, aport, rport)
	}
	if _, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vport}); err == nil {
		t.Fatalf("port %d is not held by gw", vport)
	}
	// An empty body is fine for rtcp.
	r := e.c.Expect(201, "POST", "/media/rtcp", nil).Map(t)
	rid2 := r["rtcp_id"].(string)
	for _, c := range []struct{ path, field, cmd string }{
		{"/media/" + vid, "media_id", "MEDIA_DELETE"},
		{"/media/" + aid, "media_id", "MEDIA_DELETE"},
		{"/media/rtcp/" + rid, "rtcp_id", "RTCP_DELETE"},
		{"/media/rtcp/" + rid2, "rtcp_id", "RTCP_DELETE"},
	} {
		e.c.Expect(204, "DELETE", c.path, nil)
		r := e.c.Do("DELETE", c.path, nil)
		if r.Status != 404 || r.ErrorField(t) != c.field || r.Map(t)["command_type"] != c.cmd {
			t.Fatalf("second DELETE %s: %d %s", c.path, r.Status, r.Body)
		}
	}
	// The port is free again.
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: vport})
	if err != nil {
		t.Fatalf("port %d not freed: %v", vport, err)
	}
	ln.Close()

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		field, cmd               string
	}{
		{"media empty body", "POST", "/media", ``, 400, "body", "MEDIA_CREATE"},
		{"media no is_video", "POST", "/media", `{}`, 400, "is_video", "MEDIA_CREATE"},
		{"media is_video not boolean", "POST", "/media", `{"is_video":"yes"}`, 400, "is_video", "MEDIA_CREATE"},
		{"rtcp not an object", "POST", "/media/rtcp", `[]`, 400, "body", "RTCP_CREATE"},
		{"delete unknown media", "DELETE", "/media/vi-nope", ``, 404, "media_id", "MEDIA_DELETE"},
		{"delete unknown rtcp", "DELETE", "/media/rtcp/rc-nope", ``, 404, "rtcp_id", "RTCP_DELETE"},
		{"events of unknown", "GET", "/media/connections/mc-nope/events", ``, 404, "media_connection_id", "MEDIA_CONNECTION_EVENTS"},
		{"status of unknown", "GET", "/media/connections/mc-nope/status", ``, 404, "media_connection_id", "MEDIA_CONNECTION_STATUS"},
		{"delete unknown", "DELETE", "/media/connections/mc-nope", ``, 404, "media_connection_id", "MEDIA_CONNECTION_DELETE"},
		{"answer unknown", "POST", "/media/connections/mc-nope/answer", `{"constraints":{"video":false,"audio":false}}`, 404, "media_connection_id", "MEDIA_CONNECTION_ANSWER"},
		{"pli unknown", "POST", "/media/connections/mc-nope/pli", `{"ip_v4":"127.0.0.1","port":1}`, 404, "media_connection_id", "MEDIA_CONNECTION_PLI"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.c.Do(c.method, c.path, body)
			if r.Status != c.status || r.ErrorField(t) != c.field || r.Map(t)["command_type"] != c.cmd {
				t.Fatalf("%d %s, want %d on %s", r.Status, r.Body, c.status, c.field)
			}
		})
	}
	if m, r, c := e.srv.media.counts(); m+r+c != 0 {
		t.Fatalf("left: %d media, %d rtcp, %d connections", m, r, c)
	}
}

// Bad calls get a clear error naming the field, and change nothing: the
// media they named stay free (they can be deleted afterwards).
func TestMediaCallBadInput(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("caller")
	vid, _ := openMedia(t, e.c, true)
	aid, _ := openMedia(t, e.c, false)
	rid, _ := openRTCP(t, e.c)
	video := func(extra map[string]any) map[string]any {
		vp := map[string]any{"band_width": 1000, "codec": "VP8", "media_id": vid}
		for k, v := range extra {
			if v == nil {
				delete(vp, k)
			} else {
				vp[k] = v
			}
		}
		return map[string]any{"video": true, "audio": false, "audioReceiveEnabled": false, "video_params": vp}
	}
	body := func(cons any, extra ...any) map[string]any {
		b := map[string]any{"peer_id": p.ID, "token": p.Token, "target_id": "someone", "constraints": cons}
		for i := 0; i+1 < len(extra); i += 2 {
			b[extra[i].(string)] = extra[i+1]
		}
		return b
	}
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"not JSON", `{"peer_id":`, 400, "body"},
		{"no peer_id", map[string]any{"token": p.Token, "target_id": "x", "constraints": video(nil)}, 400, "peer_id"},
		{"no token", map[string]any{"peer_id": p.ID, "target_id": "x", "constraints": video(nil)}, 400, "token"},
		{"wrong token", body(video(nil), "token", "pt-wrong"), 403, "token"},
		{"unknown peer", body(video(nil), "peer_id", "ghost"), 404, "peer_id"},
		{"no target", map[string]any{"peer_id": p.ID, "token": p.Token, "constraints": video(nil)}, 400, "target_id"},
		{"invalid target", body(video(nil), "target_id", "a/b"), 400, "target_id"},
		{"no constraints", map[string]any{"peer_id": p.ID, "token": p.Token, "target_id": "x"}, 400, "constraints"},
		{"no video flag", body(map[string]any{"audio": false}), 400, "constraints.video"},
		{"video flag not boolean", body(map[string]any{"video": "yes", "audio": false}), 400, "constraints.video"},
		{"no audio flag", body(map[string]any{"video": false}), 400, "constraints.audio"},
		{"nothing at all", body(map[string]any{"video": false, "audio": false, "videoReceiveEnabled": false, "audioReceiveEnabled": false}), 400, "constraints"},
		{"video without params", body(map[string]any{"video": true, "audio": false}), 400, "constraints.video_params"},
		{"no codec", body(video(map[string]any{"codec": nil})), 400, "constraints.video_params.codec"},
		{"unknown codec", body(video(map[string]any{"codec": "H265"})), 400, "constraints.video_params.codec"},
		{"audio codec for video", body(video(map[string]any{"codec": "OPUS"})), 400, "constraints.video_params.codec"},
		{"no media_id", body(video(map[string]any{"media_id": nil})), 400, "constraints.video_params.media_id"},
		{"payload type too big", body(video(map[string]any{"payload_type": 128})), 400, "constraints.video_params.payload_type"},
		{"payload type not integer", body(video(map[string]any{"payload_type": 96.5})), 400, "constraints.video_params.payload_type"},
		{"wrong sampling rate", body(video(map[string]any{"sampling_rate": 8000})), 400, "constraints.video_params.sampling_rate"},
		{"negative band_width", body(video(map[string]any{"band_width": -1})), 400, "constraints.video_params.band_width"},
		{"metadata not an object", body(map[string]any{"video": false, "audio": false, "metadata": "x"}), 400, "constraints.metadata"},
		{"redirect without port", body(video(nil), "redirect_params", map[string]any{"video": map[string]any{"ip_v4": "127.0.0.1"}}), 400, "redirect_params.video.port"},
		{"redirect port out of range", body(video(nil), "redirect_params", map[string]any{"audio_rtcp": map[string]any{"ip_v4": "127.0.0.1", "port": 70000}}), 400, "redirect_params.audio_rtcp.port"},
		{"redirect bad address", body(video(nil), "redirect_params", map[string]any{"video": map[string]any{"ip_v4": "::1", "port": 5}}), 400, "redirect_params.video.ip_v4"},
		{"redirect without address", body(video(nil), "redirect_params", map[string]any{"video": map[string]any{"port": 5}}), 400, "redirect_params.video.ip_v4"},
		{"redirect to IPv6 from IPv4", body(video(nil), "redirect_params", map[string]any{"video": map[string]any{"ip_v6": "::1", "port": 5}}), 400, "redirect_params.video.ip_v4"},
		{"unknown media", body(video(map[string]any{"media_id": "vi-nope"})), 404, "constraints.video_params.media_id"},
		{"audio media as video", body(video(map[string]any{"media_id": aid})), 403, "constraints.video_params.media_id"},
		{"unknown rtcp", body(video(map[string]any{"rtcp_id": "rc-nope"})), 404, "constraints.video_params.rtcp_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.c.Do("POST", "/media/connections", c.body)
			if r.Status != c.status || r.ErrorField(t) != c.field || r.Map(t)["command_type"] != "MEDIA_CONNECTION_CREATE" {
				t.Fatalf("%d %s, want %d on %s", r.Status, r.Body, c.status, c.field)
			}
		})
	}
	if _, _, n := e.srv.media.counts(); n != 0 {
		t.Fatalf("%d connections after bad calls", n)
	}
	// Nothing holds the media: all can go.
	e.c.Expect(204, "DELETE", "/media/"+vid, nil)
	e.c.Expect(204, "DELETE", "/media/"+aid, nil)
	e.c.Expect(204, "DELETE", "/media/rtcp/"+rid, nil)
}

// Answers: only incoming calls, only once, with a codec the caller offered;
// a failed answer leaves the call answerable.
func TestMediaAnswerErrors(t *testing.T) {
	e1, e2 := twoGateways(t)
	alice := newSide(t, e1.c, "alice2", 96, 111)
	alice.videoCodec = "VP8"
	bob := newSide(t, e2.c, "bob2", 96, 111)
	r := alice.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": alice.p.ID, "token": alice.p.Token, "target_id": bob.p.ID, "constraints": alice.constraints(),
	}).Map(t)
	callerMC := r["params"].(map[string]any)["media_connection_id"].(string)
	ev := bob.c.WaitEvent(bob.c.PeerEvents(bob.p), "CALL", 20*time.Second)
	calleeMC := ev["call_params"].(map[string]any)["media_connection_id"].(string)

	if r := alice.c.Do("POST", mcPath(callerMC, "/answer"), map[string]any{"constraints": alice.constraints()}); r.Status != 403 || r.ErrorField(t) != "media_connection_id" {
		t.Fatalf("answering own call: %d %s", r.Status, r.Body)
	}
	// The caller offers VP8 only.
	cons := bob.constraints() // H264
	if r := bob.c.Do("POST", mcPath(calleeMC, "/answer"), map[string]any{"constraints": cons}); r.Status != 400 || r.ErrorField(t) != "constraints.video_params.codec" ||
		!strings.Contains(string(r.Body), "VP8") {
		t.Fatalf("answer with a codec not offered: %d %s", r.Status, r.Body)
	}
	bad := bob.constraints()
	bad["video_params"].(map[string]any)["codec"] = "VP8"
	bad["video_params"].(map[string]any)["media_id"] = bob.audioID
	if r := bob.c.Do("POST", mcPath(calleeMC, "/answer"), map[string]any{"constraints": bad}); r.Status != 403 || r.ErrorField(t) != "constraints.video_params.media_id" {
		t.Fatalf("answer with audio media as video: %d %s", r.Status, r.Body)
	}
	if r := bob.c.Do("POST", mcPath(calleeMC, "/answer"), map[string]any{}); r.Status != 400 || r.ErrorField(t) != "constraints" {
		t.Fatalf("answer without constraints: %d %s", r.Status, r.Body)
	}
	// Still answerable, and still nothing in use.
	if st := bob.c.Expect(200, "GET", mcPath(calleeMC, "/status"), nil).Map(t); st["open"] != false {
		t.Fatalf("status %v", st)
	}
	good := bob.constraints()
	good["video_params"].(map[string]any)["codec"] = "vp8"
	bob.c.Expect(202, "POST", mcPath(calleeMC, "/answer"), map[string]any{"constraints": good, "redirect_params": bob.redirects()})
	if r := bob.c.Do("POST", mcPath(calleeMC, "/answer"), map[string]any{"constraints": good}); r.Status != 403 {
		t.Fatalf("second answer: %d %s", r.Status, r.Body)
	}
	alice.c.WaitEvent(mcPath(callerMC, "/events"), "READY", 20*time.Second)
	exchangeRTP(t, alice, bob, "vp8")
	// The callee hangs up this time.
	bob.c.Expect(204, "DELETE", mcPath(calleeMC, ""), nil)
	alice.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
	// Released media cannot be used again.
	r2 := alice.c.Do("POST", "/media/connections", map[string]any{
		"peer_id": alice.p.ID, "token": alice.p.Token, "target_id": bob.p.ID, "constraints": alice.constraints(),
	})
	if r2.Status != 404 || r2.ErrorField(t) != "constraints.video_params.media_id" {
		t.Fatalf("call with released media: %d %s", r2.Status, r2.Body)
	}
}

// A call to a peer nobody registered fails with ERROR then CLOSE (the
// signaling server's EXPIRE), and releases what it used.
func TestMediaCallToAbsentPeer(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("lonely")
	vid, _ := openMedia(t, e.c, true)
	r := e.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": p.ID, "token": p.Token, "target_id": "nobody",
		"constraints": map[string]any{"video": true, "audio": false, "video_params": map[string]any{"band_width": 0, "codec": "VP8", "media_id": vid}},
	}).Map(t)
	mc := r["params"].(map[string]any)["media_connection_id"].(string)
	ev := e.c.WaitEvent(mcPath(mc, "/events"), "ERROR", 20*time.Second)
	if msg, _ := ev["error_message"].(string); !strings.Contains(msg, "nobody") {
		t.Fatalf("ERROR %v", ev)
	}
	e.c.WaitEvent(mcPath(mc, "/events"), "CLOSE", 5*time.Second)
	if r := e.c.Do("DELETE", "/media/"+vid, nil); r.Status != 404 {
		t.Fatalf("media after failed call: %d", r.Status)
	}
}

// One media port fanned out to three calls: every callee gets every
// packet, read once from the port; closing one call leaves the others fed
// and the port open; the last closes it.
func TestMediaFanOut(t *testing.T) {
	e1, e2 := twoGateways(t)
	cam := newSide(t, e1.c, "fancam", 100, 111)
	const n = 3
	var callees [n]*side
	var callerMCs, calleeMCs [n]string
	for i := range callees {
		callees[i] = newSide(t, e2.c, fmt.Sprintf("viewer%d", i), 100+i, 111)
		callerMCs[i], calleeMCs[i] = call(t, cam, callees[i], nil)
	}
	vs := startSending(cam.videoApp, cam.videoPort, 5*time.Millisecond, func(i int) []byte {
		return rtpBytes(100, 77, i, fmt.Sprintf("fan-video-%d", i))
	})
	defer vs.Stop()
	for i, c := range callees {
		b := c.videoApp.recvUntil("fanned-out video", 20*time.Second, isRTPWith("fan-video-"))
		if pt := int(b[1] & 0x7f); pt != 100+i {
			t.Fatalf("viewer%d got payload type %d", i, pt)
		}
	}
	// Each packet the app sent once reaches all three.
	seen := make([]map[string]bool, n)
	for i, c := range callees {
		seen[i] = map[string]bool{}
		for len(seen[i]) < 50 {
			b := c.videoApp.recvUntil("more video", 20*time.Second, isRTPWith("fan-video-"))
			seen[i][string(b[12:])] = true
		}
	}
	e1.srv.media.mu.Lock()
	media := e1.srv.media.media[cam.videoID]
	e1.srv.media.mu.Unlock()
	if media.fan.Len() != n {
		t.Fatalf("fan-out to %d tracks, want %d", media.fan.Len(), n)
	}
	cam.c.Expect(204, "DELETE", mcPath(callerMCs[0], ""), nil)
	callees[0].c.WaitEvent(mcPath(calleeMCs[0], "/events"), "CLOSE", 20*time.Second, "STREAM")
	if media.fan.Len() != n-1 {
		t.Fatalf("fan-out to %d tracks after a hang-up", media.fan.Len())
	}
	for _, c := range callees[1:] {
		c.videoApp.recvUntil("video after a hang-up", 20*time.Second, isRTPWith("fan-video-"))
	}
	if r := cam.c.Do("DELETE", "/media/"+cam.videoID, nil); r.Status != 403 {
		t.Fatalf("delete media still fanned out: %d", r.Status)
	}
	for i := 1; i < n; i++ {
		cam.c.Expect(204, "DELETE", mcPath(callerMCs[i], ""), nil)
	}
	waitFor(t, "media port closed with the last call", 10*time.Second, func() bool {
		m, r, c := e1.srv.media.counts()
		return m+r+c == 0
	})
}

// Many call/hang-up cycles leak no goroutines, fds or ports, and memory
// stays flat.
func TestMediaCallCyclesDoNotLeak(t *testing.T) {
	cycles := 200
	if testing.Short() {
		cycles = 20
	}
	e1, e2 := twoGateways(t)
	caller := e1.c.CreatePeer("cycler")
	callee := e2.c.CreatePeer("cyclee")
	vApp, aApp, src := newUDPApp(t), newUDPApp(t), newUDPApp(t)
	cycle := func(i int) {
		vid, vport := openMedia(t, e1.c, true)
		aid, _ := openMedia(t, e1.c, false)
		rid, _ := openRTCP(t, e1.c)
		r := e1.c.Expect(202, "POST", "/media/connections", map[string]any{
			"peer_id": caller.ID, "token": caller.Token, "target_id": callee.ID,
			"constraints": map[string]any{"video": true, "audio": true, "videoReceiveEnabled": false, "audioReceiveEnabled": false,
				"video_params": map[string]any{"band_width": 500, "codec": "VP8", "media_id": vid, "rtcp_id": rid, "payload_type": 96},
				"audio_params": map[string]any{"band_width": 32, "codec": "OPUS", "media_id": aid, "payload_type": 111}},
		}).Map(t)
		callerMC := r["params"].(map[string]any)["media_connection_id"].(string)
		ev := e2.c.WaitEvent(e2.c.PeerEvents(callee), "CALL", 20*time.Second)
		calleeMC := ev["call_params"].(map[string]any)["media_connection_id"].(string)
		e2.c.Expect(202, "POST", mcPath(calleeMC, "/answer"), map[string]any{
			"constraints":     map[string]any{"video": false, "audio": false},
			"redirect_params": map[string]any{"video": vApp.redirect(), "audio": aApp.redirect()},
		})
		e1.c.WaitEvent(mcPath(callerMC, "/events"), "READY", 20*time.Second)
		// Some media through it, so every path has run.
		s := startSending(src, vport, 2*time.Millisecond, func(j int) []byte { return rtpBytes(96, 5, j, fmt.Sprintf("c%d-%d", i, j)) })
		vApp.recvUntil("video of the cycle", 20*time.Second, isRTPWith(fmt.Sprintf("c%d-", i)))
		s.Stop()
		if i%2 == 0 {
			e1.c.Expect(204, "DELETE", mcPath(callerMC, ""), nil)
		} else {
			e2.c.Expect(204, "DELETE", mcPath(calleeMC, ""), nil)
		}
		e1.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
		e2.c.WaitEvent(mcPath(calleeMC, "/events"), "CLOSE", 20*time.Second, "STREAM", "READY")
	}
	settle := func() (goroutines, fds int, heap uint64) {
		waitFor(t, "connections gone", 20*time.Second, func() bool {
			m1, r1, c1 := e1.srv.media.counts()
			m2, r2, c2 := e2.srv.media.counts()
			return m1+r1+c1+m2+r2+c2 == 0
		})
		time.Sleep(500 * time.Millisecond)
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), openFDs(t), ms.HeapInuse
	}
	// Warm up (pools, first-use allocations), then measure.
	for i := 0; i < 5; i++ {
		cycle(i)
	}
	g0, f0, h0 := settle()
	for i := 5; i < cycles+5; i++ {
		cycle(i)
	}
	g1, f1, h1 := settle()
	t.Logf("%d cycles: goroutines %d → %d, fds %d → %d, heap in use %d → %d KiB", cycles, g0, g1, f0, f1, h0>>10, h1>>10)
	// Slack for the test's own HTTP keep-alive connections and timers.
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if f1 > f0+10 {
		t.Errorf("fds grew from %d to %d", f0, f1)
	}
	// A leak of one connection's state per cycle would be megabytes.
	if h1 > h0+8<<20 {
		t.Errorf("heap in use grew from %d to %d KiB", h0>>10, h1>>10)
	}
}
