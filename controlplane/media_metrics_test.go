package controlplane

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"github.com/gw-project/gw/metrics"
)

// metricsEnvs is two control planes with registries whose peers meet at the
// first one's signaling server.
func metricsEnvs(t *testing.T) (*testEnv, *testEnv, *metrics.Registry, *metrics.Registry) {
	t.Helper()
	r1 := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	r2 := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	e1 := newTestEnv(t, withMetrics(r1))
	e2 := newTestEnv(t, withMetrics(r2), withSignalingURL("ws://"+e1.sigAddr+"/peerjs"))
	return e1, e2, r1, r2
}

// rtpSeq is an RTP packet with the given sequence number and timestamp.
func rtpSeq(pt uint8, ssrc uint32, seq uint16, ts uint32, size int) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts},
		Payload: make([]byte, size)}).Marshal()
	return b
}

// streamSeries counts the gw_stream_* samples of a connection.
func streamSeries(t *testing.T, reg *metrics.Registry, conn string) int {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "gw_stream_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connection" && l.GetValue() == conn {
					n++
				}
			}
		}
	}
	return n
}

// hangUpSeriesGone: the caller hangs up, both sides see CLOSE, and every
// gw_stream_* series of the call leaves both registries.
func hangUpSeriesGone(t *testing.T, caller, callee *side, callerMC, calleeMC string, r1, r2 *metrics.Registry) {
	t.Helper()
	caller.c.Expect(204, "DELETE", mcPath(callerMC, ""), nil)
	caller.c.WaitEvent(mcPath(callerMC, "/events"), "CLOSE", 10*time.Second, "STREAM")
	callee.c.WaitEvent(mcPath(calleeMC, "/events"), "CLOSE", 20*time.Second, "STREAM")
	waitFor(t, "series gone after close", 10*time.Second, func() bool {
		return streamSeries(t, r1, callerMC) == 0 && streamSeries(t, r2, calleeMC) == 0
	})
}

