package controlplane

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/gw-project/gw/signaling"
)

// PeerJS payloads of OFFER, ANSWER and CANDIDATE messages (PEERJS.md).
type pjOffer struct {
	SDP           webrtc.SessionDescription `json:"sdp"`
	Type          string                    `json:"type"` // "media" or "data"
	ConnectionID  string                    `json:"connectionId"`
	Metadata      json.RawMessage           `json:"metadata,omitempty"`
	Label         string                    `json:"label,omitempty"`
	Reliable      *bool                     `json:"reliable,omitempty"`
	Serialization string                    `json:"serialization,omitempty"`
	// DcInit is a gw extension: the RTCDataChannelInit of a negotiated data
	// channel, which the answering side must make too.
	DcInit json.RawMessage `json:"dcInit,omitempty"`
}

type pjAnswer struct {
	SDP          webrtc.SessionDescription `json:"sdp"`
	Type         string                    `json:"type"`
	ConnectionID string                    `json:"connectionId"`
}

type pjCandidate struct {
	Candidate    webrtc.ICECandidateInit `json:"candidate"`
	Type         string                  `json:"type"`
	ConnectionID string                  `json:"connectionId"`
}

// session is the signaling side of one PeerJS connection (a media or data
// connection): its PeerConnection, and the candidates it must hold back.
// Local candidates wait until the OFFER or ANSWER that they belong to has
// been sent; remote ones until the remote description is set — sent or
// applied early, browsers report errors.
type session struct {
	p      *peer
	id     string // PeerJS connectionId
	kind   string // "media" or "data"
	remote string // remote peer id
	pc     *webrtc.PeerConnection

	// Two locks: pion gathers candidates on its own goroutines, which must
	// not wait on a SetRemoteDescription in progress.
	localMu    sync.Mutex
	descSent   bool
	heldLocal  []webrtc.ICECandidateInit
	remoteMu   sync.Mutex
	remoteSet  bool
	heldRemote []webrtc.ICECandidateInit
}

// newSession ties pc to the peer's signaling under connectionId id.
func (p *peer) newSession(kind, id, remote string, pc *webrtc.PeerConnection) *session {
	s := &session{p: p, id: id, kind: kind, remote: remote, pc: pc}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return // PeerJS never signals end-of-candidates
		}
		s.localMu.Lock()
		defer s.localMu.Unlock()
		init := c.ToJSON()
		if !s.descSent {
			s.heldLocal = append(s.heldLocal, init)
			return
		}
		s.sendCandidate(init)
	})
	return s
}

// sendDescription sends the OFFER or ANSWER message with payload, then the
// candidates gathered meanwhile, in order.
func (s *session) sendDescription(msgType string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	s.localMu.Lock()
	defer s.localMu.Unlock()
	if err := s.p.client.Send(signaling.Message{Type: msgType, Dst: s.remote, Payload: raw}); err != nil {
		return fmt.Errorf("sending %s: %w", msgType, err)
	}
	s.descSent = true
	for _, c := range s.heldLocal {
		s.sendCandidate(c)
	}
	s.heldLocal = nil
	return nil
}

// sendCandidate sends one local candidate; s.localMu is held.
func (s *session) sendCandidate(c webrtc.ICECandidateInit) {
	raw, err := json.Marshal(pjCandidate{Candidate: c, Type: s.kind, ConnectionID: s.id})
	if err != nil {
		return
	}
	if err := s.p.client.Send(signaling.Message{Type: "CANDIDATE", Dst: s.remote, Payload: raw}); err != nil {
		s.p.s.log.Debug("candidate not sent", "peer", s.p.id, "connection", s.id, "err", err)
	}
}

// setRemoteDescription applies the remote's offer or answer, then the
// candidates that came before it.
func (s *session) setRemoteDescription(d webrtc.SessionDescription) error {
	s.remoteMu.Lock()
	defer s.remoteMu.Unlock()
	if err := s.pc.SetRemoteDescription(d); err != nil {
		return err
	}
	s.remoteSet = true
	for _, c := range s.heldRemote {
		if err := s.pc.AddICECandidate(c); err != nil {
			s.p.s.log.Debug("remote candidate refused", "connection", s.id, "err", err)
		}
	}
	s.heldRemote = nil
	return nil
}

