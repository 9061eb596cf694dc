package controlplane

import (
	"slices"
	"strings"

	"github.com/pion/dtls/v3"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// srtpProfiles are offered in this order: AEAD-GCM first (about 3× cheaper
// per packet than AES-CM-HMAC-SHA1 with pion/srtp here, and browsers have
// it), the others as fallbacks.
var srtpProfiles = []dtls.SRTPProtectionProfile{
	dtls.SRTP_AEAD_AES_128_GCM,
	dtls.SRTP_AEAD_AES_256_GCM,
	dtls.SRTP_AES128_CM_HMAC_SHA1_80,
	dtls.SRTP_AES128_CM_HMAC_SHA1_32,
}

// newPeerConnection builds a PeerConnection for one of p's connections.
// me and ir carry the connection's codecs and interceptors (a media
// connection registers its own, so payload types can follow the app's);
// nil means none (a data connection).
func (s *Server) newPeerConnection(p *peer, me *webrtc.MediaEngine, ir *interceptor.Registry) (*webrtc.PeerConnection, error) {
	if me == nil {
		me = &webrtc.MediaEngine{}
	}
	if ir == nil {
		ir = &interceptor.Registry{}
	}
	var se webrtc.SettingEngine
	// gw often talks to peers on the same host (tests, a local viewer);
	// loopback candidates cost nothing elsewhere.
	se.SetIncludeLoopbackCandidate(true)
	se.SetSRTPProtectionProfiles(srtpProfiles...)
	se.LoggerFactory = s.pionLoggerFactory() // counts SRTP failures (mediametrics.go)
	if s.cfg.ICENet != nil {
		n, err := s.cfg.ICENet.Net()
		if err != nil {
			return nil, err
		}
		se.SetNet(n)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	servers := s.iceServersFor(p)
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, ICETransportPolicy: s.transportPolicy(servers)})
	if err == nil {
		s.watchDTLS(pc) // counts DTLS failures (mediametrics.go)
	}
	return pc, err
}

// iceServersFor: a peer created with turn gets every configured server,
// otherwise only the STUN ones.
func (s *Server) iceServersFor(p *peer) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, srv := range s.cfg.ICEServers {
		var urls []string
		for _, u := range srv.URLs {
			if p.turn || strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "stuns:") {
				urls = append(urls, u)
			}
		}
		if len(urls) == 0 {
			continue
		}
		out = append(out, webrtc.ICEServer{URLs: urls, Username: srv.Username, Credential: srv.Credential})
	}
	return out
}

// transportPolicy is the configured policy for a PeerConnection with these
// servers, except that relay needs a TURN server among them: a peer created
// with turn: false gets none, and gathers every candidate type.
func (s *Server) transportPolicy(servers []webrtc.ICEServer) webrtc.ICETransportPolicy {
	if s.cfg.ICETransportPolicy == ICETransportPolicyRelay &&
		slices.ContainsFunc(servers, func(srv webrtc.ICEServer) bool { return slices.ContainsFunc(srv.URLs, isTURNURL) }) {
		return webrtc.ICETransportPolicyRelay
	}
	return webrtc.ICETransportPolicyAll
}

// isTURN: the server relays (a turn: or turns: URL), not just STUN.
func (srv ICEServer) isTURN() bool { return slices.ContainsFunc(srv.URLs, isTURNURL) }

func isTURNURL(u string) bool { return strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") }
