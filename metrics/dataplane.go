package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gw-project/gw/dataplane"
)

type dpBox struct{ dps []dataplane.Dataplane }

type iceBox struct{ polling func() int }

// dataplaneCollector turns the dataplane's totals into gw_dataplane_* at
// scrape time: the packet path keeps its own atomic counters and never
// touches Prometheus.
type dataplaneCollector struct {
	src atomic.Pointer[dpBox]
	ice atomic.Pointer[iceBox]
	// overflowSeen: once the kernel drop counter was available, the
	// rx_queue_overflow series stays, even while no port is open.
	overflowSeen atomic.Bool

	packets, bytes, syscalls, batch, drops  *prometheus.Desc
	ports, polling, buffers, bufBytes, info *prometheus.Desc
	icePolling                              *prometheus.Desc
}

func newDataplaneCollector() *dataplaneCollector {
	dir := []string{"direction"}
	return &dataplaneCollector{
		packets: prometheus.NewDesc("gw_dataplane_packets_total",
			"Datagrams on the apps' side of the dataplane: received from apps and handed on (rx), sent to apps (tx).", dir, nil),
		bytes: prometheus.NewDesc("gw_dataplane_bytes_total",
			"Bytes of the datagrams counted in gw_dataplane_packets_total.", dir, nil),
		syscalls: prometheus.NewDesc("gw_dataplane_syscalls_total",
			"System calls of the dataplane's sockets, by direction (rx includes the call that finds a socket empty).", dir, nil),
		batch: prometheus.NewDesc("gw_dataplane_batch_size",
			"Datagrams returned per receive system call (recvmmsg batches, GRO segments counted; 1 for the portable dataplane).", nil, nil),
		drops: prometheus.NewDesc("gw_dataplane_drops_total",
			"Datagrams the dataplane dropped, by reason: no_sink, truncated, send_error, rx_queue_overflow (the kernel's receive queue was full; where SO_RXQ_OVFL is available).",
			[]string{"reason"}, nil),
		ports: prometheus.NewDesc("gw_dataplane_ports", "Local UDP ports of the range open now.", nil, nil),
		polling: prometheus.NewDesc("gw_dataplane_polling_ports",
			"Open ports whose worker reads on the --dataplane-linger tick now, in batches, rather than waiting for each datagram.", nil, nil),
		buffers:  prometheus.NewDesc("gw_dataplane_buffers", "Packet buffers of the dataplane's pool: held by port workers (in_use) or waiting in the pool (idle).", []string{"state"}, nil),
		bufBytes: prometheus.NewDesc("gw_dataplane_buffer_bytes", "Memory of the packet buffers counted in gw_dataplane_buffers.", []string{"state"}, nil),
		icePolling: prometheus.NewDesc("gw_ice_polling_sockets",
			"ICE sockets (the WebRTC side) read on the --dataplane-linger tick now, rather than on each datagram's arrival.", nil, nil),
		info: prometheus.NewDesc("gw_dataplane_info",
			"The dataplane implementation and the kernel features its open ports use; always 1.", []string{"implementation", "features"}, nil),
	}
}

func (c *dataplaneCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.syscalls, c.batch, c.drops, c.ports, c.polling, c.buffers, c.bufBytes, c.info, c.icePolling} {
		ch <- d
	}
}

func (c *dataplaneCollector) Collect(ch chan<- prometheus.Metric) {
	if ice := c.ice.Load(); ice != nil {
		ch <- prometheus.MustNewConstMetric(c.icePolling, prometheus.GaugeValue, float64(ice.polling()))
	}
	b := c.src.Load()
	if b == nil || len(b.dps) == 0 {
		return
	}
	var t dataplane.Totals
	var inUseBytes, idleBytes int
	infos := map[[2]string]bool{}
	for _, dp := range b.dps {
		dt := dp.Totals()
		t.Add(dt.Stats)
		t.Ports += dt.Ports
		t.Polling += dt.Polling
		t.Buffers += dt.Buffers
		t.BuffersIdle += dt.BuffersIdle
		inUseBytes += (dt.Buffers - dt.BuffersIdle) * dt.BufSize
		idleBytes += dt.BuffersIdle * dt.BufSize
		infos[[2]string{dp.Name(), dt.Features.String()}] = true
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter(c.packets, t.RxPackets, "rx")
	counter(c.packets, t.TxPackets, "tx")
	counter(c.bytes, t.RxBytes, "rx")
	counter(c.bytes, t.TxBytes, "tx")
	counter(c.syscalls, t.RxSyscalls, "rx")
	counter(c.syscalls, t.TxSyscalls, "tx")

	// BatchHist counts calls per bucket; Prometheus wants cumulative
	// counts. Each datagram of a batch was either handed to a sink or
	// dropped for want of one, which gives the sum.
	buckets := make(map[float64]uint64, len(dataplane.BatchBuckets))
	var calls uint64
	for i, bound := range dataplane.BatchBuckets {
		calls += t.BatchHist[i]
		buckets[float64(bound)] = calls
	}
	sum := float64(t.RxPackets + t.Drops[dataplane.DropNoSink])
	ch <- prometheus.MustNewConstHistogram(c.batch, calls, sum, buckets)

	if t.Features&dataplane.FeatureRxqOvfl != 0 || t.Drops[dataplane.DropOverflow] > 0 {
		c.overflowSeen.Store(true)
	}
	for i, name := range dataplane.DropReasonNames {
		if i == dataplane.DropOverflow && !c.overflowSeen.Load() {
			continue // not available here: absent rather than a misleading 0
		}
		counter(c.drops, t.Drops[i], name)
	}
	gauge(c.ports, float64(t.Ports))
	gauge(c.polling, float64(t.Polling))
	gauge(c.buffers, float64(t.Buffers-t.BuffersIdle), "in_use")
	gauge(c.buffers, float64(t.BuffersIdle), "idle")
	gauge(c.bufBytes, float64(inUseBytes), "in_use")
	gauge(c.bufBytes, float64(idleBytes), "idle")
	for k := range infos {
		gauge(c.info, 1, k[0], k[1])
	}
}
