package datarelay

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonStart returns the first byte of a JSON text after white space, 0 if
// there is none.
func jsonStart(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// passJSON reports whether a datagram goes on a json connection as it is:
// it is a JSON text whose value is an object, array, number or boolean.
// Strings are not passed through so that a received string can become its
// bare UTF-8 and still survive the round trip; null is not, because a
// PeerJS receiver throws on a top-level null.
func passJSON(d []byte) bool {
	switch jsonStart(d) {
	case '{', '[', '-', 't', 'f', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return json.Valid(d) // pooled scanner: no allocation
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as JSON can carry only text.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONStringValue decodes msg, if it is one JSON string (with
// optional white space around it), appending its UTF-8 to dst. ok is false
// if msg is anything else. Lone surrogates become U+FFFD.
func appendJSONStringValue(dst, msg []byte) (out []byte, ok bool) {
	i := 0
	for i < len(msg) && isSpace(msg[i]) {
		i++
	}
	if i == len(msg) || msg[i] != '"' {
		return dst, false
	}
	i++
	out = dst
	for {
		if i >= len(msg) {
			return dst, false
		}
		c := msg[i]
		switch {
		case c == '"':
			i++
			for i < len(msg) && isSpace(msg[i]) {
				i++
			}
			if i != len(msg) {
				return dst, false
			}
			return out, true
		case c < 0x20:
			return dst, false
		case c != '\\':
			j := i + 1
			for j < len(msg) && msg[j] != '"' && msg[j] != '\\' && msg[j] >= 0x20 {
				j++
			}
			out = append(out, msg[i:j]...)
			i = j
			continue
		}
		// An escape.
		if i+1 >= len(msg) {
			return dst, false
		}
		e := msg[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(msg, i)
			if !ok {
				return dst, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(msg) && msg[i] == '\\' && msg[i+1] == 'u' {
					if v, ok := hex4(msg, i+2); ok {
						r2 = v
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return dst, false
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
