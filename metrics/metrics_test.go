package metrics

import (
	"cmp"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/stats"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/gw-project/gw/dataplane"
	_ "github.com/gw-project/gw/dataplane/udp"
	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/metrics/rtpstats"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, gwtest.LeakOptions()...)
}

// wantFamilies are gw's own metric families, exactly; the README and the
// dashboard rely on these names.
var wantFamilies = []string{
	"gw_build_info",
	"gw_connection_setup_duration_seconds",
	"gw_data_buffered_amount_bytes",
	"gw_data_bytes_total",
	"gw_data_connections",
	"gw_data_connections_unlisted",
	"gw_data_dropped_messages_total",
	"gw_data_messages_total",
	"gw_dataplane_batch_size",
	"gw_dataplane_buffer_bytes",
	"gw_dataplane_buffers",
	"gw_dataplane_bytes_total",
	"gw_dataplane_drops_total",
	"gw_dataplane_info",
	"gw_dataplane_packets_total",
	"gw_dataplane_polling_ports",
	"gw_dataplane_ports",
	"gw_dataplane_syscalls_total",
	"gw_dtls_failures_total",
	"gw_http_request_duration_seconds",
	"gw_http_requests_total",
	"gw_ice_polling_sockets",
	"gw_media_jitter_seconds",
	"gw_media_loss_ratio",
	"gw_media_rtt_seconds",
	"gw_peer_connections",
	"gw_signaling_messages_total",
	"gw_srtp_failures_total",
	"gw_stream_bytes_total",
	"gw_stream_feedback_received_total",
	"gw_stream_feedback_sent_total",
	"gw_stream_jitter_seconds",
	"gw_stream_loss_ratio",
	"gw_stream_packets_lost",
	"gw_stream_packets_total",
	"gw_stream_remote_jitter_seconds",
	"gw_stream_remote_loss_ratio",
	"gw_stream_remote_packets_lost",
	"gw_stream_retransmitted_packets_total",
	"gw_stream_rtt_seconds",
	"gw_streams",
	"gw_streams_unlisted",
}

func testStreams() []StreamStats {
	return []StreamStats{
		{Peer: "cam", RemotePeer: "viewer", Connection: "mc-1", Kind: KindVideo, Direction: DirOutbound,
			Packets: 1000, Bytes: 1_000_000, Jitter: 0.001, PacketsLost: 2, FractionLost: 0.01,
			HasRemote: true, RemoteJitter: 0.004, RemotePacketsLost: 30, RemoteFractionLost: 0.03,
			HasRTT: true, RTT: 0.042, NACKCount: 5, PLICount: 2, FIRCount: 1, Retransmitted: 7},
		{Peer: "cam", RemotePeer: "viewer", Connection: "mc-1", Kind: KindAudio, Direction: DirInbound,
			Packets: 500, Bytes: 40_000, Jitter: 0.002, PacketsLost: 1, FractionLost: 0.002, NACKCount: 3},
	}
}

// newDataplane opens a portable dataplane on loopback, with one port that
// received a few datagrams.
func newDataplane(t *testing.T) dataplane.Dataplane {
	t.Helper()
	dp, err := dataplane.New("std", dataplane.Config{Addr: netip.MustParseAddr("127.0.0.1"), PortMin: 27100, PortMax: 27199})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	p, err := dp.Open()
	if err != nil {
		t.Fatal(err)
	}
	p.SetSink(dataplane.SinkFunc(func([]dataplane.Packet) {}))
	c, err := net.Dial("udp", p.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 5 {
		c.Write(make([]byte, 200))
	}
	waitFor(t, func() bool { return dp.Totals().RxPackets == 5 })
	return dp
}

// waitFor polls; the deadline only guards against hanging.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
	}
}

