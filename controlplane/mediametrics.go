package controlplane

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/gw-project/gw/metrics"
	"github.com/gw-project/gw/metrics/rtpstats"
)

// Per-stream figures of media connections, for /metrics (the registry is a
// metrics.StreamSource, the Server a metrics.PeerConnectionSource; see
// wireMetrics) and for the status of a media connection.
//
// Where each figure comes from:
//
//   - inbound streams (the remote's track, to the app): packets, bytes,
//     jitter, packets lost and fraction lost from an rtpstats.Receiver that
//     rtpLoop feeds, on the goroutine that reads the track (packets and
//     bytes live, from Counts); NACK/PLI/FIR sent from pion's stats
//     interceptor (InboundRTPStreamStats); RTT from RTCP XR
//     DLRR if the remote sends it, else the selected ICE candidate pair's.
//     No retransmission count: without RTX a resent packet looks like a
//     late one (webrtc-stats then omits retransmittedPacketsReceived).
//   - outbound streams (the app's media port, to the remote): packets and
//     bytes sent and the retransmissions among them from two counting
//     interceptors around pion's NACK responder (sendCounter); NACK/PLI/FIR
//     received, and the remote's receiver reports (jitter, packets lost,
//     fraction lost, and the RTT of SR/RR) from pion's stats interceptor
//     (OutboundRTPStreamStats, RemoteInboundRTPStreamStats); RTT from the
//     ICE candidate pair until a report gives one. The jitter and loss gw
//     measures itself are those of the app-to-gw leg: the media port's
//     rtpstats.Receiver on its fan-out sink (mediarelay.Fanout). There is
//     one per media port, so every connection the port feeds shows the
//     same app-leg figures on its outbound series.
//
// pion's stats interceptor sees RTCP only (rtcpStats, in mediapc.go): what
// it would count of the RTP, gw counts already.
//
// The estimators publish at most once a second of packet arrival time; the
// fleet histograms get one sample per stream per second from observeLoop.

// mediaStream is one stream of a media connection at a moment: its metrics
// figures and what the status shows besides.
type mediaStream struct {
	metrics.StreamStats
	ssrc uint32
	// inbound: gw's measurement of the remote's stream.
	rx rtpstats.Snapshot
	// outbound: gw's measurement of the app's stream, if its port measures.
	app    rtpstats.Snapshot
	hasApp bool
	// outbound: payload bytes of the resent packets.
	retransmittedBytes uint64
	// The remote's report's own RTT (outbound), not the ICE fallback.
	hasReportRTT bool
	reportRTT    float64
}

// collect lists the connection's streams: one inbound stream per remote
// track that arrived, one outbound stream per kind the app has sent. Nothing
// once the connection is closed, so its series leave /metrics at once.
func (mc *mediaConn) collect() []mediaStream {
	type inbound struct {
		ssrc uint32
		rx   *rtpstats.Receiver
	}
	var in [2]inbound
	mc.mu.Lock()
	if mc.closed {
		mc.mu.Unlock()
		return nil
	}
	send := mc.send
	for k := range mc.recv {
		in[k] = inbound{mc.recv[k].ssrc.Load(), mc.recv[k].rx.Load()}
	}
	mc.mu.Unlock()

	var getter stats.Getter
	if g := mc.stats.Load(); g != nil {
		getter = *g
	}
	iceRTT, hasICE := mc.iceRTT()
	out := make([]mediaStream, 0, 4)
	for k := range 2 {
		kind := metrics.KindAudio
		if k == kindVideo {
			kind = metrics.KindVideo
		}
		if r := in[k]; r.rx != nil && r.ssrc != 0 {
			s := mediaStream{ssrc: r.ssrc, rx: r.rx.Snapshot()}
			s.StreamStats = metrics.StreamStats{Peer: mc.p.id, RemotePeer: mc.remote, Connection: mc.id, Kind: kind, Direction: metrics.DirInbound}
			s.Packets, s.Bytes = r.rx.Counts()
			s.SetReceived(s.rx)
			if getter != nil {
				s.SetPion(getter.Get(r.ssrc))
			}
			if !s.HasRTT && hasICE {
				s.HasRTT, s.RTT = true, iceRTT
			}
			out = append(out, s)
		}
		sk := send[k]
		if sk == nil || sk.track == nil || sk.ssrc == 0 {
			continue
		}
		s := mediaStream{ssrc: sk.ssrc}
		s.StreamStats = metrics.StreamStats{Peer: mc.p.id, RemotePeer: mc.remote, Connection: mc.id, Kind: kind, Direction: metrics.DirOutbound}
		if sk.media != nil {
			if s.app, s.hasApp = sk.media.fan.Stats(); s.hasApp {
				s.SetReceived(s.app)
			}
		}
		if getter != nil {
			s.SetPion(getter.Get(sk.ssrc))
			s.hasReportRTT, s.reportRTT = s.HasRTT, s.RTT
		}
		if c := mc.sent.lookup(sk.ssrc); c != nil {
			s.Packets, s.Bytes, s.Retransmitted, s.retransmittedBytes = c.sent()
		}
		if s.Packets == 0 {
			// webrtc-stats: an RTP stream exists from its first packet.
			continue
		}
		if !s.HasRTT && hasICE {
			s.HasRTT, s.RTT = true, iceRTT
		}
		out = append(out, s)
	}
	return out
}

