package udp

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gw-project/gw/dataplane"
)

// TestPinned pins workers to one CPU and checks, from inside the sink, that
// it runs on a thread allowed that CPU alone; without Config.CPUs the sink's
// thread keeps the process's mask.
func TestPinned(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []bool{true, false} {
		t.Run(fmt.Sprintf("pinned=%v", pin), func(t *testing.T) { testPinned(t, pin, all) })
	}
}

func testPinned(t *testing.T, pin bool, all unix.CPUSet) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 2, func(c *dataplane.Config) {
			if pin {
				c.CPUs = []int{0}
			}
		})
		p := openPort(t, dp)
		masks := make(chan unix.CPUSet, 8)
		p.SetSink(dataplane.SinkFunc(func(b []dataplane.Packet) {
			var m unix.CPUSet
			if err := unix.SchedGetaffinity(0, &m); err != nil {
				t.Error(err)
			}
			select {
			case masks <- m:
			default:
			}
		}))
		s := sender(t)
		_, _ = s.WriteToUDPAddrPort(packet(make([]byte, 50), 0), p.LocalAddr())
		m := <-masks
		pinned := p.Stats().Features&dataplane.FeaturePinned != 0
		switch {
		case pin && (!pinned || m.Count() != 1 || !m.IsSet(0)):
			t.Errorf("pinned: feature %v, sink's CPUs %d (CPU 0: %v)", pinned, m.Count(), m.IsSet(0))
		case !pin && (pinned || m != all):
			t.Errorf("not pinned: feature %v, sink's CPUs %d of %d", pinned, m.Count(), all.Count())
		}
	})
}
