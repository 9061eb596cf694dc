package mediarelay

import (
	"bytes"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/gw-project/gw/dataplane"
)

func TestLookupIgnoresCase(t *testing.T) {
	for _, name := range []string{"H264", "h264", "Vp8", "vp9", "av1", "opus", "Opus", "g722", "pcmu", "PCMA"} {
		if _, ok := Lookup(name); !ok {
			t.Errorf("Lookup(%q) failed", name)
		}
	}
	if _, ok := Lookup("H265"); ok {
		t.Error("H265 accepted")
	}
	if c, _ := Lookup("opus"); c.Video || c.ClockRate != 48000 || c.Channels != 2 {
		t.Errorf("opus %+v", c)
	}
	if c, ok := ByMimeType(true, "h264"); !ok || c.Name != "H264" {
		t.Errorf("ByMimeType h264: %v %+v", ok, c)
	}
	if _, ok := ByMimeType(false, "H264"); ok {
		t.Error("H264 found among audio codecs")
	}
}

func TestWirePT(t *testing.T) {
	h264, _ := Lookup("H264")
	pcmu, _ := Lookup("PCMU")
	cases := []struct {
		c    Codec
		app  int
		want uint8
	}{
		{h264, -1, 102},  // none given
		{h264, 100, 100}, // dynamic: kept
		{h264, 96, 96},
		{h264, 127, 127},
		{h264, 35, 35},   // RFC 5761 range
		{h264, 0, 102},   // static PCMU's number
		{h264, 72, 102},  // collides with RTCP under rtcp-mux
		{h264, 128, 102}, // out of range
		{pcmu, 0, 0},
		{pcmu, 100, 0}, // static codecs keep their number
	}
	for _, c := range cases {
		if got := c.c.WirePT(c.app); got != c.want {
			t.Errorf("%s WirePT(%d) = %d, want %d", c.c.Name, c.app, got, c.want)
		}
	}
}

func TestCheckRate(t *testing.T) {
	g722, _ := Lookup("G722")
	opus, _ := Lookup("OPUS")
	vp8, _ := Lookup("VP8")
	if g722.CheckRate(8000) != nil || g722.CheckRate(16000) != nil || g722.CheckRate(48000) == nil {
		t.Error("G722 rates")
	}
	if opus.CheckRate(48000) != nil || opus.CheckRate(16000) == nil {
		t.Error("opus rates")
	}
	if vp8.CheckRate(90000) != nil || vp8.CheckRate(8000) == nil {
		t.Error("VP8 rates")
	}
}

func TestDefaultsHaveDistinctPayloadTypes(t *testing.T) {
	for _, video := range []bool{true, false} {
		seen := map[uint8]string{}
		for _, c := range Defaults(video) {
			if other, dup := seen[c.PT]; dup {
				t.Errorf("PT %d for %s and %s", c.PT, other, c.Name)
			}
			seen[c.PT] = c.Name
		}
	}
}

func rtpPacket(t *testing.T, pt uint8, ssrc uint32, marker bool, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: ssrc, Marker: marker, SequenceNumber: 7}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSetPayloadTypeKeepsMarker(t *testing.T) {
	b := rtpPacket(t, 96, 1, true, []byte("x"))
	SetPayloadType(b, 111)
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if p.PayloadType != 111 || !p.Marker || PayloadType(b) != 111 {
		t.Fatalf("%+v", p.Header)
	}
}

func TestIsRTP(t *testing.T) {
	if !IsRTP(rtpPacket(t, 96, 1, false, nil)) {
		t.Error("RTP refused")
	}
	rr, _ := (&rtcp.ReceiverReport{SSRC: 1}).Marshal()
	if IsRTP(rr) || !IsRTCP(rr) {
		t.Error("RTCP taken for RTP")
	}
	if IsRTP([]byte{0x80, 96, 0, 1}) || IsRTP([]byte("hello, this is not RTP")) {
		t.Error("garbage taken for RTP")
	}
}

