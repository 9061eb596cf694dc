package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/controlplane/mediarelay"
)

// Request bodies of the media connection operations.
type addrBody struct {
	IPv4 *string `json:"ip_v4"`
	IPv6 *string `json:"ip_v6"`
	Port *int64  `json:"port"`
}

type redirectBody struct {
	Video     *addrBody `json:"video"`
	VideoRTCP *addrBody `json:"video_rtcp"`
	Audio     *addrBody `json:"audio"`
	AudioRTCP *addrBody `json:"audio_rtcp"`
}

type mediaParamsBody struct {
	BandWidth    *int64  `json:"band_width"`
	Codec        *string `json:"codec"`
	MediaID      *string `json:"media_id"`
	RTCPID       *string `json:"rtcp_id"`
	PayloadType  *int64  `json:"payload_type"`
	SamplingRate *int64  `json:"sampling_rate"`
}

type constraintsBody struct {
	Video       *bool            `json:"video"`
	VideoRecv   *bool            `json:"videoReceiveEnabled"`
	Audio       *bool            `json:"audio"`
	AudioRecv   *bool            `json:"audioReceiveEnabled"`
	VideoParams *mediaParamsBody `json:"video_params"`
	AudioParams *mediaParamsBody `json:"audio_params"`
	Metadata    json.RawMessage  `json:"metadata"`
}

type callOptions struct {
	PeerID      *string          `json:"peer_id"`
	Token       *string          `json:"token"`
	TargetID    *string          `json:"target_id"`
	Constraints *constraintsBody `json:"constraints"`
	Redirect    *redirectBody    `json:"redirect_params"`
}

type answerOptions struct {
	Constraints *constraintsBody `json:"constraints"`
	Redirect    *redirectBody    `json:"redirect_params"`
}

// kindPlan is what the app asked for one kind.
type kindPlan struct {
	send, recv      bool
	codec           mediarelay.Codec
	hasCodec        bool
	appPT           int // -1: none given
	bandwidth       int // kbit/s, 0: no cap
	mediaID, rtcpID string
	dst, rtcpDst    netip.AddrPort
}

type callPlan struct {
	kinds    [2]kindPlan
	metadata json.RawMessage // as given, or nil
}

// parseAddr validates a redirect address (prefix names it in errors).
func (s *Server) parseAddr(prefix string, a *addrBody) (netip.AddrPort, *apiError) {
	if a.Port == nil {
		return netip.AddrPort{}, badRequest(prefix+"port", "%sport field is not specified", prefix)
	}
	if err := intRange(prefix+"port", *a.Port, 1, 65535); err != nil {
		return netip.AddrPort{}, err
	}
	var addr netip.Addr
	switch {
	case a.IPv4 != nil && *a.IPv4 != "":
		v, err := netip.ParseAddr(*a.IPv4)
		if err != nil || !v.Unmap().Is4() {
			return netip.AddrPort{}, badRequest(prefix+"ip_v4", "%sip_v4 %s is not an IPv4 address", prefix, describe(*a.IPv4))
		}
		addr = v.Unmap()
	case a.IPv6 != nil && *a.IPv6 != "":
		v, err := netip.ParseAddr(*a.IPv6)
		if err != nil || !v.Is6() {
			return netip.AddrPort{}, badRequest(prefix+"ip_v6", "%sip_v6 %s is not an IPv6 address", prefix, describe(*a.IPv6))
		}
		addr = v.WithZone("")
	default:
		return netip.AddrPort{}, badRequest(prefix+"ip_v4", "%sip_v4 or %sip_v6 is required", prefix, prefix)
	}
	if !s.egressFamilyOK(addr) {
		return netip.AddrPort{}, badRequest(prefix+"ip_v4", "gw sends media from %s, which cannot reach %s", s.cfg.Dataplane.Egress().LocalAddr().Addr(), addr)
	}
	return netip.AddrPortFrom(addr, uint16(*a.Port)), nil
}