// fullRegistry has every source set and every hook called once.
func fullRegistry(t *testing.T) *Registry {
	r := New(Options{Version: "test", MaxStreams: 10})
	r.SetDataplane(newDataplane(t))
	r.SetICEPolling(func() int { return 3 })
	r.SetStreamSource(StreamSourceFunc(testStreams))
	r.SetDataConnSource(DataConnSourceFunc(func() []DataConnStats {
		return []DataConnStats{{Peer: "cam", RemotePeer: "viewer", Connection: "dc-1", MessagesSent: 3, BytesSent: 300, BufferedAmount: 10}}
	}))
	r.SetPeerConnectionSource(PeerConnectionSourceFunc(func() map[string]int { return map[string]int{"connected": 2} }))
	r.ObserveHTTP("/peers", "POST", 201, 3*time.Millisecond)
	r.SignalingObserver()("OFFER", SignalingSent)
	r.ObserveSetup(ConnMedia, 800*time.Millisecond)
	r.DTLSFailure()
	r.SRTPFailure()
	r.MediaObserver(KindVideo, DirOutbound).Observe(0.004, 0.03, 0.042)
	return r
}

func gather(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricNamesAndLint(t *testing.T) {
	r := fullRegistry(t)
	fams := gather(t, r)
	var got []string
	for name := range fams {
		if strings.HasPrefix(name, "gw_") {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, wantFamilies) {
		t.Errorf("families:\n got %q\nwant %q", got, wantFamilies)
	}
	for _, p := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total"} {
		if fams[p] == nil && (runtime.GOOS == "linux" || !strings.HasPrefix(p, "process_")) {
			t.Errorf("no %s", p)
		}
	}
	problems, err := testutil.GatherAndLint(r.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestValues(t *testing.T) {
	fams := gather(t, fullRegistry(t))
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gw_build_info", []string{"version", "test", "goversion", runtime.Version()}, 1},
		{"gw_streams", []string{"kind", "video", "direction", "outbound"}, 1},
		{"gw_streams", []string{"kind", "video", "direction", "inbound"}, 0},
		{"gw_streams_unlisted", nil, 0},
		{"gw_stream_packets_total", []string{"peer", "cam", "remote_peer", "viewer", "connection", "mc-1", "kind", "video", "direction", "outbound"}, 1000},
		{"gw_stream_bytes_total", []string{"kind", "audio"}, 40_000},
		{"gw_stream_jitter_seconds", []string{"kind", "audio"}, 0.002},
		{"gw_stream_packets_lost", []string{"kind", "video"}, 2},
		{"gw_stream_loss_ratio", []string{"kind", "video"}, 0.01},
		{"gw_stream_remote_jitter_seconds", []string{"kind", "video"}, 0.004},
		{"gw_stream_remote_packets_lost", []string{"kind", "video"}, 30},
		{"gw_stream_remote_loss_ratio", []string{"kind", "video"}, 0.03},
		{"gw_stream_rtt_seconds", []string{"kind", "video"}, 0.042},
		{"gw_stream_feedback_received_total", []string{"kind", "video", "type", "pli"}, 2},
		{"gw_stream_feedback_sent_total", []string{"kind", "audio", "type", "nack"}, 3},
		{"gw_stream_retransmitted_packets_total", []string{"kind", "video"}, 7},
		{"gw_data_connections", nil, 1},
		{"gw_data_messages_total", []string{"connection", "dc-1", "direction", "outbound"}, 3},
		{"gw_data_bytes_total", []string{"direction", "outbound"}, 300},
		{"gw_data_buffered_amount_bytes", nil, 10},
		{"gw_peer_connections", []string{"state", "connected"}, 2},
		{"gw_peer_connections", []string{"state", "failed"}, 0},
		{"gw_http_requests_total", []string{"route", "/peers", "method", "POST", "code", "201"}, 1},
		{"gw_http_request_duration_seconds", []string{"route", "/peers"}, 1},
		{"gw_signaling_messages_total", []string{"type", "OFFER", "result", "sent"}, 1},
		{"gw_connection_setup_duration_seconds", []string{"type", "media"}, 1},
		{"gw_dtls_failures_total", nil, 1},
		{"gw_srtp_failures_total", nil, 1},
		{"gw_media_jitter_seconds", []string{"kind", "video", "direction", "outbound"}, 1},
		{"gw_dataplane_packets_total", []string{"direction", "rx"}, 5},
		{"gw_dataplane_bytes_total", []string{"direction", "rx"}, 1000},
		{"gw_dataplane_ports", nil, 1},
		{"gw_dataplane_polling_ports", nil, 0}, // std never lingers
		{"gw_ice_polling_sockets", nil, 3},
		{"gw_dataplane_batch_size", nil, 5},
		{"gw_dataplane_drops_total", []string{"reason", "no_sink"}, 0},
		{"gw_dataplane_info", []string{"implementation", "std"}, 1},
	}
	for _, c := range checks {
		got, ok := value(t, fams, c.name, c.labels...)
		if !ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Feedback flows one way per direction: no series for the other.
	if _, ok := value(t, fams, "gw_stream_feedback_sent_total", "direction", "outbound"); ok {
		t.Error("feedback sent series for an outbound stream")
	}
	if _, ok := value(t, fams, "gw_stream_remote_jitter_seconds", "direction", "inbound"); ok {
		t.Error("remote report series for an inbound stream without one")
	}
	if _, ok := value(t, fams, "gw_stream_retransmitted_packets_total", "direction", "inbound"); ok {
		t.Error("retransmitted series for an inbound stream (unknowable without RTX)")
	}
	_, ovfl := value(t, fams, "gw_dataplane_drops_total", "reason", "rx_queue_overflow")
	if ovfl != (runtime.GOOS == "linux") {
		t.Errorf("rx_queue_overflow series present: %v on %s", ovfl, runtime.GOOS)
	}
	if _, ok := value(t, fams, "gw_dataplane_buffers", "state", "in_use"); !ok {
		t.Error("no buffer pool series")
	}
}

// TestStreamSeriesFollowSource: series are built at scrape time, so a
// closed stream leaves none; over the cap the same streams stay listed and
// the rest are counted.
func TestStreamSeriesFollowSource(t *testing.T) {
	var mu sync.Mutex
	open := []string{"mc-a", "mc-b", "mc-c"}
	r := New(Options{MaxStreams: 2})
	r.SetStreamSource(StreamSourceFunc(func() []StreamStats {
		mu.Lock()
		defer mu.Unlock()
		var ss []StreamStats
		for i := len(open) - 1; i >= 0; i-- { // any order
			ss = append(ss, StreamStats{Peer: "p", RemotePeer: "q", Connection: open[i], Kind: KindVideo, Direction: DirInbound, Packets: 1})
		}
		return ss
	}))
	listed := func() []string {
		var ids []string
		for _, m := range gather(t, r)["gw_stream_packets_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connection" {
					ids = append(ids, l.GetValue())
				}
			}
		}
		slices.Sort(ids)
		return ids
	}
	for range 3 {
		if got := listed(); !slices.Equal(got, []string{"mc-a", "mc-b"}) {
			t.Fatalf("listed %v", got)
		}
	}
	fams := gather(t, r)
	if v, _ := value(t, fams, "gw_streams", "kind", "video", "direction", "inbound"); v != 3 {
		t.Errorf("gw_streams %v, want 3", v)
	}
	if v, _ := value(t, fams, "gw_streams_unlisted"); v != 1 {
		t.Errorf("unlisted %v, want 1", v)
	}

	mu.Lock()
	open = []string{"mc-c"} // a and b closed
	mu.Unlock()
	if got := listed(); !slices.Equal(got, []string{"mc-c"}) {
		t.Fatalf("after close, listed %v", got)
	}
	mu.Lock()
	open = nil
	mu.Unlock()
	fams = gather(t, r)
	for _, name := range []string{"gw_stream_packets_total", "gw_stream_jitter_seconds", "gw_stream_feedback_sent_total"} {
		if len(fams[name].GetMetric()) != 0 {
			t.Errorf("%s still has series after every stream closed", name)
		}
	}
	if v, ok := value(t, fams, "gw_streams", "kind", "video", "direction", "inbound"); !ok || v != 0 {
		t.Errorf("gw_streams %v %v after close", v, ok)
	}
}

func TestDuplicateStreamsDoNotBreakScrape(t *testing.T) {
	r := New(Options{MaxStreams: 10})
	r.SetStreamSource(StreamSourceFunc(func() []StreamStats {
		s := testStreams()
		return append(s, s[0])
	}))
	r.SetDataConnSource(DataConnSourceFunc(func() []DataConnStats {
		d := DataConnStats{Peer: "a", RemotePeer: "b", Connection: "dc-1"}
		return []DataConnStats{d, d}
	}))
	if _, err := r.Gatherer().Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestLabelFolding(t *testing.T) {
	r := New(Options{})
	r.ObserveHTTP("", "BREW", 418, time.Millisecond)
	r.SignalingObserver()("X-CUSTOM", SignalingDropped)
	r.ObserveSetup("carrier-pigeon", time.Second)
	fams := gather(t, r)
	for _, c := range [][]string{
		{"gw_http_requests_total", "route", "unmatched", "method", "other", "code", "418"},
		{"gw_signaling_messages_total", "type", "other", "result", "dropped"},
		{"gw_connection_setup_duration_seconds", "type", "other"},
	} {
		if v, ok := value(t, fams, c[0], c[1:]...); !ok || v != 1 {
			t.Errorf("%v: %v %v", c, v, ok)
		}
	}
}

func TestNilRegistry(t *testing.T) {
	var r *Registry
	r.ObserveHTTP("/x", "GET", 200, 0)
	r.ObserveSetup(ConnData, 0)
	r.DTLSFailure()
	r.SRTPFailure()
	r.SetDataplane(nil)
	r.SetStreamSource(nil)
	r.SetDataConnSource(nil)
	r.SetPeerConnectionSource(nil)
	r.MediaObserver(KindAudio, DirInbound).Observe(1, 1, 1)
	r.MediaObserver(KindAudio, DirInbound).ObserveStream(&StreamStats{})
	if r.SignalingObserver() != nil {
		t.Error("a nil registry hands out a hook")
	}
	if err := r.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})); err != nil {
		t.Error(err)
	}
	if mfs, err := r.Gatherer().Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("%v %v", mfs, err)
	}
	var ctx fasthttp.RequestCtx
	r.Handler()(&ctx)
	if ctx.Response.StatusCode() != 404 {
		t.Errorf("status %d", ctx.Response.StatusCode())
	}
}

