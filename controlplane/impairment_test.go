package controlplane

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/metrics"
)

// withICE gives the control plane ICE servers and a transport policy.
func withICE(policy string, servers ...ICEServer) envOption {
	return func(_ *testEnv, c *Config) {
		c.ICEServers = servers
		c.ICETransportPolicy = policy
	}
}

// TestICETransportPolicy: relay reaches pion only for a peer with a TURN
// server to relay through; unknown policies are refused.
func TestICETransportPolicy(t *testing.T) {
	stun := ICEServer{URLs: []string{"stun:127.0.0.1:3478"}}
	turnSrv := ICEServer{URLs: []string{"turn:127.0.0.1:3478"}, Username: "u", Credential: "p"}
	for _, bad := range []Config{
		{SignalingURL: "ws://x", ICETransportPolicy: "nohost"},
		{SignalingURL: "ws://x", ICETransportPolicy: "Relay", ICEServers: []ICEServer{turnSrv}},
		{SignalingURL: "ws://x", ICETransportPolicy: "relay", ICEServers: []ICEServer{stun}}, // nothing relays
		{SignalingURL: "ws://x", ICETransportPolicy: "relay"},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("policy %q with %d servers accepted", bad.ICETransportPolicy, len(bad.ICEServers))
		}
	}
	for _, c := range []struct {
		policy  string
		servers []ICEServer
		turn    bool
		want    webrtc.ICETransportPolicy
	}{
		{"", []ICEServer{turnSrv}, true, webrtc.ICETransportPolicyAll},
		{"all", []ICEServer{turnSrv}, true, webrtc.ICETransportPolicyAll},
		{"relay", []ICEServer{stun, turnSrv}, true, webrtc.ICETransportPolicyRelay},
		{"relay", []ICEServer{stun, turnSrv}, false, webrtc.ICETransportPolicyAll}, // only STUN for it
	} {
		s, err := New(Config{SignalingURL: "ws://x", ICEServers: c.servers, ICETransportPolicy: c.policy, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		pc, err := s.newPeerConnection(&peer{turn: c.turn}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := pc.GetConfiguration().ICETransportPolicy; got != c.want {
			t.Errorf("policy %q, %d servers, turn %v: pion gets %s, want %s", c.policy, len(c.servers), c.turn, got, c.want)
		}
		pc.Close()
	}
}

// TestImpairmentInMetrics: loss and jitter injected between two gw
// instances show in /metrics as injected, and leave with the connection.
//
// The caller's peer is created with turn and its gw has policy relay, so
// all its WebRTC traffic goes through the test's TURN server, whose relayed
// socket impairs the RTP the caller sends (impairer: seeded, counted per
// SSRC). The caller's app sends Opus (PT 111, 20 ms) and H.264 (PT 100,
// 10 ms) RTP whose timestamps are its send clock, so the only delay
// variation at the callee is the relay's plus scheduling noise. After a
// baseline, the relay drops audio with p = 5% and delays each surviving
// audio packet by an independent uniform delay in [0, D], D = 20 ms, and
// drops video with p = 5%; it then stops impairing and the app keeps
// sending, so that a clean tail reveals the last drops. Tolerances:
//
//   - Audio packets lost at the callee (RFC 3550 expected - received) equal
//     the relay's drops exactly: audio has no NACK (pion offers it for
//     video only), loopback loses nothing else, and reordering does not
//     change expected - received.
//   - The caller's remote packets lost (from the callee's receiver reports)
//     is the drops or one more: pion's report generator counts a sequence
//     number missing when a later one arrived first and never takes it
//     back, so a packet reordered across a report instant (delays span
//     the packet spacing) counts once as lost.
//   - The loss ratio over the impaired run, lost / packets the relay
//     impaired, is within 0.05 ± 0.025 (binomial SD at n = 400 is 0.011;
//     the seeded RNG repeats the same draws, within that band for any n
//     from 300 to 2000). The last-second ratio gauges, each over ~50
//     packets, only have to average within [0.01, 0.10].
//   - Jitter: for independent uniform delays in [0, D], E|d_i - d_(i-1)| =
//     D/3, the value RFC 3550 jitter converges to. One publication of the
//     EWMA (gain 1/16) has an SD of about 13% of D/3, so the mean of 8
//     publications in steady state, at the callee and as the callee
//     reports it to the caller, must be within ±35% of D/3. The path
//     before the relay (the caller's gw, pion, TURN) adds noise of its own,
//     which the relay measures as the same mean |D| on what reaches it: on
//     a loaded 2-core machine under -race it reaches 1-2.6 ms (a fifth to
//     over a third of D/3). Independent noise can only raise E|D|, by at
//     most its own mean |D|, so the upper bound gets that measured noise
//     added. The relay also measures what it emits (its delays, timer
//     lateness and the upstream noise together): gw's figures must be
//     within ±25% of that, which checks gw's measurement itself (seen
//     within 5%). The median of 4 publications before impairing (the same
//     noise, no delay) must match what the relay emitted then, within
//     25% plus 1 ms, and the impaired mean must exceed it by at least
//     D/6.
//   - Video: the callee sends NACKs and the caller receives them; the
//     caller's retransmitted count equals the resends the relay saw (a
//     sequence number it had already seen; nothing else repeats one); the
//     relay delivers every sequence number in the end (NACKs recovered
//     each drop); the callee's video packets lost is then what the relay's
//     deliveries predict (minus each extra copy delivered), or up to 2
//     more (RFC 3550 A.1 ignores a resend that comes over 100 packets
//     late), and at most 3 either way.
//
// Then nothing in either registry lints, and after DELETE every
// gw_stream_* series of the connection leaves both. No timing is asserted
// but the jitter: every wait polls with a generous deadline.
func TestImpairmentInMetrics(t *testing.T) {
	const (
		audioPT, videoPT = 111, 100
		lossP            = 0.05
		delayD           = 20 * time.Millisecond
	)
	relay := startImpairingTURN(t, 0x5eed)
	relay.setClock(map[uint8]float64{audioPT: 48000, videoPT: 90000})
	r1 := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	r2 := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	e1 := newTestEnv(t, withMetrics(r1), withICE(ICETransportPolicyRelay, relay.iceServer()))
	e2 := newTestEnv(t, withMetrics(r2), withSignalingURL("ws://"+e1.sigAddr+"/peerjs"))
	alice := newTURNSide(t, e1.c, "imp-alice", videoPT, audioPT)
	bob := newSide(t, e2.c, "imp-bob", videoPT, audioPT)
	callerMC, calleeMC := call(t, alice, bob, nil)

	start := time.Now()
	audio := startSending(alice.audioApp, alice.audioPort, 20*time.Millisecond, func(i int) []byte {
		return rtpSeq(audioPT, 0xa0d10, uint16(i), uint32(time.Since(start)*48000/time.Second), 80)
	})
	defer audio.Stop()
	// Video ticks halfway between audio ones: a video packet the pipeline
	// handles just before an audio one would delay it at random, a noise
	// of its own in the audio jitter.
	time.Sleep(5 * time.Millisecond)
	video := startSending(alice.videoApp, alice.videoPort, 10*time.Millisecond, func(i int) []byte {
		return rtpSeq(videoPT, 0x51de0, uint16(i), uint32(time.Since(start)*90000/time.Second), 300)
	})
	defer video.Stop()

	audioIn := []string{"connection", calleeMC, "kind", "audio", "direction", "inbound"}
	audioOut := []string{"connection", callerMC, "kind", "audio", "direction", "outbound"}
	videoIn := []string{"connection", calleeMC, "kind", "video", "direction", "inbound"}
	videoOut := []string{"connection", callerMC, "kind", "video", "direction", "outbound"}

	// The streams' SSRCs on the wire, from the caller's status; the relay
	// must have seen them, with their payload types.
	var audioSSRC, videoSSRC uint32
	waitFor(t, "both streams through the relay", 30*time.Second, func() bool {
		var st struct {
			Stats struct {
				Outbound []struct {
					Kind string
					SSRC uint32
				}
			}
		}
		e1.c.Expect(200, "GET", mcPath(callerMC, "/status"), nil).JSON(t, &st)
		for _, o := range st.Stats.Outbound {
			if o.Kind == "audio" {
				audioSSRC = o.SSRC
			} else {
				videoSSRC = o.SSRC
			}
		}
		a, v := relay.stream(audioSSRC), relay.stream(videoSSRC)
		return audioSSRC != 0 && videoSSRC != 0 && a.seen > 0 && v.seen > 0
	})
	if a, v := relay.stream(audioSSRC), relay.stream(videoSSRC); a.pt != audioPT || v.pt != videoPT {
		t.Fatalf("relay saw audio PT %d, video PT %d", a.pt, v.pt)
	}

	// Baseline: nothing impaired yet.
	waitFor(t, "audio at the callee", 30*time.Second, func() bool {
		v, _ := sample(t, r2, "gw_stream_packets_total", audioIn...)
		return v >= 100
	})
	base := collectAudio(t, r1, r2, audioIn, audioOut, 4, func() bool { return true }, func() { relay.resetJitter(audioSSRC) })
	baseRelay := relay.stream(audioSSRC)
	relay.impair(map[uint8]impairment{audioPT: {p: lossP, maxDelay: delayD}, videoPT: {p: lossP}})
	// Steady state: publications once the EWMA forgot the baseline (100
	// impaired packets leave it a weight of (15/16)^100 < 0.2%).
	imp := collectAudio(t, r1, r2, audioIn, audioOut, 8, func() bool {
		return relay.stream(audioSSRC).impaired >= 100
	}, func() { relay.resetJitter(audioSSRC) })
	impRelay := relay.stream(audioSSRC)
	waitFor(t, "enough impaired packets", 60*time.Second, func() bool {
		return relay.stream(audioSSRC).impaired >= 400 && relay.stream(videoSSRC).impaired >= 800
	})
	relay.impair(nil)
	a := relay.stream(audioSSRC)

	// The clean tail reveals the last drops (the app keeps sending).
	var lost, remoteLost float64
	if !poll(30*time.Second, func() bool {
		lost, _ = sample(t, r2, "gw_stream_packets_lost", audioIn...)
		return lost == float64(a.dropped)
	}) {
		t.Errorf("callee: audio packets lost %v, relay dropped %d", lost, a.dropped)
	}
	if !poll(30*time.Second, func() bool {
		remoteLost, _ = sample(t, r1, "gw_stream_remote_packets_lost", audioOut...)
		return remoteLost >= float64(a.dropped)
	}) || remoteLost > float64(a.dropped+1) {
		t.Errorf("caller: remote audio packets lost %v, relay dropped %d", remoteLost, a.dropped)
	}
	var v streamStats
	var retrans, videoLost float64
	if !poll(60*time.Second, func() bool {
		v = relay.stream(videoSSRC)
		retrans, _ = sample(t, r1, "gw_stream_retransmitted_packets_total", videoOut...)
		return v.undelivered == 0 && retrans == float64(v.resent)
	}) {
		t.Errorf("caller retransmitted %v video packets, the relay saw %d resends and %d sequence numbers undelivered",
			retrans, v.resent, v.undelivered)
	}
	// Exact once the callee published after the last resend, unless one
	// came too late to count.
	if !poll(10*time.Second, func() bool {
		v = relay.stream(videoSSRC)
		videoLost, _ = sample(t, r2, "gw_stream_packets_lost", videoIn...)
		return videoLost == float64(v.predictedLost)
	}) && (videoLost < float64(v.predictedLost) || videoLost > float64(v.predictedLost+2)) {
		t.Errorf("callee lost %v video packets, the relay's deliveries predict %d", videoLost, v.predictedLost)
	}
	nacksSent, _ := sample(t, r2, "gw_stream_feedback_sent_total", append(videoIn, "type", "nack")...)
	nacksRecv, _ := sample(t, r1, "gw_stream_feedback_received_total", append(videoOut, "type", "nack")...)

	// Loss.
	ratio := float64(a.dropped) / float64(a.impaired)
	if math.Abs(ratio-lossP) > 0.025 {
		t.Errorf("audio loss ratio over the run %.4f (%d of %d), want %.2f ± 0.025", ratio, a.dropped, a.impaired, lossP)
	}
	if m := mean(imp.loss); m < 0.01 || m > 0.10 {
		t.Errorf("callee's last-second audio loss ratios %v: mean %.3f", imp.loss, m)
	}
	if m := mean(imp.remoteLoss); m < 0.01 || m > 0.10 {
		t.Errorf("caller's remote audio loss ratios %v: mean %.3f", imp.remoteLoss, m)
	}
	// Jitter.
	want := delayD.Seconds() / 3
	for _, c := range []struct {
		what      string
		base, imp []float64
	}{
		{"callee's audio jitter", base.jitter, imp.jitter},
		{"caller's remote audio jitter", base.remoteJitter, imp.remoteJitter},
	} {
		// Before impairing, gw reads what the relay passed on: the
		// machine's own noise (well under D/6 when quiet; a loaded
		// machine under -race has reached 4 ms), with 1 ms for what is
		// added after the relay (0.67 ms in one CI run, under -race with
		// the other packages' tests on both CPUs).
		b := median(c.base)
		if ref := baseRelay.outJitter; math.Abs(b-ref) > 0.25*ref+0.001 {
			t.Errorf("%s before impairing: %v, median %.5f s, the relay emitted %.5f s", c.what, c.base, b, ref)
		}
		m := mean(c.imp)
		if m-b < want/2 {
			t.Errorf("%s rose from %.5f to only %.5f s under uniform delay [0, %v] (D/3 = %.5f s)", c.what, b, m, delayD, want)
		}
		if m < 0.65*want || m > 1.35*want+impRelay.inJitter {
			t.Errorf("%s under uniform delay [0, %v]: %v, mean %.5f s, want %.5f ± 35%% (+ %.5f upstream noise)",
				c.what, delayD, c.imp, m, want, impRelay.inJitter)
		}
		if ref := impRelay.outJitter; math.Abs(m-ref) > 0.25*ref {
			t.Errorf("%s %.5f s, the relay emitted %.5f s ± 25%%", c.what, m, ref)
		}
	}
	// Video.
	if nacksSent == 0 || nacksRecv == 0 {
		t.Errorf("NACKs sent by the callee %v, received by the caller %v", nacksSent, nacksRecv)
	}
	if retrans == 0 || retrans < float64(v.droppedFirst-v.undelivered) {
		t.Errorf("caller retransmitted %v; relay dropped %d originals, %d never delivered", retrans, v.droppedFirst, v.undelivered)
	}
	if math.Abs(videoLost) > 3 {
		t.Errorf("callee's video packets lost %v after NACK recovery", videoLost)
	}
	t.Logf("audio: relay impaired %d, dropped %d (%.4f), delivered delays mean |Δd| %.5f s, %d reordered; "+
		"callee lost %v, caller remote lost %v",
		a.impaired, a.dropped, ratio, a.meanDelayStep, a.reordered, lost, remoteLost)
	t.Logf("audio jitter (D/3 = %.5f s): baseline median callee %.5f remote %.5f; impaired mean callee %.5f %v, remote %.5f %v",
		want, median(base.jitter), median(base.remoteJitter), mean(imp.jitter), imp.jitter, mean(imp.remoteJitter), imp.remoteJitter)
	t.Logf("relay's audio mean |D|: baseline in %.5f out %.5f; impaired in %.5f out %.5f",
		baseRelay.inJitter, baseRelay.outJitter, impRelay.inJitter, impRelay.outJitter)
	t.Logf("audio loss ratio gauges: callee %v, remote %v", imp.loss, imp.remoteLoss)
	t.Logf("video: relay impaired %d, dropped %d (%d originals), resends %d, never delivered %d, predicted lost %d; "+
		"caller retransmitted %v, NACKs %v/%v, callee lost %v",
		v.impaired, v.dropped, v.droppedFirst, v.resent, v.undelivered, v.predictedLost, retrans, nacksSent, nacksRecv, videoLost)

	for name, reg := range map[string]*metrics.Registry{"caller": r1, "callee": r2} {
		problems, err := testutil.GatherAndLint(reg.Gatherer())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: lint: %s: %s", name, p.Metric, p.Text)
		}
	}

	video.Stop()
	audio.Stop()
	hangUpSeriesGone(t, alice, bob, callerMC, calleeMC, r1, r2)
}

// newTURNSide is newSide with a peer created with turn: true.
func newTURNSide(t testing.TB, c *gwtest.Client, id string, videoPT, audioPT int) *side {
	t.Helper()
	r := c.Expect(201, "POST", "/peers", map[string]any{"key": c.Key, "domain": "localhost", "turn": true, "peer_id": id})
	s := &side{c: c, videoPT: videoPT, audioPT: audioPT, videoCodec: "H264", audioCodec: "OPUS"}
	s.p = gwtest.Peer{ID: id, Token: extractToken(r.Body)}
	c.WaitEvent(c.PeerEvents(s.p), "OPEN", 10*time.Second)
	s.videoID, s.videoPort = openMedia(t, c, true)
	s.audioID, s.audioPort = openMedia(t, c, false)
	s.vrtcpID, s.vrtcpPort = openRTCP(t, c)
	s.artcpID, s.artcpPort = openRTCP(t, c)
	s.videoApp, s.audioApp, s.vrtcpApp, s.artcpApp = newUDPApp(t), newUDPApp(t), newUDPApp(t), newUDPApp(t)
	return s
}

// audioSamples are the audio figures of successive publications.
type audioSamples struct {
	jitter, loss             []float64 // callee, inbound
	remoteJitter, remoteLoss []float64 // caller, outbound: the callee's reports
}

// collectAudio takes n publications of the callee's inbound audio jitter
// and n of the callee's reports at the caller (a publication: the value
// changed; each comes about once a second), counting only those seen once
// ready holds.
func collectAudio(t *testing.T, caller, callee *metrics.Registry, in, out []string, n int, ready func() bool, begin func()) audioSamples {
	t.Helper()
	var s audioSamples
	began := false
	lastJ, lastR := math.NaN(), math.NaN()
	deadline := time.Now().Add(time.Duration(n)*5*time.Second + 30*time.Second)
	for len(s.jitter) < n || len(s.remoteJitter) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out collecting %d audio publications: have %+v", n, s)
		}
		ok := ready()
		if ok && !began {
			began = true
			begin()
		}
		inFams := scrape(t, callee)
		if j, found := pick(inFams, "gw_stream_jitter_seconds", in...); found && j != lastJ {
			lastJ = j
			if ok && len(s.jitter) < n {
				l, _ := pick(inFams, "gw_stream_loss_ratio", in...)
				s.jitter, s.loss = append(s.jitter, j), append(s.loss, l)
			}
		}
		outFams := scrape(t, caller)
		if j, found := pick(outFams, "gw_stream_remote_jitter_seconds", out...); found && j != lastR {
			lastR = j
			if ok && len(s.remoteJitter) < n {
				l, _ := pick(outFams, "gw_stream_remote_loss_ratio", out...)
				s.remoteJitter, s.remoteLoss = append(s.remoteJitter, j), append(s.remoteLoss, l)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// poll is waitFor that lets the caller report what it saw.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func scrape(t *testing.T, reg *metrics.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	ys := slices.Sorted(slices.Values(xs))
	if len(ys)%2 == 1 {
		return ys[len(ys)/2]
	}
	return (ys[len(ys)/2-1] + ys[len(ys)/2]) / 2
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// impairingTURN is a pion/turn server on loopback whose relayed sockets
// impair what the client sends to its peers.
type impairingTURN struct {
	srv  *turn.Server
	addr string
	*impairer
}

const (
	impairUser, impairPass, impairRealm = "gw", "impaired", "gw.test"
	// Ports of the TURN server and its relays: a range no other test
	// uses, below the ephemeral range.
	impairPortMin, impairPortMax = 29000, 29999
)

func startImpairingTURN(t testing.TB, seed uint64) *impairingTURN {
	t.Helper()
	r := &impairingTURN{impairer: newImpairer(seed)}
	ln, err := listenImpairPort()
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.LocalAddr().String()
	key := turn.GenerateAuthKey(impairUser, impairRealm, impairPass)
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	r.srv, err = turn.NewServer(turn.ServerConfig{
		Realm:         impairRealm,
		LoggerFactory: quiet,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == impairUser
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: ln, RelayAddressGenerator: relayGen{r.impairer}}},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The control planes are gone by now (their cleanups ran first), and
		// with them the allocations; closing ends the server's goroutines,
		// then no delayed delivery may still be pending.
		if err := r.srv.Close(); err != nil {
			t.Errorf("turn server close: %v", err)
		}
		waitFor(t, "TURN allocations closed", 10*time.Second, func() bool { return r.srv.AllocationCount() == 0 && r.openConns() == 0 })
		r.impairer.close()
	})
	return r
}

func (r *impairingTURN) iceServer() ICEServer {
	return ICEServer{URLs: []string{"turn:" + r.addr + "?transport=udp"}, Username: impairUser, Credential: impairPass}
}

// listenImpairPort opens a UDP socket on a free port of the range.
func listenImpairPort() (net.PacketConn, error) {
	var err error
	for range 100 {
		port := impairPortMin + rand.IntN(impairPortMax-impairPortMin+1)
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// relayGen is the server's turn.RelayAddressGenerator: UDP only, each
// relayed socket wrapped by the impairer.
type relayGen struct{ im *impairer }

func (relayGen) Validate() error { return nil }

func (g relayGen) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if conf.Network != "udp4" {
		return nil, nil, fmt.Errorf("impairing relay: network %s", conf.Network)
	}
	c, err := listenImpairPort()
	if err != nil {
		return nil, nil, err
	}
	return g.im.wrap(c), c.LocalAddr(), nil
}

func (relayGen) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, fmt.Errorf("impairing relay: no TCP")
}

func (relayGen) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, fmt.Errorf("impairing relay: no TCP")
}