// parseConstraints validates constraints and redirect_params of a call or
// an answer. Nothing is looked up yet.
func (s *Server) parseConstraints(c *constraintsBody, r *redirectBody) (callPlan, *apiError) {
	var pl callPlan
	if c == nil {
		return pl, badRequest("constraints", "constraints field is not specified")
	}
	if r == nil {
		r = &redirectBody{}
	}
	specs := [2]struct {
		name          string
		send, recv    *bool
		params        *mediaParamsBody
		media, rtcpTo *addrBody
	}{
		{"video", c.Video, c.VideoRecv, c.VideoParams, r.Video, r.VideoRTCP},
		{"audio", c.Audio, c.AudioRecv, c.AudioParams, r.Audio, r.AudioRTCP},
	}
	some := false
	for k, sp := range specs {
		kp := &pl.kinds[k]
		kp.appPT = -1
		video := k == kindVideo
		if sp.send == nil {
			return pl, badRequest("constraints."+sp.name, "constraints.%s field is not specified", sp.name)
		}
		kp.send = *sp.send
		// Receiving is on unless turned off, as a browser answering a call
		// receives whatever it is sent.
		kp.recv = sp.recv == nil || *sp.recv
		some = some || kp.send || kp.recv
		pf := "constraints." + sp.name + "_params"
		p := sp.params
		if p == nil {
			if kp.send {
				return pl, badRequest(pf, "%s field is not specified (required when constraints.%s is true)", pf, sp.name)
			}
			p = &mediaParamsBody{}
		}
		if p.Codec != nil || kp.send {
			if err := requireString(pf+".codec", p.Codec); err != nil {
				return pl, err
			}
			codec, ok := mediarelay.Lookup(*p.Codec)
			if !ok || codec.Video != video {
				return pl, badRequest(pf+".codec", "%s codec %s is not supported; use one of %s", sp.name, describe(*p.Codec), mediarelay.Names(video))
			}
			kp.codec, kp.hasCodec = codec, true
		}
		if kp.send {
			if err := requireString(pf+".media_id", p.MediaID); err != nil {
				return pl, err
			}
			kp.mediaID = *p.MediaID
		}
		if p.RTCPID != nil {
			if err := requireString(pf+".rtcp_id", p.RTCPID); err != nil {
				return pl, err
			}
			if kp.send || kp.recv {
				kp.rtcpID = *p.RTCPID
			}
		}
		if p.PayloadType != nil {
			if !mediarelay.ValidPT(int(*p.PayloadType)) || *p.PayloadType != int64(int(*p.PayloadType)) {
				return pl, badRequest(pf+".payload_type", "%s.payload_type must be between 0 and 127, got %d", pf, *p.PayloadType)
			}
			kp.appPT = int(*p.PayloadType)
		}
		if p.SamplingRate != nil && kp.hasCodec {
			if *p.SamplingRate <= 0 || *p.SamplingRate > 1<<31 {
				return pl, badRequest(pf+".sampling_rate", "%s.sampling_rate must be a positive number of Hz, got %d", pf, *p.SamplingRate)
			}
			if err := kp.codec.CheckRate(uint32(*p.SamplingRate)); err != nil {
				return pl, badRequest(pf+".sampling_rate", "%s.sampling_rate: %v", pf, err)
			}
		}
		if p.BandWidth != nil {
			if err := intRange(pf+".band_width", *p.BandWidth, 0, 1<<31-1); err != nil {
				return pl, err
			}
			kp.bandwidth = int(*p.BandWidth)
		}
		var aerr *apiError
		if sp.media != nil {
			if kp.dst, aerr = s.parseAddr("redirect_params."+sp.name+".", sp.media); aerr != nil {
				return pl, aerr
			}
		}
		if sp.rtcpTo != nil {
			if kp.rtcpDst, aerr = s.parseAddr("redirect_params."+sp.name+"_rtcp.", sp.rtcpTo); aerr != nil {
				return pl, aerr
			}
		}
	}
	if !some {
		return pl, badRequest("constraints", "the connection would carry no media: video, audio, videoReceiveEnabled and audioReceiveEnabled are all false")
	}
	if m := bytes.TrimSpace(c.Metadata); len(m) > 0 && string(m) != "null" {
		if m[0] != '{' {
			return pl, badRequest("constraints.metadata", "constraints.metadata must be a JSON object")
		}
		pl.metadata = m
	}
	return pl, nil
}

