package metrics

import (
	"cmp"
	"math"
	"slices"
	"sync/atomic"

	"github.com/pion/interceptor/pkg/stats"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gw-project/gw/metrics/rtpstats"
)

// Kinds and directions of media streams. Inbound streams come from the
// remote peer (gw receives them over WebRTC and hands them to the app);
// outbound streams come from the app's UDP port and go to the remote.
const (
	KindAudio   = "audio"
	KindVideo   = "video"
	DirInbound  = "inbound"
	DirOutbound = "outbound"
)

// StreamStats are one media stream's figures at the time of a scrape.
// Names in comments are the W3C webrtc-stats members each field follows:
// of RTCInboundRtpStreamStats for inbound streams, RTCOutboundRtpStreamStats
// and RTCRemoteInboundRtpStreamStats for outbound ones.
type StreamStats struct {
	// Labels. Connection is the media connection id (mc-...): it keeps
	// two connections between the same peers apart.
	Peer, RemotePeer, Connection string
	Kind                         string // KindAudio or KindVideo
	Direction                    string // DirInbound or DirOutbound

	// Packets and Bytes (RTP payload) received from the remote (inbound:
	// packetsReceived, bytesReceived) or sent to it (outbound: packetsSent,
	// bytesSent).
	Packets, Bytes uint64

	// What gw measures itself on the RTP it receives for this stream, with
	// package rtpstats: from the remote for inbound streams (jitter,
	// packetsLost, and fractionLost as RTCRemoteInboundRtpStreamStats
	// defines it), from the app's UDP port for outbound ones (a gw
	// extension: the app-to-gw leg).
	Jitter       float64 // seconds
	PacketsLost  int64   // may be negative with duplicates (RFC 3550 6.4.1)
	FractionLost float64 // 0..1, over the last second

	// What the remote reports about an outbound stream in its RTCP receiver
	// reports (RTCRemoteInboundRtpStreamStats: jitter, packetsLost,
	// fractionLost). Only meaningful with HasRemote: the first report has
	// arrived.
	HasRemote          bool
	RemoteJitter       float64 // seconds
	RemotePacketsLost  int64
	RemoteFractionLost float64 // 0..1

	// RTT to the remote in seconds (roundTripTime of
	// RTCRemoteInboundRtpStreamStats, or currentRoundTripTime of the
	// selected ICE candidate pair); only meaningful with HasRTT.
	HasRTT bool
	RTT    float64

	// RTCP feedback: sent by gw for inbound streams, received by gw for
	// outbound ones (nackCount, pliCount, firCount on both sides).
	NACKCount, PLICount, FIRCount uint64

	// Retransmitted packets sent for an outbound stream (RTX or resent on
	// the stream's own SSRC in answer to NACKs: retransmittedPacketsSent,
	// a subset of Packets). Outbound only: without RTX, a resent packet
	// that arrives cannot be told from a late one, and webrtc-stats then
	// leaves retransmittedPacketsReceived out; so does gw.
	Retransmitted uint64
}

// SetReceived fills the figures gw measures itself from a receiver's
// published snapshot.
func (s *StreamStats) SetReceived(snap rtpstats.Snapshot) {
	s.Jitter, s.PacketsLost, s.FractionLost = snap.Jitter, snap.Lost, snap.FractionLost
}

// SetPion fills what pion's stats interceptor learns from RTCP of the
// stream (its Getter.Get(ssrc)): feedback counts for the stream's
// direction; for outbound streams the remote's reports and their RTT; for
// inbound ones the RTT of RTCP XR DLRR, when the remote sends it. Packets
// and bytes, and the figures of SetReceived, are gw's own: it counts them
// on its packet paths, so the interceptor need not see the RTP (and pion's
// inbound jitter takes a second difference of the delay and reads high).
func (s *StreamStats) SetPion(p *stats.Stats) {
	if p == nil {
		return
	}
	switch s.Direction {
	case DirInbound:
		in := &p.InboundRTPStreamStats
		s.NACKCount, s.PLICount, s.FIRCount = uint64(in.NACKCount), uint64(in.PLICount), uint64(in.FIRCount)
		if ro := &p.RemoteOutboundRTPStreamStats; ro.RoundTripTimeMeasurements > 0 {
			s.HasRTT, s.RTT = true, ro.RoundTripTime.Seconds()
		}
	case DirOutbound:
		out := &p.OutboundRTPStreamStats
		s.NACKCount, s.PLICount, s.FIRCount = uint64(out.NACKCount), uint64(out.PLICount), uint64(out.FIRCount)
		ri := &p.RemoteInboundRTPStreamStats
		// pion sets the remote's figures from the first receiver report;
		// before it they are all zero. (Its PacketsReceived needs the RTP
		// the interceptor does not see.)
		if ri.PacketsLost != 0 || ri.Jitter > 0 || ri.FractionLost > 0 || ri.RoundTripTimeMeasurements > 0 {
			s.HasRemote = true
			s.RemoteJitter = ri.Jitter
			s.RemotePacketsLost = signed24(ri.PacketsLost)
			s.RemoteFractionLost = ri.FractionLost
		}
		if ri.RoundTripTimeMeasurements > 0 {
			s.HasRTT, s.RTT = true, ri.RoundTripTime.Seconds()
		}
	}
}

