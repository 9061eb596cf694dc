package loadgen

import "testing"

func TestSenderNoAllocs(t *testing.T) {
	r, err := NewReceiver(false, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // never Run: the kernel drops what overflows
	for _, gso := range []bool{false, true} {
		s, err := NewSender(SenderConfig{Dst: r.Addr(), Size: 200, GSO: gso})
		if err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(100, func() { _ = s.sendBurst() }); a != 0 {
			t.Errorf("gso=%v: %v allocations per burst", gso, a)
		}
		s.Close()
	}
}
