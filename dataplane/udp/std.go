package udp

import (
	"net/netip"

	"github.com/gw-project/gw/dataplane"
)

// stdPort is the portable implementation: one datagram per read and per
// write, through the net package.
type stdPort struct {
	base
	buf   []byte
	batch [1]dataplane.Packet
}

func listenStd(pl *plane, num int, egress bool) (port, error) {
	conn, err := listenUDP(pl, num)
	if err != nil {
		return nil, err
	}
	p := &stdPort{}
	if err := p.init(pl, num, conn, egress); err != nil {
		conn.Close()
		return nil, err
	}
	if egress {
		// Nobody reads the egress socket: keep its receive queue minimal.
		_ = conn.SetReadBuffer(0)
	} else {
		setRecvBuffer(p.rc, pl.cfg.SockBuf, conn.SetReadBuffer)
		if sockDropsSupported && pl.cfg.Disable&dataplane.FeatureRxqOvfl == 0 {
			p.addFeature(dataplane.FeatureRxqOvfl)
		}
		p.buf = pl.pool.Get()
		p.release = func() { pl.pool.Put(p.buf); p.buf = nil }
	}
	return p, nil
}

func (p *stdPort) start() { p.startWorker(p.loop) }

func (p *stdPort) loop() {
	for {
		// ReadMsgUDPAddrPort rather than ReadFromUDPAddrPort: only it reports
		// MSG_TRUNC, and neither allocates.
		n, _, flags, addr, err := p.conn.ReadMsgUDPAddrPort(p.buf, nil)
		if err != nil {
			if p.readFailed(err) {
				return
			}
			continue
		}
		p.c.rxCalls.Add(1)
		if flags&msgTrunc != 0 {
			p.c.drops[dataplane.DropTruncated].Add(1)
			continue
		}
		p.c.hist[0].Add(1)
		p.batch[0] = dataplane.Packet{Data: p.buf[:n], Addr: netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())}
		if !p.deliver(p.sink.Load(), p.batch[:], n) {
			return
		}
	}
}

// Send writes the datagrams one by one.
func (p *stdPort) Send(pkts [][]byte, dst netip.AddrPort) (int, error) {
	n, nbytes := 0, 0
	var err error
	for _, b := range pkts {
		if _, err = p.conn.WriteToUDPAddrPort(b, dst); err != nil {
			p.c.drops[dataplane.DropSendError].Add(uint64(len(pkts) - n))
			break
		}
		n++
		nbytes += len(b)
	}
	p.c.txCalls.Add(uint64(n))
	p.c.txPackets.Add(uint64(n))
	p.c.txBytes.Add(uint64(nbytes))
	return n, err
}

// WriteTo writes one datagram.
func (p *stdPort) WriteTo(b []byte, dst netip.AddrPort) error {
	_, err := p.conn.WriteToUDPAddrPort(b, dst)
	if err != nil {
		p.c.drops[dataplane.DropSendError].Add(1)
		return err
	}
	p.c.txCalls.Add(1)
	p.c.txPackets.Add(1)
	p.c.txBytes.Add(uint64(len(b)))
	return nil
}
