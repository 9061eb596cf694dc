package mediarelay

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/gw-project/gw/dataplane"
)

func TestPayloadLen(t *testing.T) {
	for _, c := range []struct {
		name string
		p    rtp.Packet
	}{
		{"plain", rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96}, Payload: make([]byte, 100)}},
		{"csrc", rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{1, 2, 3}}, Payload: make([]byte, 33)}},
		{"padding", rtp.Packet{Header: rtp.Header{Version: 2, Padding: true}, Payload: make([]byte, 50), PaddingSize: 6}},
		{"empty", rtp.Packet{Header: rtp.Header{Version: 2}}},
	} {
		b, err := c.p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := PayloadLen(b); got != len(c.p.Payload) {
			t.Errorf("%s: PayloadLen %d, want %d", c.name, got, len(c.p.Payload))
		}
	}
	h := rtp.Header{Version: 2, Extension: true, ExtensionProfile: 0xBEDE}
	if err := h.SetExtension(1, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	b, err := (&rtp.Packet{Header: h, Payload: make([]byte, 77)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := PayloadLen(b); got != 77 {
		t.Errorf("with an extension: PayloadLen %d, want 77", got)
	}
	// Lengths that do not fit give 0, never a panic.
	if got := PayloadLen([]byte{0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe}); got != 0 {
		t.Errorf("truncated extension: %d", got)
	}
	if got := PayloadLen([]byte{0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 200}); got != 0 {
		t.Errorf("padding larger than the packet: %d", got)
	}
}

func seqPacket(t *testing.T, ssrc uint32, seq uint16, ts uint32, payload int) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts},
		Payload: make([]byte, payload)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFanoutMeasuresTheApp: the app's stream as RFC 3550 sees it, from
// SetClockRate on; a new SSRC starts a new source.
func TestFanoutMeasuresTheApp(t *testing.T) {
	var f Fanout
	f.Add(discard{})
	if _, ok := f.Stats(); ok {
		t.Fatal("stats before SetClockRate")
	}
	f.Receive([]dataplane.Packet{{Data: seqPacket(t, 5, 1, 0, 10)}}) // not measured yet
	f.SetClockRate(90000)
	var batch []dataplane.Packet
	for i := uint16(10); i < 30; i++ {
		if i == 15 || i == 16 {
			continue // lost
		}
		batch = append(batch, dataplane.Packet{Data: seqPacket(t, 5, i, uint32(i)*3000, 100)})
	}
	f.Receive(batch)
	f.rx.Load().Publish()
	s, ok := f.Stats()
	if !ok || s.Packets != 18 || s.Bytes != 1800 || s.Lost != 2 || !s.Valid {
		t.Fatalf("stats %+v", s)
	}
	f.SetClockRate(90000) // same rate: the measurement goes on
	if s2, _ := f.Stats(); s2.Packets != s.Packets {
		t.Errorf("same clock rate started over: %+v", s2)
	}
	// The app restarts with another SSRC and sequence numbers: a new
	// source, no loss from the jump.
	batch = batch[:0]
	for i := uint16(5000); i < 5010; i++ {
		batch = append(batch, dataplane.Packet{Data: seqPacket(t, 6, i, uint32(i)*3000, 100)})
	}
	f.Receive(batch)
	f.rx.Load().Publish()
	if s, _ = f.Stats(); s.Lost != 0 || s.Expected != 9 || s.Packets != 28 {
		t.Errorf("after the new SSRC %+v", s)
	}
	f.SetClockRate(48000) // another codec: a new measurement
	if s, _ = f.Stats(); s.Packets != 0 {
		t.Errorf("new clock rate kept %+v", s)
	}
}

// TestFanoutEstimatorDoesNotAllocate: the sink with its estimator on is
// still allocation-free per packet, a new SSRC included.
func TestFanoutEstimatorDoesNotAllocate(t *testing.T) {
	var f Fanout
	f.Add(discard{})
	f.SetClockRate(90000)
	pkts := [2][]byte{seqPacket(t, 1, 0, 0, 1000), seqPacket(t, 2, 0, 0, 1000)}
	batch := make([]dataplane.Packet, 1)
	i := 0
	if n := testing.AllocsPerRun(5000, func() {
		p := pkts[i/1000%2] // the SSRC changes now and then
		seq := uint16(i)
		p[2], p[3] = byte(seq>>8), byte(seq)
		p[7] = byte(i)
		batch[0].Data = p
		f.Receive(batch)
		i++
	}); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
	if s, _ := f.Stats(); s.Packets == 0 {
		t.Error("nothing measured")
	}
}
