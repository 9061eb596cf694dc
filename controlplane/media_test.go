package controlplane

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/gw-project/gw/internal/gwtest"
)

// udpApp is a local app of a test: one UDP socket it receives on and sends
// from.
type udpApp struct {
	t    testing.TB
	conn *net.UDPConn
}

func newUDPApp(t testing.TB) *udpApp {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpApp{t: t, conn: c}
}

func (a *udpApp) port() int { return a.conn.LocalAddr().(*net.UDPAddr).Port }

// redirect is the app's address as redirect_params and PLI bodies give it.
func (a *udpApp) redirect() map[string]any {
	return map[string]any{"ip_v4": "127.0.0.1", "port": a.port()}
}

func (a *udpApp) send(port int, b []byte) {
	if _, err := a.conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		a.t.Errorf("send to %d: %v", port, err)
	}
}

// recvUntil reads datagrams until match accepts one, failing the test after
// timeout (a hang guard, not a timing assertion).
func (a *udpApp) recvUntil(what string, timeout time.Duration, match func([]byte) bool) []byte {
	a.t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for {
		_ = a.conn.SetReadDeadline(deadline)
		n, _, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			a.t.Fatalf("no %s within %s: %v", what, timeout, err)
		}
		if match(buf[:n]) {
			return bytes.Clone(buf[:n])
		}
	}
}

// sender sends packets made by mk to port every interval until stopped.
type sender struct {
	stop chan struct{}
	done chan struct{}
}

func startSending(a *udpApp, port int, interval time.Duration, mk func(i int) []byte) *sender {
	s := &sender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := 0; ; i++ {
			a.conn.WriteToUDP(mk(i), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sender) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func rtpBytes(pt uint8, ssrc uint32, seq int, payload string) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: ssrc, SequenceNumber: uint16(seq),
		Timestamp: uint32(seq) * 3000, Marker: true}, Payload: []byte(payload)}).Marshal()
	return b
}

// mediaPort opens a media port and returns its id and port number.
func openMedia(t testing.TB, c *gwtest.Client, video bool) (string, int) {
	t.Helper()
	m := c.Expect(201, "POST", "/media", map[string]any{"is_video": video}).Map(t)
	id := m["media_id"].(string)
	prefix := "au-"
	if video {
		prefix = "vi-"
	}
	if !strings.HasPrefix(id, prefix) || m["ip_v4"] != "127.0.0.1" {
		t.Fatalf("POST /media: %v", m)
	}
	return id, int(m["port"].(float64))
}

func openRTCP(t testing.TB, c *gwtest.Client) (string, int) {
	t.Helper()
	m := c.Expect(201, "POST", "/media/rtcp", map[string]any{}).Map(t)
	id := m["rtcp_id"].(string)
	if !strings.HasPrefix(id, "rc-") {
		t.Fatalf("POST /media/rtcp: %v", m)
	}
	return id, int(m["port"].(float64))
}

// side is one end of a test call: its gw, peer, ports and apps.
type side struct {
	c                      *gwtest.Client
	p                      gwtest.Peer
	videoID, audioID       string
	videoPort, audioPort   int
	vrtcpID, artcpID       string
	vrtcpPort, artcpPort   int
	videoApp, audioApp     *udpApp // receive media
	vrtcpApp, artcpApp     *udpApp // receive RTCP
	videoPT, audioPT       int     // what the app sends and wants
	videoCodec, audioCodec string
}

func newSide(t testing.TB, c *gwtest.Client, id string, videoPT, audioPT int) *side {
	s := &side{c: c, videoPT: videoPT, audioPT: audioPT, videoCodec: "H264", audioCodec: "OPUS"}
	s.p = c.CreatePeer(id)
	s.videoID, s.videoPort = openMedia(t, c, true)
	s.audioID, s.audioPort = openMedia(t, c, false)
	s.vrtcpID, s.vrtcpPort = openRTCP(t, c)
	s.artcpID, s.artcpPort = openRTCP(t, c)
	s.videoApp, s.audioApp, s.vrtcpApp, s.artcpApp = newUDPApp(t), newUDPApp(t), newUDPApp(t), newUDPApp(t)
	return s
}

