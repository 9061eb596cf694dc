// Package metrics is gw's Prometheus instrumentation: one Registry that
// cmd/gw builds and serves on GET /metrics, with
//
//   - build info, Go and process collectors;
//   - REST requests and latency (ObserveHTTP, called by the control plane);
//   - signaling messages (SignalingObserver, hooked into the signaling
//     client and server);
//   - the dataplane's counters, read at scrape time (SetDataplane);
//   - per media stream and per data connection series, built at scrape
//     time from sources the control plane registers (SetStreamSource,
//     SetDataConnSource), so a closed stream leaves no series; capped by
//     Options.MaxStreams;
//   - fleet aggregates: histograms of jitter, fraction lost and RTT that
//     stream code feeds once a second (MediaObserver), open streams, peer
//     connections by state (SetPeerConnectionSource), setup durations
//     (ObserveSetup), DTLS and SRTP failures.
//
// Every method of *Registry (and of the *MediaObserver it hands out) may be
// called on a nil receiver and then does nothing, so code can hold a nil
// Registry when metrics are off.
//
// The per-packet estimators (RFC 3550 jitter and loss) are in package
// metrics/rtpstats.
package metrics

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/gw-project/gw/dataplane"
)

const namespace = "gw"

// DefaultMaxStreams is the default of --metrics-max-streams.
const DefaultMaxStreams = 64

// Options configure a Registry.
type Options struct {
	// Version goes into gw_build_info.
	Version string
	// MaxStreams caps how many media streams, and separately how many
	// data connections, get series of their own at a scrape; the others
	// only count in the aggregates (and in gw_streams_unlisted,
	// gw_data_connections_unlisted). 0 lists none.
	MaxStreams int
}

// Registry holds gw's metrics. Build it once with New.
type Registry struct {
	reg     *prometheus.Registry
	handler fasthttp.RequestHandler

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	signaling    *prometheus.CounterVec
	setup        *prometheus.HistogramVec
	dtlsFailures prometheus.Counter
	srtpFailures prometheus.Counter
	jitterHist   *prometheus.HistogramVec
	lossHist     *prometheus.HistogramVec
	rttHist      *prometheus.HistogramVec

	streams *streamCollector
	data    *dataCollector
	pcs     *pcCollector
	dp      *dataplaneCollector
}

// Buckets of the histograms.
var (
	httpBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	jitterBuckets = []float64{.0005, .001, .002, .005, .01, .02, .03, .05, .1, .2, .5}
	lossBuckets   = []float64{0, .005, .01, .02, .05, .1, .2, .5, 1}
	rttBuckets    = []float64{.001, .005, .01, .025, .05, .1, .15, .2, .3, .5, 1, 2}
	setupBuckets  = []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30}
)

// New builds the registry with every collector registered.
func New(o Options) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Build of this gw: its version and the Go version it was built with; always 1.",
		ConstLabels: prometheus.Labels{"version": o.Version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	r.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "http_requests_total",
		Help: "REST API requests answered, by route pattern (\"unmatched\" for unknown paths), method and status code.",
	}, []string{"route", "method", "code"})
	r.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "http_request_duration_seconds",
		Help:    "Time taken to answer REST API requests (event long-polls included), by route pattern, method and status code.",
		Buckets: httpBuckets,
	}, []string{"route", "method", "code"})
	r.signaling = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "signaling_messages_total",
		Help: "PeerJS signaling messages by type and result: sent, send_failed, received (by gw's peers); " +
			"relayed, queued, expired, dropped, accepted, rejected (by the embedded signaling server).",
	}, []string{"type", "result"})
	r.setup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "connection_setup_duration_seconds",
		Help:    "Time from the start of a media or data connection (call, connect, or a remote's offer) until its PeerConnection connected, by type.",
		Buckets: setupBuckets,
	}, []string{"type"})
	r.dtlsFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "dtls_failures_total",
		Help: "DTLS handshakes of PeerConnections that failed.",
	})
	r.srtpFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "srtp_failures_total",
		Help: "SRTP/SRTCP packets that failed to decrypt or authenticate, and SRTP session setups that failed.",
	})
	kd := []string{"kind", "direction"}
	r.jitterHist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "media_jitter_seconds",
		Help: "RFC 3550 interarrival jitter on the WebRTC leg of media streams, sampled once a second per stream: " +
			"measured by gw for inbound streams, reported by the remote (RTCP RR) for outbound ones.",
		Buckets: jitterBuckets,
	}, kd)
	r.lossHist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "media_loss_ratio",
		Help: "RFC 3550 fraction lost (0..1) on the WebRTC leg of media streams, sampled once a second per stream: " +
			"measured by gw for inbound streams, reported by the remote (RTCP RR) for outbound ones.",
		Buckets: lossBuckets,
	}, kd)
	r.rttHist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "media_rtt_seconds",
		Help:    "Round-trip time to the remote of media streams, sampled once a second per stream.",
		Buckets: rttBuckets,
	}, kd)
	r.streams = newStreamCollector(o.MaxStreams)
	r.data = newDataCollector(o.MaxStreams)
	r.pcs = newPCCollector()
	r.dp = newDataplaneCollector()

	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, r.httpRequests, r.httpDuration, r.signaling, r.setup,
		r.dtlsFailures, r.srtpFailures, r.jitterHist, r.lossHist, r.rttHist,
		r.streams, r.data, r.pcs, r.dp,
	)
	r.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are cheap but not free; a few at once is plenty.
		MaxRequestsInFlight: 4,
		EnableOpenMetrics:   true,
	}))
	return r
}