// iceRTT is the current RTT of the selected ICE candidate pair (STUN
// consent checks, every few seconds).
func (mc *mediaConn) iceRTT() (float64, bool) {
	if mc.pc == nil {
		return 0, false
	}
	st, ok := mc.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return 0, false
	}
	return st.CurrentRoundTripTime, true
}

// Streams implements metrics.StreamSource.
func (m *mediaRegistry) Streams() []metrics.StreamStats {
	m.mu.Lock()
	conns := make([]*mediaConn, 0, len(m.conns))
	for _, c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	var out []metrics.StreamStats
	for _, c := range conns {
		for _, s := range c.collect() {
			out = append(out, s.StreamStats)
		}
	}
	return out
}

// PeerConnectionStates implements metrics.PeerConnectionSource: the
// PeerConnections of the media and data connections not yet closed.
func (s *Server) PeerConnectionStates() map[string]int {
	out := map[string]int{}
	s.media.mu.Lock()
	for _, c := range s.media.conns {
		if c.pc != nil {
			out[c.pc.ConnectionState().String()]++
		}
	}
	s.media.mu.Unlock()
	s.data.mu.Lock()
	conns := make([]*dataConn, 0, len(s.data.conns))
	for _, c := range s.data.conns {
		conns = append(conns, c)
	}
	s.data.mu.Unlock()
	for _, c := range conns {
		if c.isClosed() {
			continue
		}
		c.mu.Lock()
		pc := c.pc
		c.mu.Unlock()
		if pc != nil {
			out[pc.ConnectionState().String()]++
		}
	}
	return out
}

// connected runs once, when the connection's PeerConnection first reaches
// "connected": the setup time, and the once-a-second sampling of its
// streams for the fleet histograms.
func (mc *mediaConn) connected() {
	m := mc.s.cfg.Metrics
	if m == nil {
		return
	}
	mc.mu.Lock()
	first := !mc.wasConnected
	mc.wasConnected = true
	mc.mu.Unlock()
	if !first {
		return
	}
	m.ObserveSetup(metrics.ConnMedia, time.Since(mc.created))
	mc.startLoop(func() { mc.observeLoop(m) })
}

// observeLoop feeds the fleet histograms (gw_media_*) once a second until
// the connection closes: an inbound stream when its estimator published
// since the last tick, an outbound one while the app's packets flow.
func (mc *mediaConn) observeLoop(m *metrics.Registry) {
	var obs [2][2]*metrics.MediaObserver // by kind, direction (0 in, 1 out)
	var lastAt [2]time.Time
	var lastSent [2]uint64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-mc.done:
			return
		case <-t.C:
		}
		for _, s := range mc.collect() {
			k, d := kindAudio, 0
			if s.Kind == metrics.KindVideo {
				k = kindVideo
			}
			if s.Direction == metrics.DirOutbound {
				d = 1
			}
			if d == 0 {
				if s.rx.At.IsZero() || s.rx.At.Equal(lastAt[k]) {
					continue
				}
				lastAt[k] = s.rx.At
			} else {
				if s.Packets == lastSent[k] {
					continue
				}
				lastSent[k] = s.Packets
			}
			if obs[k][d] == nil {
				obs[k][d] = m.MediaObserver(s.Kind, s.Direction)
			}
			obs[k][d].ObserveStream(&s.StreamStats)
		}
	}
}

// sendCounter counts each local stream's RTP twice: as the app's track
// writes it (outermost interceptor: the originals) and as it leaves for
// SRTP (innermost, below pion's NACK responder: originals and resends).
// The difference is the retransmissions. Each stream's counters are found
// once, when pion binds it, so a packet costs two atomic adds per side.
type sendCounter struct {
	mu sync.Mutex
	m  map[uint32]*rtpCounts
}