// objectMetadata is metadata as the status shows it: a JSON object ({} for
// none; a PeerJS peer's non-object metadata as {"value": …}).
func objectMetadata(raw json.RawMessage) json.RawMessage {
	m := bytes.TrimSpace(raw)
	switch {
	case len(m) == 0 || string(m) == "null" || !json.Valid(m):
		return json.RawMessage(`{}`)
	case m[0] == '{':
		return m
	default:
		b, _ := json.Marshal(map[string]json.RawMessage{"value": m})
		return b
	}
}

// ids returns the media and rtcp ids a plan names, and the fields to blame.
func (pl *callPlan) ids() (media, rtcp, fields [2]string) {
	for k, kp := range pl.kinds {
		if kp.send {
			media[k] = kp.mediaID
		}
		rtcp[k] = kp.rtcpID
		fields[k] = "constraints." + kindWord(k == kindVideo) + "_params"
	}
	return
}

// abort tears down a connection that never became visible to the app.
func (mc *mediaConn) abort() {
	mc.mu.Lock()
	mc.setClosedLocked()
	mc.mu.Unlock()
	if mc.pc != nil {
		_ = mc.pc.Close()
	}
	mc.loops.Wait()
}

// attach makes the connection use its lease: the media ports feed its
// tracks, the rtcp ports its remote. False if it closed meanwhile. Under
// mc.mu, so that close, which detaches, sees all of it or none.
func (mc *mediaConn) attach(l *lease) bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.closed {
		return false
	}
	mc.lease = l
	for _, k := range mc.send {
		if k == nil {
			continue
		}
		if k.media != nil && k.track != nil {
			k.media.fan.SetClockRate(k.track.Codec().ClockRate)
			k.media.fan.Add(k.track)
		}
		if k.rtcp != nil {
			mc.s.media.feed(k.rtcp, k, true)
		}
	}
	return true
}

// startSenderLoops reads each sender's RTCP (see senderRTCPLoop).
func (mc *mediaConn) startSenderLoops(pl *callPlan) {
	egress := mc.s.cfg.Dataplane.Egress()
	for k, sk := range mc.send {
		if sk != nil && sk.sender != nil {
			dst := pl.kinds[k].rtcpDst
			mc.startLoop(func() { mc.senderRTCPLoop(sk, dst, egress) })
		}
	}
}

func senderSSRC(sender *webrtc.RTPSender) uint32 {
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		return uint32(enc[0].SSRC)
	}
	return 0
}