// Gatherer is what the registry collects, for tests and other exporters.
func (r *Registry) Gatherer() prometheus.Gatherer {
	if r == nil {
		return prometheus.Gatherers{}
	}
	return r.reg
}

// Register adds a collector of another package.
func (r *Registry) Register(c prometheus.Collector) error {
	if r == nil {
		return nil
	}
	return r.reg.Register(c)
}

// Handler serves the metrics in the Prometheus text (or OpenMetrics)
// format, for GET /metrics.
func (r *Registry) Handler() fasthttp.RequestHandler {
	if r == nil {
		return func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNotFound) }
	}
	return r.handler
}

// ObserveHTTP records one answered REST request: route is the pattern the
// router matched ("/peers/{peer_id}"), or "unmatched"; method is folded to
// the standard ones ("other" beyond them) so that a client cannot grow the
// label set.
func (r *Registry) ObserveHTTP(route, method string, code int, d time.Duration) {
	if r == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	lv := []string{route, httpMethod(method), strconv.Itoa(code)}
	r.httpRequests.WithLabelValues(lv...).Inc()
	r.httpDuration.WithLabelValues(lv...).Observe(d.Seconds())
}

func httpMethod(m string) string {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH":
		return m
	}
	return "other"
}

// Signaling message results.
const (
	SignalingSent       = "sent"        // client: queued for the server by Send
	SignalingSendFailed = "send_failed" // client: Send refused (closed, failed, queue full)
	SignalingReceived   = "received"    // client: handed to the peer's handler
	SignalingRelayed    = "relayed"     // server: written to the destination's socket
	SignalingQueued     = "queued"      // server: held for a destination not connected (yet)
	SignalingExpired    = "expired"     // server: held, then dropped unread (the sender got EXPIRE)
	SignalingDropped    = "dropped"     // server: not deliverable, not queueable, or from an unregistered socket
	SignalingAccepted   = "accepted"    // server: handled by the server itself (HEARTBEAT, LEAVE without dst, CREDENTIAL)
	SignalingRejected   = "rejected"    // server: refused (a CREDENTIAL renewal)
)

// SignalingObserver returns the hook for signaling.ClientOptions.Observe
// and signaling.ServerOptions.Observe (nil when r is nil, which turns the
// hook off). Message types outside the PeerJS protocol and gw's extensions
// count as "other", so that peers cannot grow the label set.
func (r *Registry) SignalingObserver() func(msgType, result string) {
	if r == nil {
		return nil
	}
	return func(msgType, result string) {
		r.signaling.WithLabelValues(signalingType(msgType), result).Inc()
	}
}

func signalingType(t string) string {
	switch t {
	case "OPEN", "LEAVE", "CANDIDATE", "OFFER", "ANSWER", "EXPIRE", "HEARTBEAT",
		"ID-TAKEN", "ERROR", "INVALID-KEY", "EXPIRESIN", "CREDENTIAL":
		return t
	}
	return "other"
}