// TestMediaMetricsWiring: a call between two control planes, with a gap the
// app leaves in its video's sequence numbers (5 packets never sent). The
// gap shows as RFC 3550 loss on the app-to-gw leg at the caller, as loss
// measured by the callee on what it receives, and in the callee's receiver
// reports at the caller; the callee NACKs the gap and the caller has
// nothing to resend. Streams, PeerConnections, setup time, RTT, the fleet
// histograms and the status extension follow; everything of the
// connection leaves /metrics when it closes.
func TestMediaMetricsWiring(t *testing.T) {
	e1, e2, r1, r2 := metricsEnvs(t)
	alice := newSide(t, e1.c, "mm-alice", 100, 111)
	bob := newSide(t, e2.c, "mm-bob", 100, 111)
	callerMC, calleeMC := call(t, alice, bob, nil)

	const gap0, gapN = 20, 5
	seq := 0
	video := startSending(alice.videoApp, alice.videoPort, 10*time.Millisecond, func(int) []byte {
		if seq == gap0 {
			seq += gapN
		}
		b := rtpSeq(uint8(alice.videoPT), 0xa11ce, uint16(seq), uint32(seq)*900, 300)
		seq++
		return b
	})
	defer video.Stop()
	audio := startSending(bob.audioApp, bob.audioPort, 20*time.Millisecond, func(i int) []byte {
		return rtpSeq(uint8(bob.audioPT), 0xb0b, uint16(i), uint32(i)*960, 80)
	})
	defer audio.Stop()

	value := func(reg *metrics.Registry, name string, kv ...string) float64 {
		v, _ := sample(t, reg, name, kv...)
		return v
	}
	in := []string{"connection", calleeMC, "kind", "video", "direction", "inbound"}
	out := []string{"connection", callerMC, "kind", "video", "direction", "outbound"}
	waitFor(t, "the gap as loss at the callee", 20*time.Second, func() bool {
		return value(r2, "gw_stream_packets_lost", in...) == gapN
	})
	waitFor(t, "the gap as loss on the app leg at the caller", 20*time.Second, func() bool {
		return value(r1, "gw_stream_packets_lost", out...) == gapN
	})
	waitFor(t, "the callee's reports of the gap at the caller", 20*time.Second, func() bool {
		return value(r1, "gw_stream_remote_packets_lost", out...) == gapN
	})
	waitFor(t, "NACKs both ways", 20*time.Second, func() bool {
		return value(r2, "gw_stream_feedback_sent_total", append(in, "type", "nack")...) >= 1 &&
			value(r1, "gw_stream_feedback_received_total", append(out, "type", "nack")...) >= 1
	})
	waitFor(t, "RTT of both streams", 20*time.Second, func() bool {
		_, okIn := sample(t, r2, "gw_stream_rtt_seconds", in...)
		_, okOut := sample(t, r1, "gw_stream_rtt_seconds", out...)
		return okIn && okOut
	})
	waitFor(t, "fleet samples", 20*time.Second, func() bool {
		return value(r2, "gw_media_jitter_seconds", "kind", "video", "direction", "inbound") >= 2 &&
			value(r1, "gw_media_loss_ratio", "kind", "video", "direction", "outbound") >= 1
	})
	if v := value(r1, "gw_stream_retransmitted_packets_total", out...); v != 0 {
		t.Errorf("%v packets resent; the gap was never sent", v)
	}
	if _, ok := sample(t, r2, "gw_stream_retransmitted_packets_total", in...); ok {
		t.Error("a retransmitted series for an inbound stream")
	}
	if v := value(r2, "gw_stream_packets_total", in...); v < 50 {
		t.Errorf("callee received %v packets", v)
	}
	if v := value(r2, "gw_stream_bytes_total", in...); v == 0 || int(v)%300 != 0 {
		t.Errorf("callee received %v payload bytes", v)
	}
	for _, c := range []struct {
		reg        *metrics.Registry
		kind, dir  string
		want       float64
		regName    string
		connection string
	}{
		{r1, "video", "outbound", 1, "caller", callerMC},
		{r1, "audio", "inbound", 1, "caller", callerMC},
		{r2, "video", "inbound", 1, "callee", calleeMC},
		{r2, "audio", "outbound", 1, "callee", calleeMC},
	} {
		if v := value(c.reg, "gw_streams", "kind", c.kind, "direction", c.dir); v != c.want {
			t.Errorf("%s: gw_streams{%s,%s} = %v", c.regName, c.kind, c.dir, v)
		}
	}
	for _, reg := range []*metrics.Registry{r1, r2} {
		if v := value(reg, "gw_peer_connections", "state", "connected"); v != 1 {
			t.Errorf("connected PeerConnections: %v", v)
		}
		if v := value(reg, "gw_connection_setup_duration_seconds", "type", "media"); v != 1 {
			t.Errorf("setup observations: %v", v)
		}
		if v := value(reg, "gw_dtls_failures_total"); v != 0 {
			t.Errorf("DTLS failures: %v", v)
		}
		if v := value(reg, "gw_srtp_failures_total"); v != 0 {
			t.Errorf("SRTP failures: %v", v)
		}
	}

	// The status extension: the same figures, W3C names.
	var st struct {
		Open  bool
		Stats struct {
			Inbound []struct {
				Kind                                      string
				SSRC                                      uint32
				PacketsReceived, BytesReceived, NACKCount uint64
				PacketsLost                               int64
				Jitter, FractionLost                      float64
				PacketsDuplicated, PLICount, FIRCount     uint64
			}
			Outbound []struct {
				Kind                                             string
				SSRC                                             uint32
				PacketsSent, RetransmittedPacketsSent, NACKCount uint64
				Remote                                           *struct {
					PacketsLost   int64
					RoundTripTime *float64
				}
				App *struct{ PacketsReceived, PacketsLost int64 }
			}
			CurrentRoundTripTime *float64
		}
	}
	e2.c.Expect(200, "GET", mcPath(calleeMC, "/status"), nil).JSON(t, &st)
	var found bool
	for _, s := range st.Stats.Inbound {
		if s.Kind == "video" {
			found = true
			if s.PacketsLost != gapN || s.SSRC == 0 || s.PacketsReceived == 0 || s.BytesReceived != 300*s.PacketsReceived || s.NACKCount == 0 {
				t.Errorf("callee's inbound video %+v", s)
			}
		}
	}
	if !found || len(st.Stats.Outbound) != 1 || st.Stats.Outbound[0].Kind != "audio" || st.Stats.CurrentRoundTripTime == nil {
		t.Errorf("callee's status stats %+v", st.Stats)
	}
	st.Stats.Outbound = nil
	e1.c.Expect(200, "GET", mcPath(callerMC, "/status"), nil).JSON(t, &st)
	found = false
	for _, s := range st.Stats.Outbound {
		if s.Kind != "video" {
			continue
		}
		found = true
		if s.SSRC == 0 || s.PacketsSent == 0 || s.NACKCount == 0 || s.RetransmittedPacketsSent != 0 ||
			s.Remote == nil || s.Remote.PacketsLost != gapN || s.Remote.RoundTripTime == nil || s.App == nil || s.App.PacketsLost != gapN {
			t.Errorf("caller's outbound video %+v remote %+v app %+v", s, s.Remote, s.App)
		}
	}
	if !found {
		t.Errorf("caller's status stats %+v", st.Stats)
	}

	video.Stop()
	audio.Stop()
	hangUpSeriesGone(t, alice, bob, callerMC, calleeMC, r1, r2)
	for _, reg := range []*metrics.Registry{r1, r2} {
		for _, kind := range []string{"audio", "video"} {
			for _, dir := range []string{"inbound", "outbound"} {
				if v := value(reg, "gw_streams", "kind", kind, "direction", dir); v != 0 {
					t.Errorf("gw_streams{%s,%s} = %v after close", kind, dir, v)
				}
			}
		}
		if v := value(reg, "gw_peer_connections", "state", "connected"); v != 0 {
			t.Errorf("connected PeerConnections after close: %v", v)
		}
	}
}