func (s *side) constraints() map[string]any {
	return map[string]any{
		"video": true, "audio": true,
		"video_params": map[string]any{"band_width": 1500, "codec": s.videoCodec, "media_id": s.videoID, "rtcp_id": s.vrtcpID, "payload_type": s.videoPT},
		"audio_params": map[string]any{"band_width": 64, "codec": s.audioCodec, "media_id": s.audioID, "rtcp_id": s.artcpID, "payload_type": s.audioPT},
	}
}

func (s *side) redirects() map[string]any {
	return map[string]any{
		"video": s.videoApp.redirect(), "video_rtcp": s.vrtcpApp.redirect(),
		"audio": s.audioApp.redirect(), "audio_rtcp": s.artcpApp.redirect(),
	}
}

func mcPath(id, suffix string) string { return "/media/connections/" + id + suffix }

// call makes caller call callee and callee answer; it returns both
// connection ids once both are READY.
func call(t testing.TB, caller, callee *side, metadata map[string]any) (string, string) {
	t.Helper()
	cons := caller.constraints()
	if metadata != nil {
		cons["metadata"] = metadata
	}
	r := caller.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": caller.p.ID, "token": caller.p.Token, "target_id": callee.p.ID,
		"constraints": cons, "redirect_params": caller.redirects(),
	}).Map(t)
	if r["command_type"] != "PEERS_CALL" {
		t.Fatalf("call answer %v", r)
	}
	callerMC := r["params"].(map[string]any)["media_connection_id"].(string)
	ev := callee.c.WaitEvent(callee.c.PeerEvents(callee.p), "CALL", 20*time.Second)
	calleeMC := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	if !strings.HasPrefix(callerMC, "mc-") || !strings.HasPrefix(calleeMC, "mc-") {
		t.Fatalf("ids %s %s", callerMC, calleeMC)
	}
	a := callee.c.Expect(202, "POST", mcPath(calleeMC, "/answer"), map[string]any{
		"constraints": callee.constraints(), "redirect_params": callee.redirects(),
	}).Map(t)
	params := a["params"].(map[string]any)
	if a["command_type"] != "MEDIA_CONNECTION_ANSWER" || params["video_id"] != callee.videoID || params["audio_id"] != callee.audioID {
		t.Fatalf("answer %v", a)
	}
	caller.c.WaitEvent(mcPath(callerMC, "/events"), "READY", 20*time.Second)
	callee.c.WaitEvent(mcPath(calleeMC, "/events"), "READY", 20*time.Second)
	return callerMC, calleeMC
}

// twoGateways is two control planes whose peers meet at one signaling
// server, as two gw instances do.
func twoGateways(t testing.TB) (*testEnv, *testEnv) {
	e1 := newTestEnv(t)
	e2 := newTestEnv(t, withSignalingURL("ws://"+e1.sigAddr+"/peerjs"))
	return e1, e2
}

// isRTPFrom matches an RTP packet whose payload starts with prefix.
func isRTPWith(prefix string) func([]byte) bool {
	return func(b []byte) bool {
		var p rtp.Packet
		return p.Unmarshal(b) == nil && bytes.HasPrefix(p.Payload, []byte(prefix))
	}
}

// exchangeRTP checks that synthetic RTP sent by from's app arrives at to's
// app, payload intact, with the payload type to's app asked for; it returns
// the SSRC to's app sees.
func exchangeRTP(t testing.TB, from, to *side, tag string) (video, audio uint32) {
	t.Helper()
	vs := startSending(from.videoApp, from.videoPort, 10*time.Millisecond, func(i int) []byte {
		return rtpBytes(uint8(from.videoPT), 0x1000+uint32(from.videoPT), i, fmt.Sprintf("%s-video-%d", tag, i))
	})
	as := startSending(from.audioApp, from.audioPort, 10*time.Millisecond, func(i int) []byte {
		return rtpBytes(uint8(from.audioPT), 0x2000+uint32(from.audioPT), i, fmt.Sprintf("%s-audio-%d", tag, i))
	})
	defer vs.Stop()
	defer as.Stop()
	for _, c := range []struct {
		app  *udpApp
		pt   int
		kind string
		ssrc *uint32
	}{{to.videoApp, to.videoPT, "video", &video}, {to.audioApp, to.audioPT, "audio", &audio}} {
		b := c.app.recvUntil(tag+" "+c.kind+" RTP", 20*time.Second, isRTPWith(tag+"-"+c.kind+"-"))
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if int(p.PayloadType) != c.pt {
			t.Errorf("%s %s arrives with payload type %d, want %d", tag, c.kind, p.PayloadType, c.pt)
		}
		var n int
		if _, err := fmt.Sscanf(string(p.Payload), tag+"-"+c.kind+"-%d", &n); err != nil || string(p.Payload) != fmt.Sprintf("%s-%s-%d", tag, c.kind, n) || !p.Marker {
			t.Errorf("%s %s payload %q marker %v", tag, c.kind, p.Payload, p.Marker)
		}
		*c.ssrc = p.SSRC
	}
	return video, audio
}

