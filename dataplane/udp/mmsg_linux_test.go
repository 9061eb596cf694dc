package udp

import (
	"testing"
	"time"

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

// Both ways for a worker to wait: in the netpoller (the default) and in
// the kernel (BlockingRecv). Each carries traffic intact,
// reports its feature, and closes while idle: with the receive timeout
// made an hour, a blocking worker that Close did not wake would keep Close
// waiting past the test's patience.
func TestBlockingRecv(t *testing.T) {
	defer func(d time.Duration) { blockTimeout = d }(blockTimeout)
	blockTimeout = time.Hour
	for _, block := range []bool{true, false} {
		t.Run(map[bool]string{true: "kernel", false: "netpoller"}[block], func(t *testing.T) {
			dp := newDP(t, "mmsg", 4, func(c *dataplane.Config) {
				c.BlockingRecv = block
			})
			p := openPort(t, dp)
			if got := p.Stats().Features&dataplane.FeatureBlockingRecv != 0; got != block {
				t.Fatalf("features %v, want blocking_recv %v", p.Stats().Features, block)
			}
			c := &checker{sizes: sizeOf}
			s := sender(t)
			c.wantSrc = addrOf(s)
			p.SetSink(c)
			const total = 2000
			buf := make([]byte, 2048)
			for seq := range uint64(total) {
				if _, err := s.WriteToUDPAddrPort(packet(buf[:sizeOf(seq)], seq), p.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if seq%100 == 99 { // let the worker sleep now and then
					time.Sleep(2 * time.Millisecond)
				}
			}
			waitFor(t, "all datagrams", func() bool { return p.Stats().RxPackets == total })
			c.check(t)
			// Idle long enough to be asleep, then close.
			time.Sleep(50 * time.Millisecond)
			closed := make(chan error, 1)
			go func() { closed <- p.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not return: the worker waiting in recvmmsg was not woken")
			}
		})
	}
}