// Connection types of ObserveSetup.
const (
	ConnMedia = "media"
	ConnData  = "data"
)

// ObserveSetup records how long a connection of type ConnMedia or ConnData
// took from its start (the call or connect request, or the remote's offer)
// until its PeerConnection reached "connected". Call it once per
// connection, when it connects.
func (r *Registry) ObserveSetup(connType string, d time.Duration) {
	if r == nil {
		return
	}
	if connType != ConnMedia && connType != ConnData {
		connType = "other"
	}
	r.setup.WithLabelValues(connType).Observe(d.Seconds())
}

// DTLSFailure counts a DTLS handshake that failed (the DTLS transport's
// state became failed).
func (r *Registry) DTLSFailure() {
	if r != nil {
		r.dtlsFailures.Inc()
	}
}

// SRTPFailure counts an SRTP/SRTCP packet that failed to decrypt or
// authenticate, or an SRTP session that could not be set up. It is one
// atomic add, fine on the packet path.
func (r *Registry) SRTPFailure() {
	if r != nil {
		r.srtpFailures.Inc()
	}
}

// SetDataplane makes scrapes read the totals of dps (gw_dataplane_*),
// added together when there are several (gw may use one for media and one
// for data, with different buffer sizes).
func (r *Registry) SetDataplane(dps ...dataplane.Dataplane) {
	if r == nil {
		return
	}
	b := &dpBox{}
	for _, dp := range dps {
		if dp != nil {
			b.dps = append(b.dps, dp)
		}
	}
	r.dp.src.Store(b)
}

// SetICEPolling makes scrapes report gw_ice_polling_sockets: what polling
// returns, the ICE sockets read on the linger tick now (udp.ICENet.Polling).
func (r *Registry) SetICEPolling(polling func() int) {
	if r != nil && polling != nil {
		r.dp.ice.Store(&iceBox{polling})
	}
}

// SetStreamSource makes scrapes list the media streams s reports.
func (r *Registry) SetStreamSource(s StreamSource) {
	if r != nil {
		r.streams.src.Store(&streamBox{s})
	}
}

// SetDataConnSource makes scrapes list the data connections s reports.
func (r *Registry) SetDataConnSource(s DataConnSource) {
	if r != nil {
		r.data.src.Store(&dataBox{s})
	}
}

// PeerConnectionSource reports how many PeerConnections are in each state,
// keyed by webrtc.PeerConnectionState.String() ("new", "connecting",
// "connected", "disconnected", "failed", "closed").
type PeerConnectionSource interface {
	PeerConnectionStates() map[string]int
}

// PeerConnectionSourceFunc adapts a function to a PeerConnectionSource.
type PeerConnectionSourceFunc func() map[string]int

// PeerConnectionStates calls f.
func (f PeerConnectionSourceFunc) PeerConnectionStates() map[string]int { return f() }

// SetPeerConnectionSource makes scrapes report gw_peer_connections{state}
// from s.
func (r *Registry) SetPeerConnectionSource(s PeerConnectionSource) {
	if r != nil {
		r.pcs.src.Store(&pcBox{s})
	}
}

type pcBox struct{ s PeerConnectionSource }

// pcStates are always reported (0 when none), so that dashboards show them.
var pcStates = []string{"new", "connecting", "connected", "disconnected", "failed", "closed"}

type pcCollector struct {
	src  atomic.Pointer[pcBox]
	desc *prometheus.Desc
}

func newPCCollector() *pcCollector {
	return &pcCollector{desc: prometheus.NewDesc("gw_peer_connections",
		"PeerConnections of media and data connections, by state.", []string{"state"}, nil)}
}

func (c *pcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pcCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.src.Load()
	if b == nil {
		return
	}
	states := b.s.PeerConnectionStates()
	for _, s := range pcStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(states[s]), s)
	}
	for s, n := range states {
		if !isKnownState(s) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
		}
	}
}

func isKnownState(s string) bool {
	for _, k := range pcStates {
		if s == k {
			return true
		}
	}
	return false
}