// impairment of one payload type: drop with probability p, else delay by a
// uniform random duration in [0, maxDelay].
type impairment struct {
	p        float64
	maxDelay time.Duration
}

// impairer decides the fate of each datagram a relayed socket sends to a
// peer and keeps the account per SSRC. Only RTP is impaired: STUN, DTLS
// and RTCP pass untouched, so ICE, the handshake, reports and NACKs work as
// on a clean path. The client-bound direction (ReadFrom) is left alone:
// the callee sends no RTP in the test.
type impairer struct {
	seed uint64

	mu      sync.Mutex
	rules   map[uint8]impairment
	clock   map[uint8]float64 // RTP clock rates by payload type
	streams map[uint32]*relayStream
	conns   int
	closed  bool
	pending map[*time.Timer]struct{}
	wg      sync.WaitGroup // pending delayed deliveries
}

// relayStream is the relay's account of one SSRC.
type relayStream struct {
	pt           uint8
	rng          *rand.Rand
	seen         int // RTP packets, impaired or not
	impaired     int // packets that met a rule
	dropped      int // of them dropped, originals and resends
	droppedFirst int // of them dropped the first time their sequence number came
	resent       int // packets whose sequence number came before (NACK resends)
	reordered    int // delivered after a higher sequence number
	copies       map[uint16]int
	delays       []time.Duration // of delivered impaired packets, in send order
	lastOut      uint16
	anyOut       bool
	// RFC 3550 interarrival jitter of the stream as it reaches the relay
	// (the path's own noise upstream) and as the relay emits it (what the
	// callee's gw should measure, but for the noise downstream).
	in, out jitterMeter
}