// rtpCounts are one stream's. An original counts as such before it goes
// down the chain and among all once it was sent, so a reader that loads all
// before the originals never takes an original in flight for a resend: it
// may miss a resend for a moment instead, and the highest figure reported
// so far is what it reports, so that the counters only grow (Prometheus).
type rtpCounts struct {
	origPackets, origBytes atomic.Uint64
	allPackets, allBytes   atomic.Uint64
	retxPackets, retxBytes atomic.Uint64 // the highest reported
}

// sent returns the packets and bytes sent, resends included, and how many
// of them were resends.
func (c *rtpCounts) sent() (packets, bytes, retxPackets, retxBytes uint64) {
	packets, bytes = c.allPackets.Load(), c.allBytes.Load()
	op, ob := c.origPackets.Load(), c.origBytes.Load()
	return packets, bytes, raise(&c.retxPackets, packets-min(op, packets)), raise(&c.retxBytes, bytes-min(ob, bytes))
}

// raise stores v in hi if it is higher, and returns hi.
func raise(hi *atomic.Uint64, v uint64) uint64 {
	for {
		h := hi.Load()
		if v <= h {
			return h
		}
		if hi.CompareAndSwap(h, v) {
			return v
		}
	}
}

func (c *sendCounter) get(ssrc uint32) *rtpCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint32]*rtpCounts{}
	}
	r := c.m[ssrc]
	if r == nil {
		r = &rtpCounts{}
		c.m[ssrc] = r
	}
	return r
}

func (c *sendCounter) lookup(ssrc uint32) *rtpCounts {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ssrc]
}

// counting is an interceptor.Factory of the counting interceptor on one
// side of the chain.
type counting struct {
	c     *sendCounter
	inner bool
}

func (f counting) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &countingInterceptor{c: f.c, inner: f.inner}, nil
}

type countingInterceptor struct {
	interceptor.NoOp
	c     *sendCounter
	inner bool
}

func (i *countingInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	cnt := i.c.get(info.SSRC)
	if i.inner {
		return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
			n, err := w.Write(h, payload, a)
			if err == nil {
				cnt.allPackets.Add(1)
				cnt.allBytes.Add(uint64(len(payload)))
			}
			return n, err
		})
	}
	// Originals count before they are written (see rtpCounts).
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		cnt.origPackets.Add(1)
		cnt.origBytes.Add(uint64(len(payload)))
		n, err := w.Write(h, payload, a)
		if err != nil {
			cnt.origPackets.Add(^uint64(0))
			cnt.origBytes.Add(-uint64(len(payload)))
		}
		return n, err
	})
}

// watchDTLS counts the PeerConnection's DTLS transport failing
// (gw_dtls_failures_total): a handshake that failed, a certificate that
// does not match the fingerprint, no common SRTP profile. A handshake cut
// short by gw closing the PeerConnection is not a failure.
func (s *Server) watchDTLS(pc *webrtc.PeerConnection) {
	m := s.cfg.Metrics
	if m == nil {
		return
	}
	pc.SCTP().Transport().OnStateChange(func(st webrtc.DTLSTransportState) {
		if st == webrtc.DTLSTransportStateFailed && pc.SignalingState() != webrtc.SignalingStateClosed {
			m.DTLSFailure()
		}
	})
}

// pionLoggerFactory is the SettingEngine's logger factory: pion's messages
// go to gw's logger (pionLogs), and with metrics it also counts SRTP and
// SRTCP packets that fail to decrypt or authenticate
// (gw_srtp_failures_total). pion/srtp reports nothing else of them: its
// session read loop logs each at Info on the "srtp" scope, and drops the
// packet. Replayed packets (a NACK resend of a packet that did arrive, or a
// duplicate on the path) are logged there too; they are not failures and
// do not count.
func (s *Server) pionLoggerFactory() logging.LoggerFactory {
	f := pionLogs{log: s.log}
	if s.cfg.Metrics == nil {
		return f
	}
	return srtpCountingFactory{LoggerFactory: f, m: s.cfg.Metrics}
}

type srtpCountingFactory struct {
	logging.LoggerFactory
	m *metrics.Registry
}

func (f srtpCountingFactory) NewLogger(scope string) logging.LeveledLogger {
	l := f.LoggerFactory.NewLogger(scope)
	if scope != "srtp" {
		return l
	}
	return srtpLogger{LeveledLogger: l, m: f.m}
}

type srtpLogger struct {
	logging.LeveledLogger
	m *metrics.Registry
}

func (l srtpLogger) Info(msg string) {
	if !strings.Contains(msg, "duplicated") {
		l.m.SRTPFailure()
	}
	l.LeveledLogger.Info(msg)
}

