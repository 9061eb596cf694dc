package signaling

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message types of the PeerJS protocol, and gw's two extensions.
const (
	TypeOpen      = "OPEN"
	TypeLeave     = "LEAVE"
	TypeCandidate = "CANDIDATE"
	TypeOffer     = "OFFER"
	TypeAnswer    = "ANSWER"
	TypeExpire    = "EXPIRE"
	TypeHeartbeat = "HEARTBEAT"
	TypeIDTaken   = "ID-TAKEN"
	TypeError     = "ERROR"
	// TypeInvalidKey is understood by PeerJS clients but no longer sent by
	// the official server (it sends ERROR "Invalid key provided").
	TypeInvalidKey = "INVALID-KEY"

	// TypeExpiresIn (server → client, gw extension) warns that the peer's
	// credential lapses in payload.remainingSec seconds.
	TypeExpiresIn = "EXPIRESIN"
	// TypeCredential (client → server, gw extension) renews the credential;
	// its payload is a Credential.
	TypeCredential = "CREDENTIAL"
)

// ERROR messages. The first four are the official server's, word for word:
// PeerJS clients and gw's own client recognise them by their text.
const (
	msgInvalidKey      = "Invalid key provided"
	msgInvalidParams   = "No id, token, or key supplied to websocket server"
	msgLimit           = "Server has reached its concurrent user limit"
	msgIDTaken         = "ID is taken"
	msgInvalidID       = "Invalid id provided"
	msgDomain          = "Domain not allowed for this key"
	msgCredRequired    = "credential required"
	msgCredExpired     = "credential expired"
	msgCredInvalid     = "credential invalid: "
	msgRenewalRejected = "credential renewal rejected: "
)

// Credential bounds, as SkyWay had them.
const (
	MinCredentialTTL = 600 * time.Second
	MaxCredentialTTL = 90000 * time.Second
)

// Message is one signaling frame. Payload is kept raw: the server forwards it
// untouched and callers decode the PeerJS payload they expect.
type Message struct {
	Type    string          `json:"type"`
	Src     string          `json:"src,omitempty"`
	Dst     string          `json:"dst,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Credential authenticates a peer id for a key that has a secret:
// AuthToken = base64(HMAC-SHA256(secret, "<Timestamp>:<TTL>:<peer id>")),
// Timestamp in Unix seconds, TTL in seconds (600..90000).
type Credential struct {
	Timestamp int64  `json:"timestamp"`
	TTL       int64  `json:"ttl"`
	AuthToken string `json:"authToken"`
}

// NewCredential signs a credential for peerID, valid from ts for ttl
// (both truncated to whole seconds).
func NewCredential(secret, peerID string, ts time.Time, ttl time.Duration) Credential {
	c := Credential{Timestamp: ts.Unix(), TTL: int64(ttl / time.Second)}
	c.AuthToken = base64.StdEncoding.EncodeToString(credentialMAC(secret, peerID, c.Timestamp, c.TTL))
	return c
}

// Expiry is when the credential lapses.
func (c Credential) Expiry() time.Time {
	return time.Unix(c.Timestamp+c.TTL, 0)
}

func credentialMAC(secret, peerID string, ts, ttl int64) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	b := strconv.AppendInt(nil, ts, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, ttl, 10)
	b = append(b, ':')
	b = append(b, peerID...)
	m.Write(b)
	return m.Sum(nil)
}

// errCredential carries the text the server puts after "credential invalid: ",
// or msgCredExpired.
type errCredential string

func (e errCredential) Error() string { return string(e) }

// verifyCredential checks c for peerID and returns when it lapses. skew is how
// far in the future a timestamp may lie (clocks differ a little).
func verifyCredential(secret, peerID string, c Credential, now time.Time, skew time.Duration) (time.Time, error) {
	if c.TTL < int64(MinCredentialTTL/time.Second) || c.TTL > int64(MaxCredentialTTL/time.Second) {
		return time.Time{}, errCredential("ttl must be between 600 and 90000 seconds")
	}
	got, err := base64.StdEncoding.Strict().DecodeString(c.AuthToken)
	if err != nil || !hmac.Equal(got, credentialMAC(secret, peerID, c.Timestamp, c.TTL)) {
		return time.Time{}, errCredential("authToken does not match")
	}
	if time.Unix(c.Timestamp, 0).After(now.Add(skew)) {
		return time.Time{}, errCredential("timestamp is in the future")
	}
	exp := c.Expiry()
	if !exp.After(now) {
		return time.Time{}, errCredential(msgCredExpired)
	}
	return exp, nil
}

// parseCredential decodes a credential from its JSON text (URL query or
// CREDENTIAL payload). Fractional or missing numbers are refused.
func parseCredential(b []byte) (Credential, error) {
	var raw struct {
		Timestamp *int64  `json:"timestamp"`
		TTL       *int64  `json:"ttl"`
		AuthToken *string `json:"authToken"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.Timestamp == nil || raw.TTL == nil || raw.AuthToken == nil {
		return Credential{}, errCredential("malformed, want {timestamp, ttl, authToken}")
	}
	return Credential{Timestamp: *raw.Timestamp, TTL: *raw.TTL, AuthToken: *raw.AuthToken}, nil
}

// ValidID reports whether id is a peer id PeerJS accepts:
// ^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$ — alphanumeric runs joined by single
// space, underscore or hyphen.
func ValidID(id string) bool {
	if id == "" {
		return false
	}
	prevSep := true // so a leading separator is refused
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			prevSep = false
		case c == ' ' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// frame is a client frame as the server understands it.
type frame struct {
	typ     string
	dst     string // "" when absent, null or empty: all mean "no destination"
	payload json.RawMessage
}

var errFrame = errors.New("not a signaling frame")

// parseFrame decodes a frame received from a client the way the official
// server does: it must be a JSON object; "type" must be a string (anything
// else matches no handler and is dropped); "src" is ignored because the server
// sets it; keys are case-sensitive, the last duplicate wins. A non-string,
// non-null "dst" can reach no peer (ids are strings), so the frame is dropped
// too. The payload is kept (compacted) whatever its JSON type, null included.
func parseFrame(data []byte) (frame, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return frame{}, errFrame
	}
	var f frame
	if err := json.Unmarshal(obj["type"], &f.typ); err != nil || obj["type"][0] != '"' {
		return frame{}, errFrame
	}
	if d, ok := obj["dst"]; ok && string(d) != "null" {
		if d[0] != '"' {
			return frame{}, errFrame
		}
		if err := json.Unmarshal(d, &f.dst); err != nil {
			return frame{}, errFrame
		}
	}
	if p, ok := obj["payload"]; ok {
		var b bytes.Buffer
		if err := json.Compact(&b, p); err != nil {
			return frame{}, errFrame
		}
		f.payload = b.Bytes()
	}
	return f, nil
}

// appendMessage encodes a frame in the official server's field order
// (type, src, dst, payload), leaving out empty src/dst and absent payload as
// JSON.stringify leaves out undefined fields.
func appendMessage(b []byte, typ, src, dst string, payload json.RawMessage) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	if src != "" {
		b = append(b, `,"src":`...)
		b = appendJSONString(b, src)
	}
	if dst != "" {
		b = append(b, `,"dst":`...)
		b = appendJSONString(b, dst)
	}
	if payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}

func errorFrame(typ, msg string) []byte {
	p := appendJSONString([]byte(`{"msg":`), msg)
	p = append(p, '}')
	return appendMessage(nil, typ, "", "", p)
}

// appendJSONString quotes s as JSON.stringify does: only '"', '\\' and
// control characters are escaped; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