// POST /media/connections
func (s *Server) createMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	var o callOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	p, target, aerr := s.caller(o.PeerID, o.Token, o.TargetID)
	if aerr != nil {
		return aerr
	}
	pl, aerr := s.parseConstraints(o.Constraints, o.Redirect)
	if aerr != nil {
		return aerr
	}
	mediaIDs, rtcpIDs, fields := pl.ids()
	l, mp, rp, aerr := s.media.acquire(mediaIDs, rtcpIDs, fields)
	if aerr != nil {
		return aerr
	}
	mc := &mediaConn{
		s: s, p: p, id: "mc-" + uuid.NewString(), pjID: newPeerJSConnectionID("mc_"), remote: target,
		outgoing: true, metadata: objectMetadata(pl.metadata), events: newEventQueue(), dcClosed: make(chan struct{}),
		created: time.Now(), done: make(chan struct{}),
	}
	offerSDP, err := s.startCall(mc, &pl, mp, rp)
	if err != nil {
		mc.abort()
		s.media.giveBack(l)
		return badRequest("constraints", "cannot start the call: %v", err)
	}
	// Registered here before at the peer: closing the peer closes what it
	// holds, and close then finds the connection to remove.
	s.media.addConn(mc)
	if !p.addConn(mc.pjID, mc) {
		s.media.removeConn(mc)
		mc.abort()
		s.media.giveBack(l)
		return notFound("peer_id", "peer %s is closing", describe(p.id))
	}
	if !mc.attach(l) {
		// The peer closed it meanwhile; the app sees its CLOSE.
		s.media.giveBack(l)
	}
	mc.startSenderLoops(&pl)
	text, err := mungeSDP(offerSDP, [2]int{pl.kinds[0].bandwidth, pl.kinds[1].bandwidth}, nil)
	if err == nil {
		err = mc.sess.sendDescription("OFFER", pjOffer{
			SDP:  webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: text},
			Type: "media", ConnectionID: mc.pjID, Metadata: pl.metadata,
		})
	}
	if err != nil {
		mc.closeAsync("cannot send the offer: "+err.Error(), true)
	}
	s.log.Info("media call", "connection", mc.id, "peer", p.id, "target", mc.remote, "peerjs_id", mc.pjID)
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{
		"command_type": cmdPeersCall,
		"params":       map[string]string{"media_connection_id": mc.id},
	})
	return nil
}

// startCall builds an outgoing call's PeerConnection up to its local
// offer. The MediaEngine holds only the app's codec for a kind it sends,
// under the app's payload type when SDP can bind it, so that what the app
// sends needs no rewriting; a kind only received offers every codec.
func (s *Server) startCall(mc *mediaConn, pl *callPlan, mp [2]*mediaPort, rp [2]*rtcpPort) (string, error) {
	var lists [2][]mediarelay.Codec
	for k, kp := range pl.kinds {
		switch {
		case kp.hasCodec && (kp.send || kp.recv):
			c := kp.codec
			c.PT = c.WirePT(kp.appPT)
			lists[k] = []mediarelay.Codec{c}
		case kp.recv:
			lists[k] = mediarelay.Defaults(k == kindVideo)
		}
	}
	pc, err := s.newMediaPC(mc, lists[kindVideo], lists[kindAudio], pl.kinds[kindVideo].recv || pl.kinds[kindAudio].recv)
	if err != nil {
		return "", err
	}
	mc.pc = pc
	// PeerJS calls carry a data channel; its closing is the hang-up.
	ordered := false
	dc, err := pc.CreateDataChannel("undefined", &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return "", err
	}
	mc.watchPeerJSChannel(dc)
	for k, kp := range pl.kinds {
		video := k == kindVideo
		mc.recv[k] = recvKind{on: kp.recv, dst: kp.dst, rtcpDst: kp.rtcpDst, appPT: kp.appPT}
		typ := webrtc.RTPCodecTypeAudio
		if video {
			typ = webrtc.RTPCodecTypeVideo
		}
		switch {
		case kp.send:
			track, err := webrtc.NewTrackLocalStaticRTP(capability(lists[k][0]), kindWord(video), mc.id)
			if err != nil {
				return "", err
			}
			tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: direction(true, kp.recv)})
			if err != nil {
				return "", err
			}
			mc.send[k] = &sendKind{c: mc, video: video, media: mp[k], rtcp: rp[k], track: track, sender: tr.Sender(), ssrc: senderSSRC(tr.Sender())}
		case kp.recv:
			if _, err := pc.AddTransceiverFromKind(typ, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return "", err
			}
			if rp[k] != nil {
				mc.send[k] = &sendKind{c: mc, video: video, rtcp: rp[k]}
			}
		}
	}
	mc.sess = mc.p.newSession("media", mc.pjID, mc.remote, pc)
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	// The SDP as created: pion's LocalDescription would add the candidates
	// gathered so far, which the session trickles anyway.
	return offer.SDP, pc.SetLocalDescription(offer)
}