// The status's stats (a gw extension of MediaConnectionStatusMessage), with
// the member names of W3C webrtc-stats.
type mediaStatusStats struct {
	// Inbound: the remote's streams (RTCInboundRtpStreamStats).
	Inbound []inboundRTPStats `json:"inbound"`
	// Outbound: the app's streams (RTCOutboundRtpStreamStats).
	Outbound []outboundRTPStats `json:"outbound"`
	// CurrentRoundTripTime of the selected ICE candidate pair
	// (RTCIceCandidatePairStats), seconds; absent until measured.
	CurrentRoundTripTime *float64 `json:"currentRoundTripTime,omitempty"`
}

type inboundRTPStats struct {
	Kind              string  `json:"kind"`
	SSRC              uint32  `json:"ssrc"`
	PacketsReceived   uint64  `json:"packetsReceived"`
	BytesReceived     uint64  `json:"bytesReceived"`
	PacketsLost       int64   `json:"packetsLost"`
	FractionLost      float64 `json:"fractionLost"`
	Jitter            float64 `json:"jitter"`
	PacketsDuplicated uint64  `json:"packetsDuplicated"`
	NACKCount         uint64  `json:"nackCount"`
	PLICount          uint64  `json:"pliCount"`
	FIRCount          uint64  `json:"firCount"`
}

type outboundRTPStats struct {
	Kind                     string `json:"kind"`
	SSRC                     uint32 `json:"ssrc"`
	PacketsSent              uint64 `json:"packetsSent"`
	BytesSent                uint64 `json:"bytesSent"`
	RetransmittedPacketsSent uint64 `json:"retransmittedPacketsSent"`
	RetransmittedBytesSent   uint64 `json:"retransmittedBytesSent"`
	NACKCount                uint64 `json:"nackCount"`
	PLICount                 uint64 `json:"pliCount"`
	FIRCount                 uint64 `json:"firCount"`
	// Remote: what the remote's receiver reports say
	// (RTCRemoteInboundRtpStreamStats); absent before the first.
	Remote *remoteInboundRTPStats `json:"remote,omitempty"`
	// App: the app's stream as gw receives it on the media port, before
	// WebRTC (gw's own measurement, RFC 3550); absent until it sends.
	App *appRTPStats `json:"app,omitempty"`
}

type remoteInboundRTPStats struct {
	PacketsLost   int64    `json:"packetsLost"`
	FractionLost  float64  `json:"fractionLost"`
	Jitter        float64  `json:"jitter"`
	RoundTripTime *float64 `json:"roundTripTime,omitempty"`
}

type appRTPStats struct {
	PacketsReceived uint64  `json:"packetsReceived"`
	BytesReceived   uint64  `json:"bytesReceived"`
	PacketsLost     int64   `json:"packetsLost"`
	FractionLost    float64 `json:"fractionLost"`
	Jitter          float64 `json:"jitter"`
}

// statusStats is the connection's stats for its status.
func (mc *mediaConn) statusStats() *mediaStatusStats {
	st := &mediaStatusStats{Inbound: []inboundRTPStats{}, Outbound: []outboundRTPStats{}}
	if rtt, ok := mc.iceRTT(); ok {
		st.CurrentRoundTripTime = &rtt
	}
	for _, s := range mc.collect() {
		if s.Direction == metrics.DirInbound {
			st.Inbound = append(st.Inbound, inboundRTPStats{
				Kind: s.Kind, SSRC: s.ssrc, PacketsReceived: s.Packets, BytesReceived: s.Bytes,
				PacketsLost: s.PacketsLost, FractionLost: s.FractionLost, Jitter: s.Jitter, PacketsDuplicated: s.rx.Duplicates,
				NACKCount: s.NACKCount, PLICount: s.PLICount, FIRCount: s.FIRCount,
			})
			continue
		}
		o := outboundRTPStats{
			Kind: s.Kind, SSRC: s.ssrc, PacketsSent: s.Packets, BytesSent: s.Bytes,
			RetransmittedPacketsSent: s.Retransmitted, RetransmittedBytesSent: s.retransmittedBytes,
			NACKCount: s.NACKCount, PLICount: s.PLICount, FIRCount: s.FIRCount,
		}
		if s.HasRemote {
			o.Remote = &remoteInboundRTPStats{PacketsLost: s.RemotePacketsLost, FractionLost: s.RemoteFractionLost, Jitter: s.RemoteJitter}
			if s.hasReportRTT {
				rtt := s.reportRTT
				o.Remote.RoundTripTime = &rtt
			}
		}
		if s.hasApp && s.app.Packets > 0 {
			o.App = &appRTPStats{
				PacketsReceived: s.app.Packets, BytesReceived: s.app.Bytes,
				PacketsLost: s.app.Lost, FractionLost: s.app.FractionLost, Jitter: s.app.Jitter,
			}
		}
		st.Outbound = append(st.Outbound, o)
	}
	return st
}
