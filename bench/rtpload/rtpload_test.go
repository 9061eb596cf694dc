package rtpload

import (
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	prevHi := uint64(0)
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		prevHi = hi
		if i < histBuckets-1 && (bucketOf(lo) != i || bucketOf(hi-1) != i) {
			t.Fatalf("bucket %d [%d,%d): bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi-1))
		}
	}
}

func TestQuantile(t *testing.T) {
	var h Histogram
	for v := 1; v <= 1000; v++ {
		h.Record(uint64(v) * 1000) // 1..1000 µs
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if d := got - c.want; d < -c.want/25 || d > c.want/25 {
			t.Errorf("q%.3f = %v, want about %v", c.q, got, c.want)
		}
	}
	h.Reset()
	if h.Quantile(0.5) != 0 || h.Count() != 0 {
		t.Error("reset kept something")
	}
}

func TestParseStamp(t *testing.T) {
	b := make([]byte, 100)
	Stamp(b, 96, 7, 123456789, 42)
	s, n, sent, ok := Parse(b)
	if !ok || s != 7 || n != 123456789 || sent != 42 {
		t.Fatalf("got %d %d %d %v", s, n, sent, ok)
	}
	// A relay that adds a header extension (e.g. transport-cc) and CSRCs.
	ext := append([]byte{0x92, b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		0, 0, 0, 1, 0, 0, 0, 2, // two CSRCs
		0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0}, b[HeaderSize:]...)
	if s, n, _, ok := Parse(ext); !ok || s != 7 || n != 123456789 {
		t.Fatalf("with extension: %d %d %v", s, n, ok)
	}
	if _, _, _, ok := Parse(b[:20]); ok {
		t.Error("short packet parsed")
	}
}
