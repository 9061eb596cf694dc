package controlplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/udp"
	"github.com/gw-project/gw/metrics"
)

// withICENet gives the control plane n as its ICE network.
func withICENet(n *udp.ICENet) envOption {
	return func(_ *testEnv, c *Config) { c.ICENet = n }
}

// Paced RTP between two gateways whose ICE sockets linger (at a rate low
// enough for a test to pass it): the receiving gateway reads its ICE
// socket on the tick, gw_ice_polling_sockets says so, and every packet
// arrives, payload intact and in order. The sending gateway's ports do not
// linger here, so each packet crosses alone, as from a browser: a lingering
// port's batch arrives as one GRO buffer a tick, one read, and the ICE
// linger's rate counts reads.
func TestMediaICESocketsLinger(t *testing.T) {
	lingering := func() *udp.ICENet { return udp.NewICENet(dataplane.DefaultSockBuf, 2*time.Millisecond, 100) }
	netA, netB := lingering(), lingering()
	reg := metrics.New(metrics.Options{Version: "test", MaxStreams: 8})
	e1 := newTestEnv(t, withICENet(netA))
	e2 := newTestEnv(t, withSignalingURL("ws://"+e1.sigAddr+"/peerjs"), withICENet(netB), withMetrics(reg))
	alice := newSide(t, e1.c, "linger-a", 100, 111)
	bob := newSide(t, e2.c, "linger-b", 100, 111)
	call(t, alice, bob, nil)

	const n = 1500
	const tag = "linger"
	stop, sent := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-sent }) // before the apps close
	go func() {
		defer close(sent)
		// 1,000 packets a second, caught up if a sleep runs long: over
		// the 200 reads a second at which a socket polls.
		start := time.Now()
		for i := 0; i < n; {
			for due := min(n, int(time.Since(start)/time.Millisecond)+1); i < due; i++ {
				alice.videoApp.send(alice.videoPort, rtpBytes(uint8(alice.videoPT), 0x4242, i, fmt.Sprintf("%s-%d", tag, i)))
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	buf := make([]byte, 2048)
	next := 0
	polling := 0.0 // the most gw_ice_polling_sockets said on the way
	for next < n {
		_ = bob.videoApp.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		k, _, err := bob.videoApp.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d of %d packets: %v", next, n, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:k]); err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(string(p.Payload), tag+"-%d", &i); err != nil {
			continue // an earlier test's stray packet
		}
		if i != next || string(p.Payload) != fmt.Sprintf("%s-%d", tag, i) {
			t.Fatalf("packet %d arrived as %q after %d of %d", i, p.Payload, next, n)
		}
		next++
		if next%250 == 0 && next < n {
			if v, ok := sample(t, reg, "gw_ice_polling_sockets"); ok {
				polling = max(polling, v)
			}
		}
	}
	if polling < 1 {
		t.Errorf("gw_ice_polling_sockets was at most %v while the receiving gateway got 1,000 packets a second", polling)
	}
}