// TestHandler scrapes over HTTP, as Prometheus does.
func TestHandler(t *testing.T) {
	r := fullRegistry(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: r.Handler()}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	defer func() { srv.Shutdown(); <-done }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`gw_build_info{goversion="` + runtime.Version() + `",version="test"} 1`,
		`gw_stream_rtt_seconds{connection="mc-1",direction="outbound",kind="video",peer="cam",remote_peer="viewer"} 0.042`,
		"# TYPE gw_dataplane_batch_size histogram",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in the scrape", want)
		}
	}
}

func TestSetPion(t *testing.T) {
	var p stats.Stats
	p.InboundRTPStreamStats.PacketsReceived = 10
	p.InboundRTPStreamStats.BytesReceived = 1000
	p.InboundRTPStreamStats.Jitter = 99 // pion's, never used
	p.InboundRTPStreamStats.NACKCount, p.InboundRTPStreamStats.PLICount = 4, 1
	p.OutboundRTPStreamStats.PacketsSent, p.OutboundRTPStreamStats.BytesSent = 20, 2000
	p.OutboundRTPStreamStats.FIRCount = 3

	in := StreamStats{Direction: DirInbound, Jitter: 0.01, Packets: 7, Bytes: 700}
	in.SetPion(&p)
	if in.Packets != 7 || in.Bytes != 700 || in.NACKCount != 4 || in.PLICount != 1 || in.Jitter != 0.01 || in.HasRTT || in.HasRemote {
		t.Errorf("inbound %+v", in)
	}
	out := StreamStats{Direction: DirOutbound, Packets: 8, Bytes: 800}
	out.SetPion(&p)
	if out.Packets != 8 || out.Bytes != 800 || out.FIRCount != 3 || out.HasRemote || out.HasRTT {
		t.Errorf("outbound before any report %+v", out)
	}
	p.RemoteInboundRTPStreamStats.FractionLost = 0.25
	out.SetPion(&p)
	if !out.HasRemote || out.RemotePacketsLost != 0 || out.HasRTT {
		t.Errorf("outbound after a report of loss alone %+v", out)
	}
	p.RemoteInboundRTPStreamStats.PacketsLost = 1<<24 - 2 // -2 in the RR's 24 bits
	p.RemoteInboundRTPStreamStats.Jitter = 0.003
	p.RemoteInboundRTPStreamStats.FractionLost = 0.25
	p.RemoteInboundRTPStreamStats.RoundTripTime = 30 * time.Millisecond
	p.RemoteInboundRTPStreamStats.RoundTripTimeMeasurements = 1
	out.SetPion(&p)
	if !out.HasRemote || out.RemotePacketsLost != -2 || out.RemoteJitter != 0.003 || out.RemoteFractionLost != 0.25 || !out.HasRTT || out.RTT != 0.03 {
		t.Errorf("outbound %+v", out)
	}
	out.SetPion(nil) // no stats yet: nothing changes
}

