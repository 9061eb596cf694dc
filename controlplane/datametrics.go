package controlplane

import "github.com/gw-project/gw/metrics"

// DataConns lists the data connections not yet closed, for /metrics: the
// registry is a metrics.DataConnSource (see wireMetrics).
func (d *dataRegistry) DataConns() []metrics.DataConnStats {
	d.mu.Lock()
	conns := make([]*dataConn, 0, len(d.conns))
	for _, c := range d.conns {
		if !c.isClosed() {
			conns = append(conns, c)
		}
	}
	d.mu.Unlock()
	out := make([]metrics.DataConnStats, 0, len(conns))
	for _, c := range conns {
		st := metrics.DataConnStats{
			Peer: c.p.id, RemotePeer: c.remote, Connection: c.id,
			MessagesSent: c.txMsgs.Load(), BytesSent: c.txBytes.Load(),
			MessagesReceived: c.rxMsgs.Load(), BytesReceived: c.rxBytes.Load(),
			DroppedReceived: c.rxDropped.Load(),
		}
		if fl := c.flow.Load(); fl != nil {
			st.DroppedSent = fl.Dropped()
		}
		if dc := c.dc.Load(); dc != nil {
			st.BufferedAmount = dc.BufferedAmount()
		}
		out = append(out, st)
	}
	return out
}
