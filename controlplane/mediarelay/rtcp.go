package mediarelay

import "encoding/binary"

// RTCP packet types (RFC 3550, 4585, 3611).
const (
	typeSR    = 200
	typeRR    = 201
	typeSDES  = 202
	typeBYE   = 203
	typeAPP   = 204
	typeRTPFB = 205
	typePSFB  = 206
	typeXR    = 207
)

// RewriteSSRC replaces, in place, every SSRC field of the compound RTCP
// packet b that holds from by to: sender SSRCs, report blocks, SDES
// chunks, BYE lists, feedback media SSRCs, FIR entries and REMB lists.
//
// gw needs it because pion sends the app's RTP under an SSRC of its own:
// the app's reports about its stream must name that SSRC to mean anything
// to the remote, and the remote's feedback (PLI, FIR, NACK, receiver
// reports) must name the app's SSRC for the app (GStreamer's rtpbin) to act
// on it.
//
// It reports whether b was well formed; a malformed packet is rewritten up
// to where it goes wrong.
func RewriteSSRC(b []byte, from, to uint32) bool {
	if from == to {
		return true
	}
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return false
		}
		size := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if size > len(b) {
			return false
		}
		p := b[:size]
		b = b[size:]
		count := int(p[0] & 0x1f)
		// With padding, the last byte says how much of p is not content.
		if p[0]&0x20 != 0 {
			pad := int(p[size-1])
			if pad == 0 || pad > size-4 {
				return false
			}
			p = p[:size-pad]
		}
		if !rewritePacket(p, p[1], count, from, to) {
			return false
		}
	}
	return true
}

// rewritePacket rewrites one RTCP packet p (header included, padding cut).
func rewritePacket(p []byte, typ byte, count int, from, to uint32) bool {
	swap := func(off int) bool {
		if off+4 > len(p) {
			return false
		}
		if binary.BigEndian.Uint32(p[off:]) == from {
			binary.BigEndian.PutUint32(p[off:], to)
		}
		return true
	}
	switch typ {
	case typeSR, typeRR:
		if !swap(4) {
			return false
		}
		off := 8
		if typ == typeSR {
			off += 20 // NTP, RTP timestamp, packet and octet counts
		}
		for i := 0; i < count; i++ {
			if !swap(off + 24*i) {
				return false
			}
		}
	case typeSDES:
		off := 4
		for i := 0; i < count; i++ {
			if !swap(off) {
				return false
			}
			off += 4
			// Items until a zero type byte, then padding to 32 bits.
			for {
				if off >= len(p) {
					return false
				}
				if p[off] == 0 {
					off = (off + 4) &^ 3
					break
				}
				if off+2 > len(p) {
					return false
				}
				off += 2 + int(p[off+1])
			}
		}
	case typeBYE:
		for i := 0; i < count; i++ {
			if !swap(4 + 4*i) {
				return false
			}
		}
	case typeAPP, typeXR:
		return swap(4)
	case typeRTPFB, typePSFB:
		if !swap(4) || !swap(8) {
			return false
		}
		if typ == typePSFB {
			switch count { // FMT
			case 4: // FIR: entries of SSRC, seq, reserved
				for off := 12; off+8 <= len(p); off += 8 {
					swap(off)
				}
			case 15: // REMB: "REMB", count, bitrate, then SSRCs
				if len(p) >= 20 && string(p[12:16]) == "REMB" {
					n := int(p[16])
					for i := 0; i < n; i++ {
						if !swap(20 + 4*i) {
							return false
						}
					}
				}
			}
		}
	default:
		// An unknown type: its first word after the header is an SSRC in
		// every RTCP packet type registered so far.
		if len(p) >= 8 {
			swap(4)
		}
	}
	return true
}