// acceptCall takes a remote's media OFFER: the connection waits for the
// app's answer, and the peer fires CALL. Its PeerConnection exists from now
// on so the remote's candidates can be held by its session; it offers every
// codec gw supports, since the caller's payload types rule the answer.
func (s *Server) acceptCall(p *peer, src string, o pjOffer) {
	log := s.log.With("peer", p.id, "src", src, "peerjs_id", o.ConnectionID)
	if o.SDP.Type != webrtc.SDPTypeOffer || o.SDP.SDP == "" {
		log.Warn("media offer without an SDP offer ignored")
		return
	}
	offered, err := parseOffer(o.SDP.SDP)
	if err != nil {
		log.Warn("media offer with a malformed SDP ignored", "err", err)
		return
	}
	remoteSends := false
	for _, m := range offered {
		remoteSends = remoteSends || m.remoteSends()
	}
	mc := &mediaConn{
		s: s, p: p, id: "mc-" + uuid.NewString(), pjID: o.ConnectionID, remote: src,
		metadata: objectMetadata(o.Metadata), events: newEventQueue(), offer: o.SDP, dcClosed: make(chan struct{}),
		created: time.Now(), done: make(chan struct{}),
	}
	pc, err := s.newMediaPC(mc, mediarelay.Defaults(true), mediarelay.Defaults(false), remoteSends)
	if err != nil {
		log.Error("incoming call dropped: cannot create a peer connection", "err", err)
		return
	}
	mc.pc = pc
	pc.OnDataChannel(mc.watchPeerJSChannel)
	mc.sess = p.newSession("media", o.ConnectionID, src, pc)
	s.media.addConn(mc)
	if !p.addConn(o.ConnectionID, mc) {
		s.media.removeConn(mc)
		mc.abort()
		return
	}
	p.events.push(peerEvent{Event: "CALL", CallParams: &callParams{MediaConnectionID: mc.id}})
	log.Info("incoming call", "connection", mc.id)
}

// POST /media/connections/{media_connection_id}/answer
func (s *Server) answerMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	mc, aerr := s.lookupConn(ctx)
	if aerr != nil {
		return aerr
	}
	var o answerOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	pl, aerr := s.parseConstraints(o.Constraints, o.Redirect)
	if aerr != nil {
		return aerr
	}
	if mc.outgoing {
		return forbidden("media_connection_id", "media connection %s is a call this peer made; only incoming calls are answered", describe(mc.id))
	}
	offered, err := parseOffer(mc.offer.SDP)
	if err != nil {
		return badRequest("media_connection_id", "the caller's offer is malformed: %v", err)
	}
	// What can be done depends on what the caller offered: a kind it did
	// not offer, or does not want to receive, is not sent (answer gives no
	// id for it); one it does not send is not received.
	var prefs [2][]webrtc.RTPCodecParameters
	for k := range pl.kinds {
		kp := &pl.kinds[k]
		sec := firstOfKind(offered, k == kindVideo)
		if sec == nil {
			kp.send, kp.recv = false, false
			continue
		}
		kp.send = kp.send && sec.remoteReceives()
		kp.recv = kp.recv && sec.remoteSends()
		if kp.hasCodec && (kp.send || kp.recv) {
			// One codec, so that both sides send the same payload type.
			if prefs[k] = matchOffered(*sec, kp.codec); len(prefs[k]) > 1 {
				prefs[k] = prefs[k][:1]
			} else if len(prefs[k]) == 0 {
				f := "constraints." + kindWord(k == kindVideo) + "_params.codec"
				return badRequest(f, "the caller offers %s for %s, not %s", offeredNames(*sec), kindWord(k == kindVideo), kp.codec.Name)
			}
		}
	}
	mc.mu.Lock()
	switch {
	case mc.closed:
		mc.mu.Unlock()
		return notFound("media_connection_id", "no media connection %s", describe(mc.id))
	case mc.answered:
		mc.mu.Unlock()
		return forbidden("media_connection_id", "media connection %s is already answered", describe(mc.id))
	}
	mc.answered = true
	mc.mu.Unlock()
	mediaIDs, rtcpIDs, fields := pl.ids()
	l, mp, rp, aerr := s.media.acquire(mediaIDs, rtcpIDs, fields)
	if aerr != nil {
		mc.mu.Lock()
		mc.answered = false
		mc.mu.Unlock()
		return aerr
	}
	if err := s.answerCall(mc, &pl, prefs, mp, rp, l); err != nil {
		s.media.giveBack(l)
		mc.fail("answering failed: " + err.Error())
		return badRequest("media_connection_id", "answering media connection %s failed: %v", describe(mc.id), err)
	}
	params := map[string]string{}
	for k, key := range [2]string{"video_id", "audio_id"} {
		if mc.send[k] != nil && mc.send[k].media != nil {
			params[key] = mc.send[k].media.id
		}
	}
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{"command_type": cmdMediaConnAnswer, "params": params})
	return nil
}