// jitterMeter accumulates |D(i-1,i)| of RFC 3550 A.8 in seconds since its
// last reset: the mean is what the EWMA of A.8 estimates.
type jitterMeter struct {
	rate   float64
	have   bool
	lastAt time.Time
	lastTS uint32
	sum    float64
	n      int
}

func (m *jitterMeter) add(at time.Time, ts uint32) {
	if m.have {
		d := at.Sub(m.lastAt).Seconds() - float64(int32(ts-m.lastTS))/m.rate
		m.sum += math.Abs(d)
		m.n++
	}
	m.have, m.lastAt, m.lastTS = true, at, ts
}

func (m *jitterMeter) mean() float64 {
	if m.n == 0 {
		return math.NaN()
	}
	return m.sum / float64(m.n)
}

func newImpairer(seed uint64) *impairer {
	return &impairer{seed: seed, streams: map[uint32]*relayStream{}, pending: map[*time.Timer]struct{}{}}
}

// setClock gives the RTP clock rates by payload type, for the jitter.
func (im *impairer) setClock(rates map[uint8]float64) {
	im.mu.Lock()
	im.clock = rates
	im.mu.Unlock()
}

// impair sets the rules by payload type; nil stops impairing.
func (im *impairer) impair(rules map[uint8]impairment) {
	im.mu.Lock()
	im.rules = rules
	im.mu.Unlock()
}

