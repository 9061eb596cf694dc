package udp

import (
	"testing"

	"github.com/gw-project/gw/dataplane"
)

// TestTotals: a dataplane's totals add up its ports, keep counting what
// closed ports did (so metrics counters never go back), and count egress.
func TestTotals(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 3, nil)
		a, b := openPort(t, dp), openPort(t, dp)
		var got countSink
		a.SetSink(&got)
		s := sender(t)
		payload := make([]byte, 100)
		for range 10 {
			if _, err := s.WriteToUDPAddrPort(payload, a.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for range 4 { // b has no sink: dropped
			if _, err := s.WriteToUDPAddrPort(payload, b.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "datagrams", func() bool {
			return a.Stats().RxPackets == 10 && b.Stats().Drops[dataplane.DropNoSink] == 4
		})
		if err := dp.Egress().WriteTo(payload[:50], addrOf(s)); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Send([][]byte{payload, payload}, addrOf(s)); n != 2 || err != nil {
			t.Fatalf("Send: %d, %v", n, err)
		}

		tot := dp.Totals()
		if tot.Ports != 2 || tot.RxPackets != 10 || tot.RxBytes != 1000 || tot.Drops[dataplane.DropNoSink] != 4 ||
			tot.TxPackets != 3 || tot.TxBytes != 250 {
			t.Fatalf("totals %+v", tot)
		}
		var batches uint64
		for _, n := range tot.BatchHist {
			batches += n
		}
		if batches == 0 || tot.RxSyscalls < batches || tot.Features == 0 {
			t.Errorf("totals %+v", tot)
		}
		if tot.Buffers == 0 || tot.BuffersIdle > tot.Buffers || tot.BufSize != dataplane.DefaultBufSize {
			t.Errorf("buffers %d idle %d size %d", tot.Buffers, tot.BuffersIdle, tot.BufSize)
		}

		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		after := dp.Totals()
		if after.Ports != 1 || after.RxPackets != tot.RxPackets || after.TxPackets != tot.TxPackets ||
			after.Drops != tot.Drops || after.BatchHist != tot.BatchHist {
			t.Errorf("after closing a port: %+v, before %+v", after, tot)
		}
	})
}

type countSink struct{}

func (*countSink) Receive([]dataplane.Packet) {}
