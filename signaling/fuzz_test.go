package signaling

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseFrame feeds arbitrary client frames to the server's parser: it
// must never panic, and what it accepts must re-encode (as the server
// forwards it) to valid JSON carrying the same type, dst and payload.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"OFFER","dst":"bob","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"}}}`,
		`{"type":"HEARTBEAT"}`,
		`{"type":"LEAVE"}`,
		`{"type":"CANDIDATE","dst":null,"payload":null}`,
		`{"type":"CREDENTIAL","payload":{"timestamp":1,"ttl":600,"authToken":"x"}}`,
		`{"type":1,"dst":"a"}`,
		`{"type":"OFFER","dst":5}`,
		`{"type":"OFFER","dst":"\u00e9\ud83d\ude00","payload":"\u2028"}`,
		`{"type":"A","type":"B","src":"x"}`,
		`[1,2,3]`, `null`, `"OFFER"`, `{`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseFrame(data)
		if err != nil {
			return
		}
		out := appendMessage(nil, fr.typ, "src", fr.dst, fr.payload)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out of %q: %s", data, out)
		}
		var back struct {
			Type    *string         `json:"type"`
			Src     string          `json:"src"`
			Dst     string          `json:"dst"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		if back.Type == nil || back.Src != "src" || back.Dst != fr.dst {
			t.Fatalf("%q → %s", data, out)
		}
		if (fr.payload == nil) != (back.Payload == nil) || (fr.payload != nil && !bytes.Equal(back.Payload, fr.payload)) {
			t.Fatalf("payload %s → %s", fr.payload, back.Payload)
		}
		// Credentials in a CREDENTIAL payload never panic either.
		_, _ = parseCredential(fr.payload)
	})
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "Ab9": true, "a b": true, "a_b-c d": true, "de9a1b8e-a9ea-4466-aea1-71f1815670bc": true,
		"": false, " a": false, "a ": false, "a  b": false, "a-_b": false, "a.b": false, "é": false, "a/b": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\n\t\r\b\f", "ü😀\u2028", "bad\xffutf8"} {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, b, err)
		}
		if want := string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD"))); back != want {
			t.Errorf("%q → %s → %q", s, b, back)
		}
	}
}