// TestSRTPFailureCounting: the logger pion/srtp reports dropped packets to
// counts failures to decrypt or authenticate, not replays.
func TestSRTPFailureCounting(t *testing.T) {
	reg := metrics.New(metrics.Options{})
	s := &Server{cfg: Config{Metrics: reg}, log: testLogger(t)}
	f := s.pionLoggerFactory()
	l := f.NewLogger("srtp")
	l.Info("failed to verify auth tag")
	l.Info("srtp ssrc=1 index=2: duplicated packet")
	l.Info("packet is too short to be RTP packet: 3")
	f.NewLogger("ice").Info("failed to verify auth tag") // another scope: not SRTP
	if v, _ := sample(t, reg, "gw_srtp_failures_total"); v != 2 {
		t.Errorf("gw_srtp_failures_total %v, want 2", v)
	}
	if _, ok := (&Server{log: testLogger(t)}).pionLoggerFactory().(pionLogs); !ok {
		t.Error("without metrics, pion's messages do not go straight to gw's logger")
	}
}

// TestSendCounter: resends below the NACK responder count as sent and as
// retransmitted.
func TestSendCounter(t *testing.T) {
	var c sendCounter
	outer, _ := counting{c: &c}.NewInterceptor("")
	inner, _ := counting{c: &c, inner: true}.NewInterceptor("")
	var wire int
	w := inner.BindLocalStream(&interceptorInfo, rtpWriterFunc(func(*rtp.Header, []byte) { wire++ }))
	top := outer.BindLocalStream(&interceptorInfo, w)
	h := &rtp.Header{SSRC: interceptorInfo.SSRC}
	for range 10 {
		if _, err := top.Write(h, make([]byte, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // what a NACK responder writes below the outer counter
		w.Write(h, make([]byte, 100), nil)
	}
	r := c.lookup(interceptorInfo.SSRC)
	if wire != 13 || r.allPackets.Load() != 13 || r.origPackets.Load() != 10 || r.allBytes.Load() != 1300 || r.origBytes.Load() != 1000 {
		t.Errorf("wire %d, all %d/%d, originals %d/%d", wire, r.allPackets.Load(), r.allBytes.Load(), r.origPackets.Load(), r.origBytes.Load())
	}
	if c.lookup(1) != nil || (*sendCounter)(nil).lookup(1) != nil {
		t.Error("counts for an unknown stream")
	}
}

// TestSendCounterConcurrentReads: a status or a scrape while the track
// writes never counts an original in flight as a resend, and the resend
// counts only grow; a failed write counts nowhere.
func TestSendCounterConcurrentReads(t *testing.T) {
	var c sendCounter
	outer, _ := counting{c: &c}.NewInterceptor("")
	inner, _ := counting{c: &c, inner: true}.NewInterceptor("")
	fail := false
	w := inner.BindLocalStream(&interceptorInfo, interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
		if fail {
			return 0, io.ErrClosedPipe
		}
		return 100, nil
	}))
	top := outer.BindLocalStream(&interceptorInfo, w)
	h := &rtp.Header{SSRC: interceptorInfo.SSRC}
	payload := make([]byte, 100)
	r := c.lookup(interceptorInfo.SSRC)

	const originals = 200000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range originals {
			top.Write(h, payload, nil)
		}
	}()
	var reads, last uint64
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		p, _, rp, rb := r.sent()
		if rp != 0 || rb != 0 {
			t.Fatalf("after %d packets: %d resends (%d bytes) counted, none sent", p, rp, rb)
		}
		if p < last {
			t.Fatalf("packets sent went from %d down to %d", last, p)
		}
		last = p
	}
	for range 3 { // what a NACK responder writes below the outer counter
		w.Write(h, payload, nil)
	}
	fail = true
	if _, err := top.Write(h, payload, nil); err == nil {
		t.Fatal("failing write succeeded")
	}
	if p, b, rp, rb := r.sent(); p != originals+3 || b != 100*(originals+3) || rp != 3 || rb != 300 {
		t.Errorf("sent %d packets, %d bytes, resends %d, %d bytes; want %d, %d, 3, 300", p, b, rp, rb, originals+3, 100*(originals+3))
	}
	t.Logf("%d reads during the writes", reads)
}

var interceptorInfo = interceptor.StreamInfo{SSRC: 0x5eed}

// rtpWriterFunc is the end of an interceptor chain: the wire.
func rtpWriterFunc(f func(*rtp.Header, []byte)) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		f(h, p)
		return len(p), nil
	})
}