// signed24 undoes pion's reading of an RR's cumulative lost, a 24-bit
// signed field, as unsigned.
func signed24(v int64) int64 {
	if v >= 1<<23 && v < 1<<24 {
		return v - 1<<24
	}
	return v
}

// StreamSource lists the open media streams. Streams is called at every
// scrape, from the scraping goroutine: it must be safe for concurrent use
// and should only copy figures out (e.g. rtpstats.Receiver.Snapshot). It
// returns a fresh slice, which the caller may reorder.
type StreamSource interface {
	Streams() []StreamStats
}

// StreamSourceFunc adapts a function to a StreamSource.
type StreamSourceFunc func() []StreamStats

// Streams calls f.
func (f StreamSourceFunc) Streams() []StreamStats { return f() }

// DataConnStats are one data connection's figures at the time of a scrape,
// named after RTCDataChannelStats.
type DataConnStats struct {
	// Labels: Connection is the data connection id (dc-...).
	Peer, RemotePeer, Connection string
	// Messages and bytes sent to the remote (messagesSent, bytesSent) and
	// received from it (messagesReceived, bytesReceived).
	MessagesSent, MessagesReceived uint64
	BytesSent, BytesReceived       uint64
	// Messages dropped on the way to the remote (the app's datagram could
	// not be sent on the channel: closed, or its buffer full) and on the
	// way to the app (could not be sent to its UDP port).
	DroppedSent, DroppedReceived uint64
	// BufferedAmount is bytes queued on the channel (RTCDataChannel
	// bufferedAmount).
	BufferedAmount uint64
}

// DataConnSource lists the open data connections; like StreamSource, it is
// called at every scrape and must be safe for concurrent use.
type DataConnSource interface {
	DataConns() []DataConnStats
}

// DataConnSourceFunc adapts a function to a DataConnSource.
type DataConnSourceFunc func() []DataConnStats

// DataConns calls f.
func (f DataConnSourceFunc) DataConns() []DataConnStats { return f() }

// MediaObserver feeds the fleet histograms of one kind and direction. Get
// one per stream from Registry.MediaObserver when the stream starts.
type MediaObserver struct {
	jitter, loss, rtt prometheus.Observer
}

// MediaObserver returns the observer of streams of kind (KindAudio,
// KindVideo) and direction (DirInbound, DirOutbound); nil (which Observe
// accepts) when r is nil.
func (r *Registry) MediaObserver(kind, direction string) *MediaObserver {
	if r == nil {
		return nil
	}
	return &MediaObserver{
		jitter: r.jitterHist.WithLabelValues(kind, direction),
		loss:   r.lossHist.WithLabelValues(kind, direction),
		rtt:    r.rttHist.WithLabelValues(kind, direction),
	}
}

// Observe records one sample of a stream's WebRTC leg: jitter and RTT in
// seconds, fraction lost 0..1. A negative or NaN value means "not known"
// and is skipped. Call it once a second per stream, e.g. when the stream's
// rtpstats.Receiver.Update reports a publication: samples, not scrapes,
// make the histograms, so a stream must not be sampled more often than
// another. For an inbound stream pass what gw measures (rtpstats); for an
// outbound one what the remote last reported (RTCP RR). It does not
// allocate.
func (o *MediaObserver) Observe(jitter, fractionLost, rtt float64) {
	if o == nil {
		return
	}
	if jitter >= 0 {
		o.jitter.Observe(jitter)
	}
	if fractionLost >= 0 {
		o.loss.Observe(fractionLost)
	}
	if rtt >= 0 {
		o.rtt.Observe(rtt)
	}
}

// ObserveStream is Observe with the WebRTC-leg figures picked out of s by
// its direction.
func (o *MediaObserver) ObserveStream(s *StreamStats) {
	jitter, loss, rtt := math.NaN(), math.NaN(), math.NaN()
	switch {
	case s.Direction == DirInbound:
		jitter, loss = s.Jitter, s.FractionLost
	case s.HasRemote:
		jitter, loss = s.RemoteJitter, s.RemoteFractionLost
	}
	if s.HasRTT {
		rtt = s.RTT
	}
	o.Observe(jitter, loss, rtt)
}