func firstOfKind(offered []offeredMedia, video bool) *offeredMedia {
	for i := range offered {
		if offered[i].video == video {
			return &offered[i]
		}
	}
	return nil
}

// answerCall negotiates an incoming call as the app asked: each kind's
// codec restricted to the app's (in the caller's payload types), the app's
// track added where it sends, and the directions sent in the answer set to
// what the app wants (pion's own answer would receive whenever the caller
// sends).
func (s *Server) answerCall(mc *mediaConn, pl *callPlan, prefs [2][]webrtc.RTPCodecParameters, mp [2]*mediaPort, rp [2]*rtcpPort, l *lease) error {
	pc := mc.pc
	if err := mc.sess.setRemoteDescription(mc.offer); err != nil {
		return err
	}
	dirs := map[string]webrtc.RTPTransceiverDirection{}
	var seen [2]bool
	var send [2]*sendKind
	for _, tr := range pc.GetTransceivers() {
		k := kindAudio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			k = kindVideo
		}
		if seen[k] {
			// PeerJS sends one stream: further sections of a kind are
			// refused rather than delivered to the same address.
			dirs[tr.Mid()] = webrtc.RTPTransceiverDirectionInactive
			continue
		}
		seen[k] = true
		kp := pl.kinds[k]
		video := k == kindVideo
		if len(prefs[k]) > 0 {
			if err := tr.SetCodecPreferences(prefs[k]); err != nil {
				return fmt.Errorf("%s codec %s: %w", kindWord(video), kp.codec.Name, err)
			}
		}
		switch {
		case kp.send:
			track, err := webrtc.NewTrackLocalStaticRTP(prefs[k][0].RTPCodecCapability, kindWord(video), mc.id)
			if err != nil {
				return err
			}
			sender, err := pc.AddTrack(track)
			if err != nil {
				return err
			}
			send[k] = &sendKind{c: mc, video: video, media: mp[k], rtcp: rp[k], track: track, sender: sender, ssrc: senderSSRC(sender)}
		case rp[k] != nil:
			send[k] = &sendKind{c: mc, video: video, rtcp: rp[k]}
		}
		dirs[tr.Mid()] = direction(kp.send, kp.recv)
	}
	mc.mu.Lock()
	for k, kp := range pl.kinds {
		mc.recv[k] = recvKind{on: kp.recv, dst: kp.dst, rtcpDst: kp.rtcpDst, appPT: kp.appPT}
	}
	mc.send = send
	mc.mu.Unlock()
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	text, err := mungeSDP(answer.SDP, [2]int{pl.kinds[0].bandwidth, pl.kinds[1].bandwidth}, dirs)
	if err != nil {
		return err
	}
	if !mc.attach(l) {
		return fmt.Errorf("the connection closed meanwhile")
	}
	mc.startSenderLoops(pl)
	if err := mc.sess.sendDescription("ANSWER", pjAnswer{
		SDP:  webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: text},
		Type: "media", ConnectionID: mc.pjID,
	}); err != nil {
		// The lease is the connection's now: closing releases it.
		mc.closeAsync("cannot send the answer: "+err.Error(), true)
	}
	s.log.Info("media answer", "connection", mc.id, "peer", mc.p.id, "remote", mc.remote)
	return nil
}