// streamStats is the account of one SSRC at a moment.
type streamStats struct {
	pt                                            uint8
	seen, impaired, dropped, droppedFirst, resent int
	reordered, undelivered, predictedLost         int
	meanDelayStep                                 float64
	// Mean |D| (seconds) since resetJitter, at the relay's input and output.
	inJitter, outJitter float64
}

// resetJitter starts the relay's jitter means of ssrc over.
func (im *impairer) resetJitter(ssrc uint32) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if s := im.streams[ssrc]; s != nil {
		s.in.sum, s.in.n, s.out.sum, s.out.n = 0, 0, 0, 0
	}
}

// stream is the account of ssrc so far.
func (im *impairer) stream(ssrc uint32) streamStats {
	im.mu.Lock()
	defer im.mu.Unlock()
	s := im.streams[ssrc]
	if s == nil {
		return streamStats{}
	}
	st := streamStats{pt: s.pt, seen: s.seen, impaired: s.impaired, dropped: s.dropped, droppedFirst: s.droppedFirst,
		resent: s.resent, reordered: s.reordered, meanDelayStep: s.meanDelayStep(), inJitter: s.in.mean(), outJitter: s.out.mean()}
	for _, c := range s.copies {
		// RFC 3550 expected - received as the receiver counts it: one
		// per sequence number, minus each copy delivered.
		st.predictedLost += 1 - c
		if c == 0 {
			st.undelivered++
		}
	}
	return st
}

