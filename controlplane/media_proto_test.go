package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/gw-project/gw/signaling"
)

// rawPeer is a remote PeerJS peer made of a bare signaling client and (when
// needed) a bare pion PeerConnection, to see exactly what gw sends.
type rawPeer struct {
	t      testing.TB
	id     string
	client *signaling.Client
	msgs   chan signaling.Message

	mu      sync.Mutex
	pc      *webrtc.PeerConnection
	connID  string
	dst     string
	pending []webrtc.ICECandidateInit
}

func (r *rawPeer) HandleMessage(m signaling.Message) {
	if m.Type == signaling.TypeCandidate {
		var c pjCandidate
		if json.Unmarshal(m.Payload, &c) == nil {
			r.mu.Lock()
			pc := r.pc
			if pc == nil || pc.RemoteDescription() == nil {
				r.pending = append(r.pending, c.Candidate)
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			_ = pc.AddICECandidate(c.Candidate)
			return
		}
	}
	r.msgs <- m
}
func (r *rawPeer) HandleState(signaling.State, error) {}
func (r *rawPeer) HandleExpiresIn(int)                {}

func newRawPeer(t testing.TB, e *testEnv, id string) *rawPeer {
	t.Helper()
	r := &rawPeer{t: t, id: id, msgs: make(chan signaling.Message, 100)}
	c, err := signaling.Connect(context.Background(), signaling.ClientOptions{URL: "ws://" + e.sigAddr + "/peerjs", Key: "peerjs", ID: id, Handler: r})
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	t.Cleanup(func() {
		r.mu.Lock()
		pc := r.pc
		r.mu.Unlock()
		if pc != nil {
			pc.Close()
		}
		c.Close()
	})
	return r
}

// next waits for a message of type typ, skipping others.
func (r *rawPeer) next(typ string) signaling.Message {
	r.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-r.msgs:
			if m.Type == typ {
				return m
			}
		case <-timeout:
			r.t.Fatalf("%s: no %s message", r.id, typ)
		}
	}
}

// newPC makes the raw peer's PeerConnection, trickling its candidates to
// dst under connID the way PeerJS does.
func (r *rawPeer) newPC(dst, connID string) *webrtc.PeerConnection {
	r.t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		r.t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	// So that a retransmission of a packet it already has reaches the test
	// (SRTP would drop it as a replay).
	se.DisableSRTPReplayProtection(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		r.t.Fatal(err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		raw, _ := json.Marshal(pjCandidate{Candidate: c.ToJSON(), Type: "media", ConnectionID: connID})
		_ = r.client.Send(signaling.Message{Type: signaling.TypeCandidate, Dst: dst, Payload: raw})
	})
	r.mu.Lock()
	r.pc, r.connID, r.dst = pc, connID, dst
	r.mu.Unlock()
	return pc
}

// setRemote applies a description and the candidates that came before it.
func (r *rawPeer) setRemote(d webrtc.SessionDescription) {
	r.t.Helper()
	if err := r.pc.SetRemoteDescription(d); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	held := r.pending
	r.pending = nil
	r.mu.Unlock()
	for _, c := range held {
		_ = r.pc.AddICECandidate(c)
	}
}

func (r *rawPeer) send(typ string, payload any) {
	raw, _ := json.Marshal(payload)
	if err := r.client.Send(signaling.Message{Type: typ, Dst: r.dst, Payload: raw}); err != nil {
		r.t.Fatal(err)
	}
}

// mediaSection finds the first m= section of kind in an SDP.
func mediaSection(t testing.TB, text, kind string) *sdp.MediaDescription {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == kind {
			return m
		}
	}
	return nil
}

func hasAttr(m *sdp.MediaDescription, key, value string) bool {
	for _, a := range m.Attributes {
		if a.Key == key && (value == "" || a.Value == value) {
			return true
		}
	}
	return false
}

func bandwidthAS(m *sdp.MediaDescription) uint64 {
	for _, b := range m.Bandwidth {
		if b.Type == "AS" {
			return b.Bandwidth
		}
	}
	return 0
}