type streamBox struct{ s StreamSource }

// streamCollector builds the per-stream series and gw_streams at scrape
// time.
type streamCollector struct {
	max int
	src atomic.Pointer[streamBox]

	streams, unlisted                                    *prometheus.Desc
	packets, bytes, jitter, lost, fraction               *prometheus.Desc
	remoteJitter, remoteLost, remoteFraction, rtt        *prometheus.Desc
	feedbackSent, feedbackReceived, retransmittedPackets *prometheus.Desc
}

var streamLabels = []string{"peer", "remote_peer", "connection", "kind", "direction"}

func newStreamCollector(max int) *streamCollector {
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc("gw_stream_"+name, help, append(slices.Clone(streamLabels), extra...), nil)
	}
	return &streamCollector{
		max:      max,
		streams:  prometheus.NewDesc("gw_streams", "Open media streams, by kind and direction.", []string{"kind", "direction"}, nil),
		unlisted: prometheus.NewDesc("gw_streams_unlisted", "Open media streams without series of their own: over --metrics-max-streams.", nil, nil),
		packets: d("packets_total",
			"RTP packets of a media stream: received from the remote (inbound, packetsReceived) or sent to it (outbound, packetsSent)."),
		bytes: d("bytes_total",
			"RTP payload bytes of a media stream: received from the remote (inbound, bytesReceived) or sent to it (outbound, bytesSent)."),
		jitter: d("jitter_seconds",
			"RFC 3550 interarrival jitter gw measures on the RTP it receives for a stream: from the remote (inbound) or from the app's UDP port (outbound)."),
		lost: d("packets_lost",
			"RFC 3550 cumulative packets lost gw measures on the RTP it receives for a stream (inbound: from the remote; outbound: from the app); negative with duplicates."),
		fraction: d("loss_ratio",
			"RFC 3550 fraction lost (0..1) over the last second gw measures on the RTP it receives for a stream (inbound: from the remote; outbound: from the app)."),
		remoteJitter: d("remote_jitter_seconds",
			"Interarrival jitter the remote reports for an outbound stream in RTCP receiver reports (remote-inbound-rtp jitter)."),
		remoteLost: d("remote_packets_lost",
			"Cumulative packets lost the remote reports for an outbound stream in RTCP receiver reports (remote-inbound-rtp packetsLost)."),
		remoteFraction: d("remote_loss_ratio",
			"Fraction lost (0..1) the remote reports for an outbound stream in its last RTCP receiver report (remote-inbound-rtp fractionLost)."),
		rtt: d("rtt_seconds",
			"Round-trip time to the remote of a media stream (remote-inbound-rtp roundTripTime, or the ICE candidate pair's)."),
		feedbackSent: d("feedback_sent_total",
			"RTCP feedback messages gw sent to the remote for an inbound stream, by type: nack, pli, fir (nackCount, pliCount, firCount).", "type"),
		feedbackReceived: d("feedback_received_total",
			"RTCP feedback messages gw received from the remote for an outbound stream, by type: nack, pli, fir (nackCount, pliCount, firCount).", "type"),
		retransmittedPackets: d("retransmitted_packets_total",
			"RTP packets gw resent to the remote for an outbound stream, in answer to NACKs (retransmittedPacketsSent)."),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.unlisted, c.packets, c.bytes, c.jitter, c.lost, c.fraction,
		c.remoteJitter, c.remoteLost, c.remoteFraction, c.rtt, c.feedbackSent, c.feedbackReceived, c.retransmittedPackets} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.src.Load()
	if b == nil {
		return
	}
	ss := b.s.Streams()
	// Counted before the cap: gw_streams covers every stream. The four
	// usual combinations are always there, at 0 when none is open.
	counts := map[[2]string]int{
		{KindAudio, DirInbound}: 0, {KindAudio, DirOutbound}: 0,
		{KindVideo, DirInbound}: 0, {KindVideo, DirOutbound}: 0,
	}
	for i := range ss {
		counts[[2]string{ss[i].Kind, ss[i].Direction}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	// A stable order, so that over the cap the same streams stay listed
	// from one scrape to the next instead of series flapping.
	slices.SortFunc(ss, func(a, b StreamStats) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.RemotePeer, b.RemotePeer),
			cmp.Compare(a.Connection, b.Connection), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Direction, b.Direction))
	})
	listed := 0
	for i := range ss {
		s := &ss[i]
		if i > 0 && sameStream(s, &ss[i-1]) {
			continue // a source bug would otherwise fail the whole family
		}
		if listed == c.max {
			break
		}
		listed++
		c.collectStream(ch, s)
	}
	ch <- prometheus.MustNewConstMetric(c.unlisted, prometheus.GaugeValue, float64(len(ss)-listed))
}

