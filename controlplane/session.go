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
