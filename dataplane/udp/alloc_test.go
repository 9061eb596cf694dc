package udp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
)

// forwarder is the sink of a relay: it sends every batch on.
type forwarder struct {
	port dataplane.Port
	dst  netip.AddrPort
	out  [][]byte
}

func (f *forwarder) Receive(batch []dataplane.Packet) {
	f.out = f.out[:0]
	for _, p := range batch {
		f.out = append(f.out, p.Data)
	}
	_, _ = f.port.Send(f.out, f.dst)
}

// TestAllocsReceiveForward checks that, once warm, receiving a burst and
// forwarding it with Send allocates nothing anywhere in the process: the
// worker's read, the sink call and the send.
func TestAllocsReceiveForward(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting")
	}
	forEachImpl(t, func(t *testing.T, name string) {
		for _, size := range []int{200, 1200} {
			dp := newDP(t, name, 1, nil)
			p := openPort(t, dp)
			r := receiver(t)
			p.SetSink(&forwarder{port: p, dst: addrOf(r), out: make([][]byte, 0, dataplane.DefaultBatchSize)})
			s := sender(t)
			pkt := packet(make([]byte, size), 1)
			rbuf := make([]byte, 2048)
			_ = r.SetReadDeadline(time.Now().Add(hangGuard))
			var failed error
			const burst = 32
			run := func() {
				for range burst {
					if _, err := s.WriteToUDPAddrPort(pkt, p.LocalAddr()); err != nil && failed == nil {
						failed = err
					}
				}
				for range burst {
					if _, _, err := r.ReadFromUDPAddrPort(rbuf); err != nil && failed == nil {
						failed = err
					}
				}
			}
			for range 3 {
				run() // warm up: send state, netpoller registration
			}
			allocs := testing.AllocsPerRun(100, run)
			if failed != nil {
				t.Fatal(failed)
			}
			if allocs != 0 {
				t.Errorf("%d-byte datagrams: %v allocations per burst of %d", size, allocs, burst)
			}
			p.Close()
		}
	})
}

// TestAllocsSend checks WriteTo and Send, from a port and from egress.
func TestAllocsSend(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting")
	}
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		r := receiver(t)
		dst := addrOf(r)
		one := packet(make([]byte, 300), 0)
		batch := makeBatch(append(repeat(1000, 40), 10, 10, 20))
		for _, from := range []dataplane.Port{p, dp.Egress()} {
			var failed error
			writeTo := func() {
				if err := from.WriteTo(one, dst); err != nil {
					failed = err
				}
			}
			send := func() {
				if _, err := from.Send(batch, dst); err != nil {
					failed = err
				}
			}
			send()
			if a := testing.AllocsPerRun(1000, writeTo); a != 0 {
				t.Errorf("WriteTo from %v: %v allocations", from.LocalAddr(), a)
			}
			if a := testing.AllocsPerRun(100, send); a != 0 {
				t.Errorf("Send from %v: %v allocations", from.LocalAddr(), a)
			}
			if failed != nil {
				t.Fatal(failed)
			}
		}
	})
}