// gw's offer, as a PeerJS peer receives it: payload fields, the app's
// payload type, band_width, directions, feedback, the PeerJS data channel.
func TestMediaOfferAsPeerJSSeesIt(t *testing.T) {
	e := newTestEnv(t)
	raw := newRawPeer(t, e, "rawcallee")
	p := e.c.CreatePeer("cam")
	vid, _ := openMedia(t, e.c, true)
	e.c.Expect(202, "POST", "/media/connections", map[string]any{
		"peer_id": p.ID, "token": p.Token, "target_id": "rawcallee",
		"constraints": map[string]any{
			"video": true, "videoReceiveEnabled": false, "audio": false,
			"video_params": map[string]any{"band_width": 800, "codec": "h264", "media_id": vid, "payload_type": 100, "sampling_rate": 90000},
			"metadata":     map[string]any{"k": "v"},
		},
	})
	m := raw.next(signaling.TypeOffer)
	var o struct {
		SDP          webrtc.SessionDescription `json:"sdp"`
		Type         string                    `json:"type"`
		ConnectionID string                    `json:"connectionId"`
		Metadata     map[string]any            `json:"metadata"`
	}
	if err := json.Unmarshal(m.Payload, &o); err != nil {
		t.Fatal(err)
	}
	if o.Type != "media" || !strings.HasPrefix(o.ConnectionID, "mc_") || o.Metadata["k"] != "v" || o.SDP.Type != webrtc.SDPTypeOffer || m.Src != "cam" {
		t.Fatalf("offer payload %s", m.Payload)
	}
	v := mediaSection(t, o.SDP.SDP, "video")
	if v == nil || !hasAttr(v, "sendonly", "") || bandwidthAS(v) != 800 {
		t.Fatalf("video section %+v", v)
	}
	if strings.Join(v.MediaName.Formats, " ") != "100" || !hasAttr(v, "rtpmap", "100 H264/90000") {
		t.Fatalf("video formats %v", v.MediaName.Formats)
	}
	for _, fb := range []string{"100 nack", "100 nack pli", "100 ccm fir", "100 transport-cc"} {
		if !hasAttr(v, "rtcp-fb", fb) {
			t.Errorf("no rtcp-fb %s", fb)
		}
	}
	if f, _ := v.Attribute("fmtp"); !strings.Contains(f, "packetization-mode=1") {
		t.Errorf("fmtp %q", f)
	}
	// Receiving audio is on by default: every audio codec is offered.
	a := mediaSection(t, o.SDP.SDP, "audio")
	if a == nil || !hasAttr(a, "recvonly", "") || !hasAttr(a, "rtpmap", "111 opus/48000/2") || !hasAttr(a, "rtpmap", "0 PCMU/8000") {
		t.Fatalf("audio section %+v", a)
	}
	if mediaSection(t, o.SDP.SDP, "application") == nil {
		t.Fatal("no data channel section: PeerJS peers would not see the call's hang-up")
	}
	// Candidates follow under the same connectionId.
	waitFor(t, "candidates", 20*time.Second, func() bool {
		raw.mu.Lock()
		defer raw.mu.Unlock()
		return len(raw.pending) > 0
	})
}

