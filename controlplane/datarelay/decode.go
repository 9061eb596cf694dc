package datarelay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gw-project/gw/controlplane/binarypack"
)

// Decoder turns one connection's received messages into datagrams. It is
// not safe for concurrent use: a data channel delivers messages one at a
// time.
type Decoder struct {
	ser   Serialization
	reasm binarypack.Reassembler
	buf   []byte
}

// NewDecoder returns a Decoder for ser.
func NewDecoder(ser Serialization) *Decoder { return &Decoder{ser: ser} }

// ErrNotText: a value that has no datagram form (a binarypack float that is
// NaN or infinite inside a structure JSON cannot hold).
var ErrNotText = errors.New("datarelay: value has no JSON form")

// Decode takes one message (isString: it came as a text frame) and returns
// the datagram it completes: nil while chunks of a binary message are
// missing. closeReq reports PeerJS's close request. The datagram may alias
// msg and the Decoder's buffer: it is valid until the next Decode, or until
// msg changes. An error means the message is dropped; the connection can
// go on.
func (d *Decoder) Decode(msg []byte, isString bool) (datagram []byte, closeReq bool, err error) {
	switch d.ser {
	case Binary, BinaryUTF8:
		return d.decodePacked(msg)
	case JSON:
		if isCloseJSON(msg) {
			return nil, true, nil
		}
		if s, ok := appendJSONStringValue(d.buf[:0], msg); ok {
			if s == nil {
				s = []byte{} // "": an empty datagram, not "nothing yet"
			}
			d.keep(s)
			return s, false, nil
		}
		return msg, false, nil
	default:
		return msg, false, nil
	}
}

func (d *Decoder) decodePacked(msg []byte) ([]byte, bool, error) {
	packed, closeReq, err := d.reasm.Add(msg)
	if err != nil && !errors.Is(err, binarypack.ErrOverflow) {
		return nil, false, err
	}
	// On overflow older incomplete messages were dropped; msg itself was
	// kept, and packed is as usual. The caller counts the loss.
	if closeReq || packed == nil {
		return nil, closeReq, err
	}
	if b, ok := binarypack.UnpackBinary(packed); ok {
		return b, false, err
	}
	v, uerr := binarypack.Unpack(packed)
	if uerr != nil {
		return nil, false, uerr
	}
	switch v := v.(type) {
	case string:
		return []byte(v), false, err
	case []byte:
		return v, false, err
	}
	out, jerr := json.Marshal(jsonable(v))
	if jerr != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrNotText, jerr)
	}
	return out, false, err
}

// jsonable replaces what encoding/json would render unlike JavaScript's
// JSON.stringify: undefined becomes null.
func jsonable(v any) any {
	switch v := v.(type) {
	case binarypack.Undefined:
		return nil
	case []any:
		for i := range v {
			v[i] = jsonable(v[i])
		}
	case map[string]any:
		for k, x := range v {
			v[k] = jsonable(x)
		}
	}
	return v
}

// isCloseJSON reports whether msg is PeerJS's close request in JSON:
// an object whose __peerData.type is "close".
func isCloseJSON(msg []byte) bool {
	if jsonStart(msg) != '{' || !bytes.Contains(msg, []byte(`"__peerData"`)) {
		return false
	}
	var m struct {
		PeerData struct {
			Type string `json:"type"`
		} `json:"__peerData"`
	}
	return json.Unmarshal(msg, &m) == nil && m.PeerData.Type == "close"
}

func (d *Decoder) keep(b []byte) {
	if cap(b) <= maxKeep {
		d.buf = b[:0]
	} else {
		d.buf = nil
	}
}