func (im *impairer) openConns() int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.conns
}

// meanDelayStep is the mean |d_i - d_(i-1)| of consecutive delivered
// impaired packets: what RFC 3550 jitter estimates from this path.
func (s *relayStream) meanDelayStep() float64 {
	if len(s.delays) < 2 {
		return 0
	}
	var sum time.Duration
	for i := 1; i < len(s.delays); i++ {
		sum += (s.delays[i] - s.delays[i-1]).Abs()
	}
	return sum.Seconds() / float64(len(s.delays)-1)
}

// rtpHeader classifies a datagram by RFC 7983 (first byte 128-191: RTP or
// RTCP) and RFC 5761 (second byte 192-223: RTCP) and reads the clear part
// of an SRTP header.
func rtpHeader(b []byte) (ssrc uint32, pt uint8, seq uint16, ts uint32, ok bool) {
	if len(b) < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
		return 0, 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), b[1] & 0x7f, binary.BigEndian.Uint16(b[2:4]), binary.BigEndian.Uint32(b[4:8]), true
}

// decide returns whether to drop b and how long to hold it, and accounts
// for it.
func (im *impairer) decide(b []byte) (drop bool, delay time.Duration, ssrc uint32, seq uint16, ts uint32, resend bool) {
	ssrc, pt, seq, ts, ok := rtpHeader(b)
	if !ok {
		return false, 0, 0, 0, 0, false
	}
	now := time.Now()
	im.mu.Lock()
	defer im.mu.Unlock()
	s := im.streams[ssrc]
	if s == nil {
		// Seeded by payload type: the draws of a stream repeat from run
		// to run whatever SSRC pion picks.
		s = &relayStream{pt: pt, rng: rand.New(rand.NewPCG(im.seed, uint64(pt))), copies: map[uint16]int{}}
		s.in.rate, s.out.rate = im.clock[pt], im.clock[pt]
		im.streams[ssrc] = s
	}
	s.seen++
	n, again := s.copies[seq]
	if again {
		s.resent++
	} else if s.in.rate > 0 {
		s.in.add(now, ts)
	}
	rule, impaired := im.rules[pt]
	if impaired {
		s.impaired++
		if s.rng.Float64() < rule.p {
			s.dropped++
			if !again {
				s.droppedFirst++
				s.copies[seq] = 0
			}
			return true, 0, ssrc, seq, ts, again
		}
		if rule.maxDelay > 0 {
			delay = time.Duration(s.rng.Int64N(int64(rule.maxDelay) + 1))
			s.delays = append(s.delays, delay)
		}
	}
	s.copies[seq] = n + 1
	if delay == 0 {
		s.delivered(seq, ts, again, now)
	}
	return false, delay, ssrc, seq, ts, again
}