func sameStream(a, b *StreamStats) bool {
	return a.Peer == b.Peer && a.RemotePeer == b.RemotePeer && a.Connection == b.Connection &&
		a.Kind == b.Kind && a.Direction == b.Direction
}

func (c *streamCollector) collectStream(ch chan<- prometheus.Metric, s *StreamStats) {
	lv := []string{s.Peer, s.RemotePeer, s.Connection, s.Kind, s.Direction}
	counter := func(d *prometheus.Desc, v uint64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(lv, extra...)...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter(c.packets, s.Packets)
	counter(c.bytes, s.Bytes)
	gauge(c.jitter, s.Jitter)
	gauge(c.lost, float64(s.PacketsLost))
	gauge(c.fraction, s.FractionLost)
	if s.HasRemote {
		gauge(c.remoteJitter, s.RemoteJitter)
		gauge(c.remoteLost, float64(s.RemotePacketsLost))
		gauge(c.remoteFraction, s.RemoteFractionLost)
	}
	if s.HasRTT {
		gauge(c.rtt, s.RTT)
	}
	// Feedback flows one way per direction; the other way is always 0 and
	// not worth a series.
	fb := c.feedbackReceived
	if s.Direction == DirInbound {
		fb = c.feedbackSent
	}
	counter(fb, s.NACKCount, "nack")
	counter(fb, s.PLICount, "pli")
	counter(fb, s.FIRCount, "fir")
	if s.Direction == DirOutbound {
		counter(c.retransmittedPackets, s.Retransmitted)
	}
}

type dataBox struct{ s DataConnSource }

// dataCollector builds the per-data-connection series at scrape time.
type dataCollector struct {
	max int
	src atomic.Pointer[dataBox]

	conns, unlisted                  *prometheus.Desc
	messages, bytes, dropped, buffer *prometheus.Desc
}

func newDataCollector(max int) *dataCollector {
	l := []string{"peer", "remote_peer", "connection"}
	ld := append(slices.Clone(l), "direction")
	return &dataCollector{
		max:      max,
		conns:    prometheus.NewDesc("gw_data_connections", "Open data connections.", nil, nil),
		unlisted: prometheus.NewDesc("gw_data_connections_unlisted", "Open data connections without series of their own: over --metrics-max-streams.", nil, nil),
		messages: prometheus.NewDesc("gw_data_messages_total",
			"Data channel messages sent to the remote (outbound, messagesSent) or received from it (inbound, messagesReceived).", ld, nil),
		bytes: prometheus.NewDesc("gw_data_bytes_total",
			"Data channel payload bytes sent to the remote (outbound, bytesSent) or received from it (inbound, bytesReceived).", ld, nil),
		dropped: prometheus.NewDesc("gw_data_dropped_messages_total",
			"Data connection messages dropped on the way to the remote (outbound) or to the app (inbound).", ld, nil),
		buffer: prometheus.NewDesc("gw_data_buffered_amount_bytes",
			"Bytes queued on a data channel, not yet sent (bufferedAmount).", l, nil),
	}
}

func (c *dataCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.unlisted, c.messages, c.bytes, c.dropped, c.buffer} {
		ch <- d
	}
}

func (c *dataCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.src.Load()
	if b == nil {
		return
	}
	dc := b.s.DataConns()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(len(dc)))
	slices.SortFunc(dc, func(a, b DataConnStats) int {
		return cmp.Or(cmp.Compare(a.Peer, b.Peer), cmp.Compare(a.RemotePeer, b.RemotePeer), cmp.Compare(a.Connection, b.Connection))
	})
	listed := 0
	for i := range dc {
		d := &dc[i]
		if i > 0 && d.Peer == dc[i-1].Peer && d.RemotePeer == dc[i-1].RemotePeer && d.Connection == dc[i-1].Connection {
			continue
		}
		if listed == c.max {
			break
		}
		listed++
		l := []string{d.Peer, d.RemotePeer, d.Connection}
		pair := func(desc *prometheus.Desc, out, in uint64) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(out), append(l, DirOutbound)...)
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(in), append(l, DirInbound)...)
		}
		pair(c.messages, d.MessagesSent, d.MessagesReceived)
		pair(c.bytes, d.BytesSent, d.BytesReceived)
		pair(c.dropped, d.DroppedSent, d.DroppedReceived)
		ch <- prometheus.MustNewConstMetric(c.buffer, prometheus.GaugeValue, float64(d.BufferedAmount), l...)
	}
	ch <- prometheus.MustNewConstMetric(c.unlisted, prometheus.GaugeValue, float64(len(dc)-listed))
}
