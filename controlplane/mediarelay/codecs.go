// Package mediarelay holds the packet-level pieces of gw's media
// connections that need no PeerConnection: the codec table the API accepts,
// payload-type choice and rewriting, SSRC rewriting in RTCP, and the fan-out
// that copies what an app sends to one media port onto every connection
// using it. Nothing here allocates per packet.
package mediarelay

import (
	"fmt"
	"strings"
)

// Codec is one codec the API accepts in video_params / audio_params.
type Codec struct {
	// Name is the API's spelling ("H264"); names are matched ignoring case.
	Name  string
	Video bool
	// MimeType is what SDP and pion call it ("video/H264").
	MimeType  string
	ClockRate uint32
	Channels  uint16
	// Fmtp is the a=fmtp line gw offers when it calls with this codec.
	Fmtp string
	// PT is the payload type gw offers when the app's own cannot be used.
	PT uint8
	// Static codecs have a payload type fixed by RFC 3551: it is always the
	// one on the wire.
	Static bool
	// Rates are the sampling_rate values an app may give: the RTP clock
	// rate, and for G.722 also its real sampling rate (RFC 3551 keeps its
	// RTP clock at 8000 for historical reasons).
	Rates []uint32
}

// H264Fmtp is offered for H.264: constrained baseline level 3.1, the
// profile every browser decodes, in packetization mode 1 (what GStreamer's
// rtph264pay sends).
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

var codecs = []Codec{
	{Name: "H264", Video: true, MimeType: "video/H264", ClockRate: 90000, Fmtp: H264Fmtp, PT: 102, Rates: []uint32{90000}},
	{Name: "VP8", Video: true, MimeType: "video/VP8", ClockRate: 90000, PT: 96, Rates: []uint32{90000}},
	{Name: "VP9", Video: true, MimeType: "video/VP9", ClockRate: 90000, Fmtp: "profile-id=0", PT: 98, Rates: []uint32{90000}},
	{Name: "AV1", Video: true, MimeType: "video/AV1", ClockRate: 90000, PT: 45, Rates: []uint32{90000}},
	{Name: "OPUS", MimeType: "audio/opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1", PT: 111, Rates: []uint32{48000}},
	{Name: "G722", MimeType: "audio/G722", ClockRate: 8000, PT: 9, Static: true, Rates: []uint32{8000, 16000}},
	{Name: "PCMU", MimeType: "audio/PCMU", ClockRate: 8000, PT: 0, Static: true, Rates: []uint32{8000}},
	{Name: "PCMA", MimeType: "audio/PCMA", ClockRate: 8000, PT: 8, Static: true, Rates: []uint32{8000}},
}

// Lookup finds a codec by its API name, ignoring case.
func Lookup(name string) (Codec, bool) {
	for _, c := range codecs {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Codec{}, false
}

// ByMimeType finds a codec by its SDP name ("H264", "opus"), ignoring case.
func ByMimeType(video bool, encoding string) (Codec, bool) {
	for _, c := range codecs {
		if c.Video == video && strings.EqualFold(c.MimeType[strings.IndexByte(c.MimeType, '/')+1:], encoding) {
			return c, true
		}
	}
	return Codec{}, false
}

// Names lists the accepted codec names of one kind, for error messages.
func Names(video bool) string {
	var ns []string
	for _, c := range codecs {
		if c.Video == video {
			ns = append(ns, c.Name)
		}
	}
	return strings.Join(ns, ", ")
}

// CheckRate reports whether rate is a sampling_rate the app may give.
func (c Codec) CheckRate(rate uint32) error {
	for _, r := range c.Rates {
		if r == rate {
			return nil
		}
	}
	return fmt.Errorf("%s is sampled at %s (RTP clock %d Hz), not %d", c.Name, rateList(c.Rates), c.ClockRate, rate)
}

func rateList(rs []uint32) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprint(r)
	}
	return strings.Join(s, " or ")
}

// ValidPT reports whether pt is a payload type an RTP packet can carry.
func ValidPT(pt int) bool { return pt >= 0 && pt <= 127 }

// dynamicPT reports whether pt may be bound to a codec in SDP: the dynamic
// range, and 35-63 which RFC 5761 frees for it. 64-95 collide with RTCP
// packet types under rtcp-mux.
func dynamicPT(pt int) bool { return pt >= 96 && pt <= 127 || pt >= 35 && pt <= 63 }

// WirePT is the payload type gw offers for c when the app sends with appPT
// (negative: none given). The app's own is used when SDP can bind it to c,
// so no rewriting is needed at all; otherwise the codec's usual one.
func (c Codec) WirePT(appPT int) uint8 {
	if c.Static || !dynamicPT(appPT) {
		return c.PT
	}
	return uint8(appPT)
}

// Defaults lists the codecs of one kind as gw registers them when it
// answers or only receives: every accepted codec, with H.264 in the
// profiles browsers offer (pion matches H.264 by profile and mode).
func Defaults(video bool) []Codec {
	var out []Codec
	for _, c := range codecs {
		if c.Video != video {
			continue
		}
		if c.Name == "H264" {
			pt := uint8(102)
			for _, profile := range []string{"42e01f", "42001f", "4d001f", "64001f"} {
				for _, mode := range []string{"1", "0"} {
					h := c
					h.Fmtp = "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + profile
					h.PT = pt
					out = append(out, h)
					pt++
				}
			}
			continue
		}
		out = append(out, c)
	}
	return out
}