// addRemoteCandidate applies or holds a candidate from the remote.
func (s *session) addRemoteCandidate(c webrtc.ICECandidateInit) {
	s.remoteMu.Lock()
	defer s.remoteMu.Unlock()
	if !s.remoteSet {
		s.heldRemote = append(s.heldRemote, c)
		return
	}
	if err := s.pc.AddICECandidate(c); err != nil {
		s.p.s.log.Debug("remote candidate refused", "connection", s.id, "err", err)
	}
}

// connection is a media or data connection as its peer's signaling sees it.
type connection interface {
	// signaling is the connection's session.
	signaling() *session
	// handleAnswer applies the remote's ANSWER to an offer gw made.
	handleAnswer(webrtc.SessionDescription) error
	// fail fires ERROR with msg, then closes.
	fail(msg string)
	// close tears the connection down and fires its CLOSE; reason is
	// logged. Idempotent; never waits on the peer's signaling client.
	close(reason string)
}

// addConn registers c under its PeerJS connectionId; false once the peer
// is closing.
func (p *peer) addConn(id string, c connection) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.conns == nil {
		p.conns = map[string]connection{}
	}
	p.conns[id] = c
	return true
}

// removeConn forgets c if it is still the connection under id.
func (p *peer) removeConn(id string, c connection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[id] == c {
		delete(p.conns, id)
	}
}

func (p *peer) conn(id string) connection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[id]
}

// connsWith lists the connections to remote (all of them if remote is "").
func (p *peer) connsWith(remote string) []connection {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []connection
	for _, c := range p.conns {
		if remote == "" || c.signaling().remote == remote {
			out = append(out, c)
		}
	}
	return out
}

// HandleMessage receives what the signaling server relays to this peer, in
// order, on the signaling client's goroutine.
func (p *peer) HandleMessage(m signaling.Message) {
	<-p.ready
	log := p.s.log.With("peer", p.id, "type", m.Type, "src", m.Src)
	switch m.Type {
	case signaling.TypeOffer:
		var o pjOffer
		if err := json.Unmarshal(m.Payload, &o); err != nil || o.ConnectionID == "" {
			log.Warn("malformed offer ignored", "err", err)
			return
		}
		// PeerJS does not renegotiate: a second offer replaces the connection.
		if old := p.conn(o.ConnectionID); old != nil {
			old.close("replaced by a new offer")
		}
		switch o.Type {
		case "media":
			p.s.acceptCall(p, m.Src, o)
		case "data":
			p.s.acceptConnect(p, m.Src, o)
		default:
			log.Warn("offer of unknown connection type ignored", "connection_type", o.Type)
		}
	case signaling.TypeAnswer:
		var a pjAnswer
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			log.Warn("malformed answer ignored", "err", err)
			return
		}
		c := p.conn(a.ConnectionID)
		if c == nil {
			log.Debug("answer for an unknown connection", "connection", a.ConnectionID)
			return
		}
		if err := c.handleAnswer(a.SDP); err != nil {
			c.fail("the remote's answer was refused: " + err.Error())
		}
	case signaling.TypeCandidate:
		var cand pjCandidate
		if err := json.Unmarshal(m.Payload, &cand); err != nil {
			log.Warn("malformed candidate ignored", "err", err)
			return
		}
		if c := p.conn(cand.ConnectionID); c != nil {
			c.signaling().addRemoteCandidate(cand.Candidate)
		}
	case signaling.TypeLeave:
		for _, c := range p.connsWith(m.Src) {
			c.close("the remote peer left")
		}
	case signaling.TypeExpire:
		// Our offer waited at the server for a peer that never came.
		for _, c := range p.connsWith(m.Src) {
			c.fail("peer " + m.Src + " is not connected to the signaling server")
		}
	case signaling.TypeError:
		// The server refused something without dropping the peer: a
		// credential renewal (PUT .../credential answered before the
		// server's verdict). The app learns it here; the old credential
		// stays in use.
		msg := signaling.ErrorText(m)
		log.Warn("the signaling server refused a request", "error", msg)
		p.events.push(peerEvent{Event: "ERROR", ErrorMessage: "SERVER_ERROR"})
	default:
		log.Info("signaling message", "payload", string(m.Payload))
	}
}