func TestMediaCallSyntheticRTPBothWays(t *testing.T) {
	e1, e2 := twoGateways(t)
	alice := newSide(t, e1.c, "alice", 100, 111)
	bob := newSide(t, e2.c, "bob", 120, 109) // other payload types than alice's
	bob.videoCodec, bob.audioCodec = "h264", "opus"
	callerMC, calleeMC := call(t, alice, bob, map[string]any{"camera": "front"})

	// Status on both sides; the callee sees the caller's metadata.
	st := bob.c.Expect(200, "GET", mcPath(calleeMC, "/status"), nil).Map(t)
	if st["open"] != true || st["remote_id"] != "alice" || st["metadata"].(map[string]any)["camera"] != "front" {
		t.Fatalf("callee status %v", st)
	}
	st = alice.c.Expect(200, "GET", mcPath(callerMC, "/status"), nil).Map(t)
	if st["open"] != true || st["remote_id"] != "bob" {
		t.Fatalf("caller status %v", st)
	}

	// RTP both ways, each app's payload types honoured.
	bobSeesV, _ := exchangeRTP(t, alice, bob, "a2b")
	aliceSeesV, _ := exchangeRTP(t, bob, alice, "b2a")

	// STREAM events say what arrived where.
	for _, c := range []struct {
		s  *side
		mc string
	}{{alice, callerMC}, {bob, calleeMC}} {
		kinds := map[bool]bool{}
		for len(kinds) < 2 {
			ev := c.s.c.WaitEvent(mcPath(c.mc, "/events"), "STREAM", 10*time.Second)
			so := ev["stream_options"].(map[string]any)
			video := so["is_video"].(bool)
			kinds[video] = true
			sp := so["stream_params"].(map[string]any)
			want := c.s.audioApp.port()
			if video {
				want = c.s.videoApp.port()
			}
			if so["media_connection_id"] != c.mc || int(sp["port"].(float64)) != want || sp["ip_v4"] != "127.0.0.1" {
				t.Fatalf("STREAM %v", ev)
			}
		}
	}

	checkRTCPAndPLI(t, alice, bob, callerMC, calleeMC, bobSeesV)
	_ = aliceSeesV
	// A PLI for an address nothing is delivered to is refused.
	if r := bob.c.Do("POST", mcPath(calleeMC, "/pli"), map[string]any{"ip_v4": "127.0.0.1", "port": 9}); r.Status != 400 {
		t.Fatalf("PLI to nowhere: %d %s", r.Status, r.Body)
	}

	// Media in use cannot be deleted.
	for _, c := range []struct{ path, field string }{
		{"/media/" + alice.videoID, "media_id"}, {"/media/rtcp/" + alice.vrtcpID, "rtcp_id"},
	} {
		if r := alice.c.Do("DELETE", c.path, nil); r.Status != 403 || r.ErrorField(t) != c.field {
			t.Fatalf("DELETE %s in use: %d %s", c.path, r.Status, r.Body)
		}
	}

	// Hanging up on one side closes both; what only the call used is freed.
	alice.c.Expect(204, "DELETE", mcPath(callerMC, ""), nil)
	alice.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 10*time.Second, "STREAM")
	bob.c.WaitEvent(mcPath(calleeMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
	for _, c := range []struct {
		cl   *gwtest.Client
		path string
	}{
		{alice.c, mcPath(callerMC, "/status")}, {bob.c, mcPath(calleeMC, "/status")},
		{alice.c, mcPath(callerMC, "/events")}, {alice.c, "/media/" + alice.videoID},
	} {
		method := "GET"
		if strings.HasPrefix(c.path, "/media/vi") {
			method = "DELETE"
		}
		if r := c.cl.Do(method, c.path, nil); r.Status != 404 {
			t.Errorf("%s %s after close: %d %s", method, c.path, r.Status, r.Body)
		}
	}
	waitFor(t, "ports released", 10*time.Second, func() bool {
		m1, r1, c1 := e1.srv.media.counts()
		m2, r2, c2 := e2.srv.media.counts()
		return m1+r1+c1+m2+r2+c2 == 0
	})
}

// checkRTCPAndPLI checks the RTCP paths of a call between alice (caller,
// sending with SSRC 0x1000+her video payload type) and bob: RTCP from each
// app reaches the other app naming SSRCs as that app knows them, and a PLI
// asked for through the API reaches the sender's RTCP port.
func checkRTCPAndPLI(t testing.TB, alice, bob *side, callerMC, calleeMC string, bobSeesV uint32) {
	t.Helper()
	aliceSSRC, bobSSRC := uint32(0x1000+alice.videoPT), uint32(0x1000+bob.videoPT)
	// RTCP from bob's app (a receiver report about alice's stream, as bob's
	// app saw it) reaches alice's app, naming alice's own SSRC.
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: bobSSRC, Reports: []rtcp.ReceptionReport{{SSRC: bobSeesV, LastSequenceNumber: 4242}}}})
	rrs := startSending(bob.videoApp, bob.vrtcpPort, 50*time.Millisecond, func(int) []byte { return rr })
	alice.vrtcpApp.recvUntil("bob's receiver report", 20*time.Second, func(b []byte) bool {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return false
		}
		for _, p := range pkts {
			if r, ok := p.(*rtcp.ReceiverReport); ok {
				for _, rep := range r.Reports {
					if rep.LastSequenceNumber == 4242 {
						if rep.SSRC != aliceSSRC {
							t.Errorf("report names SSRC %x, want alice's %x", rep.SSRC, aliceSSRC)
						}
						return true
					}
				}
			}
		}
		return false
	})
	rrs.Stop()
	// A sender report from alice's app reaches bob's app under the SSRC
	// bob's app receives alice's stream with.
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: aliceSSRC, PacketCount: 777, OctetCount: 1}})
	srs := startSending(alice.videoApp, alice.vrtcpPort, 50*time.Millisecond, func(int) []byte { return sr })
	bob.vrtcpApp.recvUntil("alice's sender report", 20*time.Second, func(b []byte) bool {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return false
		}
		for _, p := range pkts {
			if s, ok := p.(*rtcp.SenderReport); ok && s.PacketCount == 777 {
				if s.SSRC != bobSeesV {
					t.Errorf("sender report SSRC %x, bob's app sees the stream as %x", s.SSRC, bobSeesV)
				}
				return true
			}
		}
		return false
	})
	srs.Stop()

	// PLI: bob asks for a key frame of the stream at his video app's
	// address; alice's app gets it on its video RTCP port, naming her SSRC.
	bob.c.Expect(201, "POST", mcPath(calleeMC, "/pli"), bob.videoApp.redirect())
	alice.vrtcpApp.recvUntil("PLI", 20*time.Second, func(b []byte) bool {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return false
		}
		for _, p := range pkts {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok {
				if pli.MediaSSRC != aliceSSRC {
					t.Errorf("PLI for SSRC %x, want alice's %x", pli.MediaSSRC, aliceSSRC)
				}
				return true
			}
		}
		return false
	})
	// And the other way.
	alice.c.Expect(201, "POST", mcPath(callerMC, "/pli"), alice.videoApp.redirect())
	bob.vrtcpApp.recvUntil("PLI to bob", 20*time.Second, func(b []byte) bool {
		pkts, _ := rtcp.Unmarshal(b)
		for _, p := range pkts {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok {
				return pli.MediaSSRC == bobSSRC
			}
		}
		return false
	})
}

