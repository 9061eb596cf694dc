package controlplane

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/gw-project/gw/controlplane/mediarelay"
)

var errUnexpectedAnswer = errors.New("an answer for a call this peer did not make")

// newMediaPC builds the PeerConnection of mc with its own MediaEngine (the
// codecs given, at their PT fields) and interceptors: NACK generator and
// responder (gw answers the remote's NACKs from its send buffer, and asks
// for what it misses), RTCP sender and receiver reports, TWCC feedback, a
// stats interceptor kept per connection that sees RTCP only (rtcpStats),
// and gw's own counters of what is sent (mediametrics.go).
//
// recv says whether the connection can receive media. If not (a call that
// only sends, or an offer from a remote that only receives), the NACK
// generator and the TWCC feedback are left out: each runs a timer every
// 100 ms per connection with nothing to do, which adds up for a camera
// with many viewers. The SDP is the same either way.
func (s *Server) newMediaPC(mc *mediaConn, video, audio []mediarelay.Codec, recv bool) (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	for _, list := range [][]mediarelay.Codec{video, audio} {
		for _, c := range list {
			typ := webrtc.RTPCodecTypeAudio
			if c.Video {
				typ = webrtc.RTPCodecTypeVideo
			}
			if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: capability(c), PayloadType: webrtc.PayloadType(c.PT)}, typ); err != nil {
				return nil, fmt.Errorf("registering %s: %w", c.Name, err)
			}
		}
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "ccm", Parameter: "fir"}, webrtc.RTPCodecTypeVideo)
	ir := &interceptor.Registry{}
	// Counting first (next to SRTP, below the NACK responder: it sees the
	// resends) and last (next to the track: only the originals).
	mc.sent = &sendCounter{}
	ir.Add(counting{c: mc.sent, inner: true})
	// Stats next to the wire too: an interceptor sees only what the ones
	// after it write, so the NACKs the generator sends count only here.
	sf, err := stats.NewInterceptor()
	if err != nil {
		return nil, err
	}
	sf.OnNewPeerConnection(func(_ string, g stats.Getter) { mc.stats.Store(&g) })
	ir.Add(rtcpStats{sf})
	// Without recv, the receive side's interceptors go to a registry that
	// is dropped, and the NACK responder is added alone.
	recvIR := ir
	if !recv {
		recvIR = &interceptor.Registry{}
		resp, err := nack.NewResponderInterceptor(nack.ResponderSize(nackHistory))
		if err != nil {
			return nil, err
		}
		ir.Add(resp)
	}
	if err := webrtc.ConfigureNackWithOptions(me, recvIR, nil, nack.ResponderSize(nackHistory)); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(me, recvIR); err != nil {
		return nil, err
	}
	ir.Add(counting{c: mc.sent})
	pc, err := s.newPeerConnection(mc.p, me, ir)
	if err != nil {
		return nil, err
	}
	pc.OnConnectionStateChange(mc.onConnectionState)
	pc.OnTrack(mc.onTrack)
	return pc, nil
}

// rtcpStats makes pion's stats interceptors see RTCP only. Recording each
// RTP packet (a parsed and cloned header, a lock) cost some 6% of a
// receiving gw's CPU and 3% of a sending one's in the bench's media relay,
// for packet and byte counts gw keeps itself (mediametrics.go). A stream is
// still bound, so that its recorder exists and takes the stream's RTCP.
type rtcpStats struct{ f *stats.InterceptorFactory }

func (r rtcpStats) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := r.f.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return rtcpOnly{i}, nil
}

type rtcpOnly struct{ interceptor.Interceptor }

func (r rtcpOnly) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	r.Interceptor.BindLocalStream(info, w)
	return w
}

func (r rtcpOnly) BindRemoteStream(info *interceptor.StreamInfo, rd interceptor.RTPReader) interceptor.RTPReader {
	r.Interceptor.BindRemoteStream(info, rd)
	return rd
}

// nackHistory is how many sent packets of each stream gw keeps to answer
// NACKs. Each is a copy in an MTU-sized buffer, so it is the largest memory
// cost of a sending stream: 256 take about 400 KB. That is over a second
// of a 2 Mbit/s camera and 0.3 s at 8 Mbit/s (1200-byte packets); a
// retransmission that comes later than that misses its frame anyway.
// Pion's default is 1024.
const nackHistory = 256

func capability(c mediarelay.Codec) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.Fmtp}
}

// offeredMedia is one m= section of a remote offer.
type offeredMedia struct {
	video  bool
	mid    string
	dir    webrtc.RTPTransceiverDirection // as the remote declared it
	codecs []webrtc.RTPCodecParameters    // in the remote's order of preference
}

// remoteSends and remoteReceives read the remote's declared direction.
func (o offeredMedia) remoteSends() bool {
	return o.dir == webrtc.RTPTransceiverDirectionSendrecv || o.dir == webrtc.RTPTransceiverDirectionSendonly
}

func (o offeredMedia) remoteReceives() bool {
	return o.dir == webrtc.RTPTransceiverDirectionSendrecv || o.dir == webrtc.RTPTransceiverDirectionRecvonly
}

