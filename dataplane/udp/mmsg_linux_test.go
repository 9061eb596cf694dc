package udp

import (
	"testing"

	"github.com/gw-project/gw/dataplane"
)

// coalesced is how many GRO buffers port p has split.
func coalesced(p dataplane.Port) uint64 {
	if mp, ok := p.(*mmsgPort); ok {
		return mp.groBufs.Load()
	}
	return 0
}

// TestGSOFallback makes the kernel "refuse" GSO once and checks the batch
// still arrives and the port stops using GSO.
func TestGSOFallback(t *testing.T) {
	dp := newDP(t, "mmsg", 1, nil)
	p := openPort(t, dp).(*mmsgPort)
	if p.Stats().Features&dataplane.FeatureGSO == 0 {
		t.Skip("no UDP GSO on this kernel")
	}
	r := receiver(t)
	pkts := makeBatch(append(repeat(500, 20), repeat(300, 20)...))
	p.tx.failGSO.Store(1)
	if n, err := p.Send(pkts, addrOf(r)); err != nil || n != len(pkts) {
		t.Fatalf("Send = %d, %v", n, err)
	}
	recvAll(t, r, pkts, p.LocalAddr())
	if p.Stats().Features&dataplane.FeatureGSO != 0 {
		t.Error("GSO still on after the kernel refused it")
	}
	if n, err := p.Send(pkts, addrOf(r)); err != nil || n != len(pkts) {
		t.Fatalf("Send without GSO = %d, %v", n, err)
	}
	recvAll(t, r, pkts, p.LocalAddr())
}
