package mediarelay

import "encoding/binary"

// IsRTP reports whether b looks like an RTP packet: version 2, a full fixed
// header, and not an RTCP packet type (an app multiplexing RTCP onto its
// media port, RFC 5761).
func IsRTP(b []byte) bool {
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	pt := b[1] & 0x7f
	return pt < 72 || pt > 76
}

// IsRTCP reports whether b starts like an RTCP packet: version 2, a full
// header, and a packet type of RTCP's range (192-223).
func IsRTCP(b []byte) bool {
	return len(b) >= 8 && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// SSRC is the synchronization source of an RTP packet (IsRTP).
func SSRC(b []byte) uint32 { return binary.BigEndian.Uint32(b[8:12]) }

// PayloadType is the payload type of an RTP packet (IsRTP).
func PayloadType(b []byte) uint8 { return b[1] & 0x7f }

// SetPayloadType rewrites an RTP packet's payload type in place, keeping
// the marker bit.
func SetPayloadType(b []byte, pt uint8) {
	b[1] = b[1]&0x80 | pt&0x7f
}

// SeqTS are the sequence number and timestamp of an RTP packet (IsRTP).
func SeqTS(b []byte) (seq uint16, ts uint32) {
	return binary.BigEndian.Uint16(b[2:4]), binary.BigEndian.Uint32(b[4:8])
}

// PayloadLen is the size of an RTP packet's payload (IsRTP): without the
// fixed header, CSRCs, header extension and padding; 0 if these do not fit
// in b. webrtc-stats count bytes this way (bytesReceived, bytesSent).
func PayloadLen(b []byte) int {
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension: 4 bytes of profile and length, then length words
		if len(b) < n+4 {
			return 0
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
	}
	if b[0]&0x20 != 0 && len(b) > n { // padding: its count is the last byte
		n += int(b[len(b)-1])
	}
	return max(len(b)-n, 0)
}