// parseOffer lists the audio and video sections of an offer that are not
// rejected (port 0).
func parseOffer(text string) ([]offeredMedia, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, err
	}
	sessionDir := directionOf(d.Attributes, webrtc.RTPTransceiverDirectionSendrecv)
	var out []offeredMedia
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" || m.MediaName.Port.Value == 0 {
			continue
		}
		o := offeredMedia{video: kind == "video", dir: directionOf(m.Attributes, sessionDir)}
		rtpmap := map[string]string{}
		fmtp := map[string]string{}
		// Feedback matters: pion answers with the intersection of these
		// and its own (nack, nack pli, ccm fir, transport-cc).
		feedback := map[string][]webrtc.RTCPFeedback{}
		for _, a := range m.Attributes {
			switch a.Key {
			case "mid":
				o.mid = a.Value
			case "rtpmap", "fmtp", "rtcp-fb":
				pt, rest, ok := strings.Cut(a.Value, " ")
				if !ok {
					continue
				}
				switch a.Key {
				case "rtpmap":
					rtpmap[pt] = rest
				case "fmtp":
					fmtp[pt] = rest
				default:
					typ, param, _ := strings.Cut(rest, " ")
					feedback[pt] = append(feedback[pt], webrtc.RTCPFeedback{Type: typ, Parameter: param})
				}
			}
		}
		for _, f := range m.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				continue
			}
			spec, ok := rtpmap[f]
			if !ok {
				continue
			}
			parts := strings.Split(spec, "/")
			if len(parts) < 2 {
				continue
			}
			clock, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				continue
			}
			var ch uint64
			if len(parts) > 2 {
				ch, _ = strconv.ParseUint(parts[2], 10, 16)
			}
			o.codecs = append(o.codecs, webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{
					MimeType: kind + "/" + parts[0], ClockRate: uint32(clock), Channels: uint16(ch), SDPFmtpLine: fmtp[f],
					RTCPFeedback: append(append([]webrtc.RTCPFeedback(nil), feedback["*"]...), feedback[f]...),
				},
				PayloadType: webrtc.PayloadType(pt),
			})
		}
		out = append(out, o)
	}
	return out, nil
}

func directionOf(attrs []sdp.Attribute, def webrtc.RTPTransceiverDirection) webrtc.RTPTransceiverDirection {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return webrtc.NewRTPTransceiverDirection(a.Key)
		}
	}
	return def
}

// matchOffered picks the offered codecs that are c (same name and clock
// rate), H.264 in packetization mode 1 first (what rtph264pay sends), each
// kind's order kept otherwise.
func matchOffered(o offeredMedia, c mediarelay.Codec) []webrtc.RTPCodecParameters {
	var first, rest []webrtc.RTPCodecParameters
	for _, oc := range o.codecs {
		if !strings.EqualFold(oc.MimeType, c.MimeType) || oc.ClockRate != c.ClockRate {
			continue
		}
		if c.Name == "H264" && !strings.Contains(oc.SDPFmtpLine, "packetization-mode=1") {
			rest = append(rest, oc)
		} else {
			first = append(first, oc)
		}
	}
	return append(first, rest...)
}

// offeredNames lists the codecs of an offered section gw knows, for errors.
func offeredNames(o offeredMedia) string {
	var names []string
	for _, oc := range o.codecs {
		enc := oc.MimeType[strings.IndexByte(oc.MimeType, '/')+1:]
		if c, ok := mediarelay.ByMimeType(o.video, enc); ok && !containsString(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return "no codec gw supports"
	}
	return strings.Join(names, ", ")
}

func containsString(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// mungeSDP edits the description gw sends (pion's own local description
// stays as pion made it: it refuses edited ones): a b=AS line (kbit/s) per
// kind where the app set band_width, so the remote caps the bitrate it
// sends, and the directions of the sections named in dirs by mid.
func mungeSDP(text string, bandwidth [2]int, dirs map[string]webrtc.RTPTransceiverDirection) (string, error) {
	if bandwidth == [2]int{} && len(dirs) == 0 {
		return text, nil
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return "", err
	}
	for _, m := range d.MediaDescriptions {
		k := -1
		switch m.MediaName.Media {
		case "video":
			k = kindVideo
		case "audio":
			k = kindAudio
		}
		if k < 0 {
			continue
		}
		if bw := bandwidth[k]; bw > 0 {
			m.Bandwidth = append(m.Bandwidth, sdp.Bandwidth{Type: "AS", Bandwidth: uint64(bw)})
		}
		mid, _ := m.Attribute("mid")
		if dir, ok := dirs[mid]; ok {
			attrs := m.Attributes[:0]
			for _, a := range m.Attributes {
				switch a.Key {
				case "sendrecv", "sendonly", "recvonly", "inactive":
					continue
				}
				attrs = append(attrs, a)
			}
			m.Attributes = append(attrs, sdp.NewPropertyAttribute(dir.String()))
		}
	}
	b, err := d.Marshal()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// direction combines what one side does.
func direction(send, recv bool) webrtc.RTPTransceiverDirection {
	switch {
	case send && recv:
		return webrtc.RTPTransceiverDirectionSendrecv
	case send:
		return webrtc.RTPTransceiverDirectionSendonly
	case recv:
		return webrtc.RTPTransceiverDirectionRecvonly
	default:
		return webrtc.RTPTransceiverDirectionInactive
	}
}