// delivered notes a packet leaving (called with mu held). Resends stay out
// of the jitter: their timestamps are old on purpose.
func (s *relayStream) delivered(seq uint16, ts uint32, resend bool, at time.Time) {
	if !resend && s.out.rate > 0 {
		s.out.add(at, ts)
	}
	if s.anyOut && int16(seq-s.lastOut) < 0 {
		s.reordered++
		return
	}
	s.lastOut, s.anyOut = seq, true
}

// later runs f after d unless the impairer closes first.
func (im *impairer) later(d time.Duration, f func()) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return
	}
	im.wg.Add(1)
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		defer im.wg.Done()
		im.mu.Lock()
		delete(im.pending, tm)
		im.mu.Unlock()
		f()
	})
	im.pending[tm] = struct{}{}
}

func (im *impairer) close() {
	im.mu.Lock()
	im.closed = true
	for tm := range im.pending {
		if tm.Stop() {
			im.wg.Done()
		}
		delete(im.pending, tm)
	}
	im.mu.Unlock()
	im.wg.Wait()
}

func (im *impairer) wrap(c net.PacketConn) net.PacketConn {
	im.mu.Lock()
	im.conns++
	im.mu.Unlock()
	return &impairedConn{PacketConn: c, im: im}
}

// impairedConn is a relayed socket: WriteTo sends to a peer.
type impairedConn struct {
	net.PacketConn
	im        *impairer
	closeOnce sync.Once
}

func (c *impairedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	drop, delay, ssrc, seq, ts, resend := c.im.decide(b)
	switch {
	case drop:
		return len(b), nil
	case delay > 0:
		// The server reuses b for its next read.
		p := append([]byte(nil), b...)
		c.im.later(delay, func() {
			c.im.mu.Lock()
			c.im.streams[ssrc].delivered(seq, ts, resend, time.Now())
			c.im.mu.Unlock()
			c.PacketConn.WriteTo(p, addr) //nolint:errcheck // a closed relay drops it, as a path would
		})
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func (c *impairedConn) Close() error {
	err := c.PacketConn.Close()
	c.closeOnce.Do(func() {
		c.im.mu.Lock()
		c.im.conns--
		c.im.mu.Unlock()
	})
	return err
}