// TestInjectedImpairmentsReachMetrics runs the path the media code will
// use: a stream's packets through an rtpstats.Receiver, its snapshot into
// the StreamSource at scrape time, a sample into the fleet histograms on
// each publication. Loss and delay jitter injected here come out of
// /metrics within the stated tolerances: lost packets exactly; the mean
// jitter sample within 5% of a/3 for i.i.d. delay uniform in [0, a); the
// mean fraction-lost sample within 0.01 of the loss rate; the last jitter
// gauge (one EWMA value) within 30%.
func TestInjectedImpairmentsReachMetrics(t *testing.T) {
	const (
		a     = 30 * time.Millisecond
		loss  = 0.05
		ptime = 20 * time.Millisecond
		n     = 30000
	)
	r := New(Options{MaxStreams: 4})
	rx := rtpstats.New(rtpstats.Config{ClockRate: 48000})
	r.SetStreamSource(StreamSourceFunc(func() []StreamStats {
		s := StreamStats{Peer: "a", RemotePeer: "b", Connection: "mc-1", Kind: KindAudio, Direction: DirInbound}
		snap := rx.Snapshot()
		s.Packets, s.Bytes = snap.Packets, snap.Bytes
		s.SetReceived(snap)
		return []StreamStats{s}
	}))
	obs := r.MediaObserver(KindAudio, DirInbound)

	rng := rand.New(rand.NewPCG(5, 6))
	t0 := time.Now()
	type arrival struct {
		seq uint16
		ts  uint32
		at  time.Duration
	}
	var path []arrival
	injected := 0
	for i := 0; i < n; i++ {
		if i > 2 && i < n-1 && rng.Float64() < loss {
			injected++
			continue
		}
		at := time.Duration(i) * ptime
		if i > 2 {
			at += time.Duration(rng.Int64N(int64(a)))
		}
		path = append(path, arrival{uint16(60000 + i), uint32(i) * 960, at})
	}
	slices.SortStableFunc(path, func(x, y arrival) int { return cmp.Compare(x.at, y.at) })
	for _, p := range path {
		if rx.Update(p.seq, p.ts, 160, t0.Add(p.at)) {
			snap := rx.Snapshot()
			obs.Observe(snap.Jitter, snap.FractionLost, -1)
		}
	}
	rx.Publish()

	fams := gather(t, r)
	lost, _ := value(t, fams, "gw_stream_packets_lost", "connection", "mc-1")
	if int(lost) != injected {
		t.Errorf("gw_stream_packets_lost %v, injected %d", lost, injected)
	}
	want := a.Seconds() / 3
	if j, _ := value(t, fams, "gw_stream_jitter_seconds", "connection", "mc-1"); math.Abs(j-want)/want > 0.3 {
		t.Errorf("gw_stream_jitter_seconds %v, injected delay U[0,%v) gives %v (tolerance 30%%)", j, a, want)
	}
	mean := func(name string) float64 {
		h := fams[name].GetMetric()[0].GetHistogram()
		return h.GetSampleSum() / float64(h.GetSampleCount())
	}
	if m := mean("gw_media_jitter_seconds"); math.Abs(m-want)/want > 0.05 {
		t.Errorf("mean of gw_media_jitter_seconds %v, want %v (tolerance 5%%)", m, want)
	}
	if m := mean("gw_media_loss_ratio"); math.Abs(m-loss) > 0.01 {
		t.Errorf("mean of gw_media_loss_ratio %v, injected %v (tolerance 0.01)", m, loss)
	}
	if c, _ := value(t, fams, "gw_media_rtt_seconds"); c != 0 {
		t.Errorf("%v unknown RTTs observed", c)
	}
}