// Every SSRC field naming from is rewritten, and nothing else changes.
func TestRewriteSSRC(t *testing.T) {
	const from, to, other = 0x11111111, 0x22222222, 0x33333333
	pkts := []rtcp.Packet{
		&rtcp.SenderReport{SSRC: from, NTPTime: 1, RTPTime: 2, PacketCount: 3, OctetCount: 4,
			Reports: []rtcp.ReceptionReport{{SSRC: other}, {SSRC: from, LastSequenceNumber: 9}}},
		&rtcp.ReceiverReport{SSRC: from, Reports: []rtcp.ReceptionReport{{SSRC: from}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{
			{Source: from, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "cname-of-odd-length"}}},
			{Source: other, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "ab"}}},
			{Source: from, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "abcd"}, {Type: rtcp.SDESTool, Text: "gw"}}},
		}},
		&rtcp.PictureLossIndication{SenderSSRC: other, MediaSSRC: from},
		&rtcp.FullIntraRequest{SenderSSRC: from, MediaSSRC: other, FIR: []rtcp.FIREntry{{SSRC: from, SequenceNumber: 3}}},
		&rtcp.TransportLayerNack{SenderSSRC: other, MediaSSRC: from, Nacks: []rtcp.NackPair{{PacketID: 5}}},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: other, Bitrate: 1e6, SSRCs: []uint32{other, from}},
		&rtcp.Goodbye{Sources: []uint32{other, from}, Reason: "bye"},
	}
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	if !RewriteSSRC(b, from, to) {
		t.Fatal("well-formed packet reported malformed")
	}
	got, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	sr := got[0].(*rtcp.SenderReport)
	if sr.SSRC != to || sr.Reports[0].SSRC != other || sr.Reports[1].SSRC != to || sr.Reports[1].LastSequenceNumber != 9 || sr.PacketCount != 3 {
		t.Errorf("SR %+v", sr)
	}
	if rr := got[1].(*rtcp.ReceiverReport); rr.SSRC != to || rr.Reports[0].SSRC != to {
		t.Errorf("RR %+v", rr)
	}
	sd := got[2].(*rtcp.SourceDescription)
	if sd.Chunks[0].Source != to || sd.Chunks[1].Source != other || sd.Chunks[2].Source != to || sd.Chunks[2].Items[1].Text != "gw" {
		t.Errorf("SDES %+v", sd)
	}
	if p := got[3].(*rtcp.PictureLossIndication); p.SenderSSRC != other || p.MediaSSRC != to {
		t.Errorf("PLI %+v", p)
	}
	if f := got[4].(*rtcp.FullIntraRequest); f.SenderSSRC != to || f.MediaSSRC != other || f.FIR[0].SSRC != to || f.FIR[0].SequenceNumber != 3 {
		t.Errorf("FIR %+v", f)
	}
	if n := got[5].(*rtcp.TransportLayerNack); n.MediaSSRC != to || n.Nacks[0].PacketID != 5 {
		t.Errorf("NACK %+v", n)
	}
	if r := got[6].(*rtcp.ReceiverEstimatedMaximumBitrate); r.SSRCs[0] != other || r.SSRCs[1] != to {
		t.Errorf("REMB %+v", r)
	}
	if g := got[7].(*rtcp.Goodbye); g.Sources[0] != other || g.Sources[1] != to || g.Reason != "bye" {
		t.Errorf("BYE %+v", g)
	}
	// Back again gives the original bytes.
	orig, _ := rtcp.Marshal(pkts)
	if !RewriteSSRC(b, to, from) || !bytes.Equal(b, orig) {
		t.Error("rewriting back does not restore the packet")
	}
}

func TestRewriteSSRCMalformed(t *testing.T) {
	pli, _ := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}).Marshal()
	for _, b := range [][]byte{
		pli[:len(pli)-1],                 // length says more than there is
		append([]byte{0x00}, pli[1:]...), // version 0
		{0x81, 201, 0, 1, 0, 0, 0, 1},    // RR claims one block, has none
		{0x81, 202, 0, 1, 0, 0, 0, 1},    // SDES chunk without terminator
	} {
		c := bytes.Clone(b)
		if RewriteSSRC(c, 2, 3) {
			t.Errorf("% x reported well formed", b)
		}
	}
	if !RewriteSSRC(nil, 1, 2) {
		t.Error("empty packet reported malformed")
	}
}