// feedbackLoops counts the goroutines of pion's NACK generator and TWCC
// feedback in this process: one each per PeerConnection that has them.
func feedbackLoops() (nack, twcc int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	s := string(buf)
	return strings.Count(s, "nack.(*GeneratorInterceptor).loop("), strings.Count(s, "twcc.(*SenderInterceptor).loop(")
}

// TestFeedbackOnlyWhereMediaIsReceived: a connection that cannot receive
// media (a call that only sends; an offer from a remote that only
// receives) runs no NACK generator or TWCC feedback; the side that
// receives does. Media still flows, and the receiving side still sends
// its feedback (receiver reports reach the sending app's rtcp redirect).
func TestFeedbackOnlyWhereMediaIsReceived(t *testing.T) {
	e1, e2 := twoGateways(t)
	alice := newSide(t, e1.c, "alice", 100, 111)
	bob := newSide(t, e2.c, "bob", 120, 109)
	nack0, twcc0 := feedbackLoops()

	// alice sends only; bob receives only.
	sendOnly := alice.constraints()
	sendOnly["videoReceiveEnabled"], sendOnly["audioReceiveEnabled"] = false, false
	r := alice.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": alice.p.ID, "token": alice.p.Token, "target_id": bob.p.ID, "constraints": sendOnly,
		"redirect_params": map[string]any{"video_rtcp": alice.vrtcpApp.redirect()},
	}).Map(t)
	aliceMC := r["params"].(map[string]any)["media_connection_id"].(string)
	ev := bob.c.WaitEvent(bob.c.PeerEvents(bob.p), "CALL", 20*time.Second)
	bobMC := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	bob.c.Expect(202, "POST", mcPath(bobMC, "/answer"), map[string]any{
		"constraints": map[string]any{"video": false, "audio": false}, "redirect_params": bob.redirects(),
	})
	alice.c.WaitEvent(mcPath(aliceMC, "/events"), "READY", 20*time.Second)
	bob.c.WaitEvent(mcPath(bobMC, "/events"), "READY", 20*time.Second)
	if n, tw := feedbackLoops(); n-nack0 != 1 || tw-twcc0 != 1 {
		t.Errorf("a one-way call: %d NACK generators and %d TWCC feedback loops, want 1 each (the receiver's)", n-nack0, tw-twcc0)
	}
	s := startSending(alice.videoApp, alice.videoPort, 5*time.Millisecond, func(i int) []byte { return rtpBytes(100, 0xa11ce, i, "one-way") })
	bob.videoApp.recvUntil("alice's video", 10*time.Second, isRTPWith("one-way"))
	alice.vrtcpApp.recvUntil("bob's receiver report", 10*time.Second, func(b []byte) bool {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return false
		}
		for _, p := range pkts {
			if _, ok := p.(*rtcp.ReceiverReport); ok {
				return true
			}
		}
		return false
	})
	s.Stop()

	// bob calls receiving only: alice's side of it gets an offer whose
	// remote only receives, and answers sending.
	nack1, twcc1 := feedbackLoops()
	r = bob.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": bob.p.ID, "token": bob.p.Token, "target_id": alice.p.ID,
		"constraints": map[string]any{"video": false, "audio": false}, "redirect_params": bob.redirects(),
	}).Map(t)
	bobMC2 := r["params"].(map[string]any)["media_connection_id"].(string)
	ev = alice.c.WaitEvent(alice.c.PeerEvents(alice.p), "CALL", 20*time.Second)
	aliceMC2 := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	alice.c.Expect(202, "POST", mcPath(aliceMC2, "/answer"), map[string]any{"constraints": sendOnly})
	alice.c.WaitEvent(mcPath(aliceMC2, "/events"), "READY", 20*time.Second)
	bob.c.WaitEvent(mcPath(bobMC2, "/events"), "READY", 20*time.Second)
	if n, tw := feedbackLoops(); n-nack1 != 1 || tw-twcc1 != 1 {
		t.Errorf("a call that only receives: %d NACK generators and %d TWCC feedback loops, want 1 each (the caller's)", n-nack1, tw-twcc1)
	}
}