// gw answering a call from a bare WebRTC peer (as a browser would make it):
// codec chosen from the offer in the caller's payload types, directions
// and band_width as the app asked, payload types mapped both ways, and the
// remote's hang-up seen through DTLS close_notify.
func TestMediaAnswerToForeignCaller(t *testing.T) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("gwcallee")
	raw := newRawPeer(t, e, "browserish")
	pc := raw.newPC("gwcallee", "mc_rawcall1")
	// The caller sends its own video and audio.
	vtrack, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	atrack, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "s")
	if _, err := pc.AddTrack(vtrack); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(atrack); err != nil {
		t.Fatal(err)
	}
	ordered := false
	dc, _ := pc.CreateDataChannel("undefined", &webrtc.DataChannelInit{Ordered: &ordered})
	_ = dc
	gotVideo := make(chan *rtp.Packet, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo && strings.HasPrefix(string(pkt.Payload), "gw-") {
				select {
				case gotVideo <- pkt:
				default:
				}
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	var h264PT uint8
	for _, a := range mediaSection(t, offer.SDP, "video").Attributes {
		var pt uint8
		var fmtp string
		// The caller's first H.264 in packetization mode 1 is gw's choice.
		if _, err := fmt.Sscanf(a.Value, "%d %s", &pt, &fmtp); a.Key == "fmtp" && err == nil && h264PT == 0 &&
			strings.Contains(a.Value, "packetization-mode=1") && strings.Contains(a.Value, "profile-level-id=4") {
			h264PT = pt
		}
	}
	raw.send(signaling.TypeOffer, map[string]any{"sdp": offer, "type": "media", "connectionId": "mc_rawcall1", "metadata": "just a string"})

	ev := e.c.WaitEvent(e.c.PeerEvents(p), "CALL", 20*time.Second)
	mcID := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	st := e.c.Expect(200, "GET", mcPath(mcID, "/status"), nil).Map(t)
	if st["open"] != false || st["remote_id"] != "browserish" || st["metadata"].(map[string]any)["value"] != "just a string" {
		t.Fatalf("status before answer %v", st)
	}
	vid, vport := openMedia(t, e.c, true)
	audioApp := newUDPApp(t)
	a := e.c.Expect(202, "POST", mcPath(mcID, "/answer"), map[string]any{
		"constraints": map[string]any{
			"video": true, "videoReceiveEnabled": false, "audio": false,
			"video_params": map[string]any{"band_width": 500, "codec": "H264", "media_id": vid, "payload_type": 99},
			"audio_params": map[string]any{"codec": "OPUS", "payload_type": 120},
		},
		"redirect_params": map[string]any{"audio": audioApp.redirect()},
	}).Map(t)
	if params := a["params"].(map[string]any); params["video_id"] != vid || params["audio_id"] != nil {
		t.Fatalf("answer params %v", params)
	}
	if r := e.c.Do("POST", mcPath(mcID, "/answer"), map[string]any{"constraints": map[string]any{"video": false, "audio": false}}); r.Status != 403 {
		t.Fatalf("second answer: %d %s", r.Status, r.Body)
	}
	am := raw.next(signaling.TypeAnswer)
	var ans pjAnswer
	if err := json.Unmarshal(am.Payload, &ans); err != nil || ans.Type != "media" || ans.ConnectionID != "mc_rawcall1" || ans.SDP.Type != webrtc.SDPTypeAnswer {
		t.Fatalf("answer payload %s", am.Payload)
	}
	v := mediaSection(t, ans.SDP.SDP, "video")
	if !hasAttr(v, "sendonly", "") || bandwidthAS(v) != 500 {
		t.Fatalf("answer video section %v", ans.SDP.SDP)
	}
	for _, f := range v.MediaName.Formats {
		if f != fmt.Sprint(h264PT) {
			t.Fatalf("answer offers formats %v, want only the caller's H.264 %d", v.MediaName.Formats, h264PT)
		}
	}
	for _, fb := range []string{"nack", "nack pli", "ccm fir", "transport-cc"} {
		if !hasAttr(v, "rtcp-fb", fmt.Sprintf("%d %s", h264PT, fb)) {
			t.Errorf("answer lacks rtcp-fb %d %s", h264PT, fb)
		}
	}
	if au := mediaSection(t, ans.SDP.SDP, "audio"); !hasAttr(au, "recvonly", "") {
		t.Fatalf("answer audio section %v", ans.SDP.SDP)
	}
	raw.setRemote(ans.SDP)
	e.c.WaitEvent(mcPath(mcID, "/events"), "READY", 20*time.Second)

	// gw's app → caller: sent with the app's 99, arrives with the caller's
	// H.264 payload type.
	app := newUDPApp(t)
	vs := startSending(app, vport, 10*time.Millisecond, func(i int) []byte { return rtpBytes(99, 42, i, fmt.Sprintf("gw-%d", i)) })
	defer vs.Stop()
	select {
	case pkt := <-gotVideo:
		if pkt.PayloadType != h264PT {
			t.Fatalf("caller got payload type %d, want %d", pkt.PayloadType, h264PT)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("caller got no video")
	}
	// caller → gw's app: opus with the app's payload type 120.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			_ = atrack.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: []byte(fmt.Sprintf("opus-%d", i))})
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	b := audioApp.recvUntil("caller's audio", 20*time.Second, isRTPWith("opus-"))
	close(stop)
	wg.Wait()
	if pt := b[1] & 0x7f; pt != 120 {
		t.Fatalf("audio delivered with payload type %d, want 120", pt)
	}
	ev = e.c.WaitEvent(mcPath(mcID, "/events"), "STREAM", 10*time.Second)
	if so := ev["stream_options"].(map[string]any); so["is_video"] != false || so["stream_id"] != "s" {
		t.Fatalf("STREAM %v", ev)
	}
	// The caller hangs up: gw notices without any signaling.
	pc.Close()
	e.c.WaitEvent(mcPath(mcID, "/events"), "CLOSE", 20*time.Second)
	waitFor(t, "ports released", 10*time.Second, func() bool {
		m, r, c := e.srv.media.counts()
		return m+r+c == 0
	})
}

// NACKs without the app's help: a remote's NACK for a packet gw sent is
// answered from gw's send buffer, and a gap in what gw receives makes gw
// ask the remote for the missing packet. When the remote only receives,
// gw's connection has no NACK generator (newMediaPC), and still answers.
func TestMediaNACKBothWays(t *testing.T) {
	t.Run("sendrecv", func(t *testing.T) { testMediaNACK(t, true) })
	t.Run("remote receives only", func(t *testing.T) { testMediaNACK(t, false) })
}

func testMediaNACK(t *testing.T, remoteSends bool) {
	e := newTestEnv(t)
	p := e.c.CreatePeer("nackgw")
	raw := newRawPeer(t, e, "nackpeer")
	pc := raw.newPC("nackgw", "mc_nack1")
	vtrack, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	var sender *webrtc.RTPSender
	if remoteSends {
		var err error
		if sender, err = pc.AddTrack(vtrack); err != nil {
			t.Fatal(err)
		}
	} else if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		mu    sync.Mutex
		count map[uint16]int
		ssrc  uint32
	}
	got := &seen{count: map[uint16]int{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			got.mu.Lock()
			got.count[pkt.SequenceNumber]++
			got.ssrc = pkt.SSRC
			got.mu.Unlock()
		}
	})
	nacked := make(chan uint16, 16)
	go func() {
		for sender != nil {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, pk := range pkts {
				if n, ok := pk.(*rtcp.TransportLayerNack); ok {
					for _, pair := range n.Nacks {
						for _, id := range pair.PacketList() {
							select {
							case nacked <- id:
							default:
							}
						}
					}
				}
			}
		}
	}()
	offer, _ := pc.CreateOffer(nil)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	raw.send(signaling.TypeOffer, map[string]any{"sdp": offer, "type": "media", "connectionId": "mc_nack1"})
	ev := e.c.WaitEvent(e.c.PeerEvents(p), "CALL", 20*time.Second)
	mcID := ev["call_params"].(map[string]any)["media_connection_id"].(string)
	vid, vport := openMedia(t, e.c, true)
	app := newUDPApp(t)
	e.c.Expect(202, "POST", mcPath(mcID, "/answer"), map[string]any{
		"constraints":     map[string]any{"video": true, "audio": false, "video_params": map[string]any{"band_width": 0, "codec": "VP8", "media_id": vid, "payload_type": 96}},
		"redirect_params": map[string]any{"video": app.redirect()},
	})
	var ans pjAnswer
	if err := json.Unmarshal(raw.next(signaling.TypeAnswer).Payload, &ans); err != nil {
		t.Fatal(err)
	}
	raw.setRemote(ans.SDP)
	e.c.WaitEvent(mcPath(mcID, "/events"), "READY", 20*time.Second)

	// gw → remote: once packets flow, the remote NACKs one it already has;
	// gw sends it again by itself.
	vs := startSending(app, vport, 5*time.Millisecond, func(i int) []byte { return rtpBytes(96, 9, i, fmt.Sprintf("n-%d", i)) })
	defer vs.Stop()
	var target uint16
	waitFor(t, "video at the remote", 20*time.Second, func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		for seq := range got.count {
			target = seq
			return true
		}
		return false
	})
	got.mu.Lock()
	ssrc := got.ssrc
	got.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{target})}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		got.mu.Lock()
		n := got.count[target]
		got.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("packet %d not retransmitted after NACKs", target)
		}
	}

	if !remoteSends {
		return
	}
	// remote → gw: a gap in the sequence numbers; gw NACKs the missing one.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint16(1000); ; seq++ {
			if seq != 1010 { // never sent
				_ = vtrack.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: []byte{0x10, 0, 0}})
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case id := <-nacked:
			if id == 1010 {
				return
			}
		case <-timeout:
			t.Fatal("gw sent no NACK for the missing packet")
		}
	}
}