func FuzzRewriteSSRC(f *testing.F) {
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 1}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: 1, Text: "x"}}}}}})
	f.Add(sr)
	f.Fuzz(func(t *testing.T, b []byte) {
		RewriteSSRC(b, 1, 2) // must not panic
	})
}

type recorder struct{ got [][]byte }

func (r *recorder) Write(b []byte) (int, error) {
	r.got = append(r.got, bytes.Clone(b))
	return len(b), nil
}

func TestFanout(t *testing.T) {
	var f Fanout
	a, b := &recorder{}, &recorder{}
	f.Add(a)
	f.Add(b)
	p1 := rtpPacket(t, 96, 0xabc, false, []byte("one"))
	f.Receive([]dataplane.Packet{{Data: p1}, {Data: []byte("not rtp")}})
	f.Remove(a)
	p2 := rtpPacket(t, 96, 0xdef, true, []byte("two"))
	f.Receive([]dataplane.Packet{{Data: p2}})
	if len(a.got) != 1 || !bytes.Equal(a.got[0], p1) {
		t.Errorf("a got %d packets", len(a.got))
	}
	if len(b.got) != 2 || !bytes.Equal(b.got[1], p2) {
		t.Errorf("b got %d packets", len(b.got))
	}
	if f.SSRC() != 0xdef || f.Packets() != 2 || f.Dropped() != 1 || f.Len() != 1 {
		t.Errorf("ssrc %x packets %d dropped %d len %d", f.SSRC(), f.Packets(), f.Dropped(), f.Len())
	}
	f.Remove(b)
	f.Remove(b) // twice is harmless
	f.Receive([]dataplane.Packet{{Data: p1}})
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func TestPacketPathDoesNotAllocate(t *testing.T) {
	var f Fanout
	for i := 0; i < 3; i++ {
		f.Add(discard{})
	}
	batch := []dataplane.Packet{{Data: rtpPacket(t, 96, 1, false, make([]byte, 1000))}, {Data: rtpPacket(t, 96, 2, false, nil)}}
	pli, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 1}, &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 1}}}})
	if n := testing.AllocsPerRun(1000, func() {
		f.Receive(batch)
		SetPayloadType(batch[0].Data, 100)
		RewriteSSRC(pli, 1, 2)
		RewriteSSRC(pli, 2, 1)
	}); n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// heldBatcher records holds; heldWriter checks it is written to only
// while one is on.
type heldBatcher struct{ holds, releases, on int }

func (h *heldBatcher) Hold()    { h.holds++; h.on++ }
func (h *heldBatcher) Release() { h.releases++; h.on-- }

type heldWriter struct {
	b      *heldBatcher
	writes int
	t      *testing.T
}

func (w *heldWriter) Write(b []byte) (int, error) {
	if w.b.on != 1 {
		w.t.Error("written outside a hold")
	}
	w.writes++
	return len(b), nil
}

// A batch's writes happen inside one hold of the Batcher; with no
// writers there is nothing to hold.
func TestFanoutHoldsEachBatch(t *testing.T) {
	hb := &heldBatcher{}
	f := Fanout{Batch: hb}
	p := rtpPacket(t, 96, 1, false, []byte("x"))
	f.Receive([]dataplane.Packet{{Data: p}})
	if hb.holds != 0 {
		t.Errorf("held %d times with no writers", hb.holds)
	}
	w := &heldWriter{b: hb, t: t}
	f.Add(w)
	f.Add(w)
	f.Receive([]dataplane.Packet{{Data: p}, {Data: p}, {Data: p}})
	if hb.holds != 1 || hb.releases != 1 || hb.on != 0 || w.writes != 6 {
		t.Errorf("holds %d releases %d writes %d", hb.holds, hb.releases, w.writes)
	}
}
