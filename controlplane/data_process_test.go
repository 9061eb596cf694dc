package controlplane

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gw-project/gw/controlplane/binarypack"
	"github.com/gw-project/gw/internal/gwtest"
)

// datagramSize spreads sizes from 1 to 60,000 bytes log-uniformly (so that
// small and large are both common), with the edges of binary chunking and
// the extremes among the first ones.
func datagramSize(rng *rand.Rand, i int) int {
	edges := []int{1, 60000, binarypack.ChunkMTU - 3, binarypack.ChunkMTU - 2, 2*binarypack.ChunkMTU - 5, 15, 16, 65535 - 3}
	if i < len(edges) && edges[i] <= 60000 {
		return edges[i]
	}
	return int(math.Exp(rng.Float64() * math.Log(60000)))
}

// genDatagram is datagram i of direction dir: random bytes, or for json
// random UTF-8 text with what JSON must escape, including texts that are
// JSON values themselves.
func genDatagram(seed uint64, json bool) func(dir, i int) []byte {
	return func(dir, i int) []byte {
		rng := rand.New(rand.NewPCG(seed, uint64(dir)<<32|uint64(i)))
		n := max(1, datagramSize(rng, i))
		if !json {
			b := make([]byte, n)
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
			return b
		}
		switch i % 5 {
		case 0: // a JSON value, sent as it is
			b := make([]byte, 0, n)
			if n >= 7 {
				b = append(b, `{"i":`...)
			}
			b = append(b, byte('1'+rng.IntN(9)))
			for len(b) < n-1 || (n < 7 && len(b) < n) {
				b = append(b, byte('0'+rng.IntN(10)))
			}
			if n >= 7 {
				b = append(b, '}')
			}
			return b
		case 1: // a JSON string literal, sent as a string holding it
			b := []byte{'"'}
			for len(b) < n-1 {
				b = append(b, byte('a'+rng.IntN(26)))
			}
			return append(b, '"')[:n]
		}
		alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\x00", "\x1f", "é", "€", "😀", "{", "}", "null"}
		b := make([]byte, 0, n)
		for len(b) < n {
			s := alphabet[rng.IntN(len(alphabet))]
			if len(b)+len(s) > n {
				s = "x"
			}
			b = append(b, s...)
		}
		return b
	}
}

// Two gw processes, every serialization: 10,000 datagrams of 1 to 60,000
// bytes each way arrive, in order, byte for byte; and on an unordered
// channel all arrive.
func TestDataTwoGatewayProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a few hundred MB through two gw processes")
	}
	// Port ranges below the ephemeral one: see withDataPlane.
	ga := gwtest.Start(t, "--event-timeout", "1s", "--port-range", "22000-22499")
	gb := gwtest.Start(t, "--event-timeout", "1s", "--port-range", "22500-22999",
		"--signaling-addr", "off", "--signaling-url", ga.SignalingURL)
	runs := []struct {
		ser     string
		n       int
		ordered bool
	}{
		{"BINARY", 10000, true},
		{"BINARY_UTF8", 10000, true},
		{"JSON", 10000, true},
		{"NONE", 10000, true},
		{"BINARY", 2000, false},
		{"NONE", 2000, false},
	}
	for k, r := range runs {
		name := r.ser
		if !r.ordered {
			name += "_unordered"
		}
		t.Run(name, func(t *testing.T) {
			// Each run has its own peers and connection: together they keep
			// both gateways busy.
			t.Parallel()
			ca, cb := gwtest.NewClient(t, ga.API), gwtest.NewClient(t, gb.API)
			a, b := ca.CreatePeer(fmt.Sprintf("procA%d", k)), cb.CreatePeer(fmt.Sprintf("procB%d", k))
			opts := map[string]any{"serialization": r.ser}
			if !r.ordered {
				opts["dcInit"] = map[string]any{"ordered": false}
			}
			l := linkData(t, ca, cb, a, b, opts)
			t0 := time.Now()
			pumpData(t, l, r.n, r.ordered, genDatagram(uint64(k), r.ser == "JSON"), 5*time.Minute)
			t.Logf("%d datagrams each way in %s", r.n, time.Since(t0).Round(time.Millisecond))
			for i := range 2 {
				st := l.c[i].Expect(200, "GET", l.status(i), nil).Map(t)
				if st["send_dropped"] != float64(0) || st["receive_dropped"] != float64(0) {
					t.Errorf("side %d dropped: %v", i, st)
				}
			}
			l.c[0].Expect(204, "DELETE", "/data/connections/"+l.conn[0], nil)
			l.c[1].WaitEvent(l.events(1), "CLOSE", 20*time.Second)
			l.c[1].Expect(204, "DELETE", "/data/connections/"+l.conn[1], nil)
		})
	}
}
