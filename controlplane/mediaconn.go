package controlplane

import (
	"encoding/json"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/controlplane/mediarelay"
	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/bufpool"
	"github.com/gw-project/gw/metrics/rtpstats"
)

// mediaConn is a MediaConnection: one PeerJS media call, its
// PeerConnection, and the packet paths between it and the app.
//
// Lifecycle: an outgoing call is negotiated at once; an incoming one waits
// for POST .../answer. READY fires when the PeerConnection connects, STREAM
// when the first packet of each remote track arrives, CLOSE when either side
// ends it (DELETE here; on the remote's side DTLS close_notify, the PeerJS
// data channel closing, or ICE failing), ERROR before CLOSE when something
// failed. Closing releases the ports only this connection used.
type mediaConn struct {
	s        *Server
	p        *peer
	id       string // mc-…
	pjID     string // PeerJS connectionId
	remote   string
	outgoing bool
	metadata json.RawMessage // a JSON object
	events   *eventQueue
	pc       *webrtc.PeerConnection
	sess     *session
	offer    webrtc.SessionDescription // incoming: the caller's offer

	// stats is the connection's stats interceptor (RTT, loss, counts), for
	// the metrics to read; sent counts what its senders send (see
	// mediametrics.go).
	stats atomic.Pointer[stats.Getter]
	sent  *sendCounter
	// created is when the call was made or the remote's offer came, for
	// the setup time; done is closed when the connection closes.
	created time.Time
	done    chan struct{}
	// pjdc is the PeerJS data channel riding along with the call;
	// dcClosed is closed when it closes.
	pjdc     atomic.Pointer[webrtc.DataChannel]
	dcOnce   sync.Once
	dcClosed chan struct{}

	mu       sync.Mutex
	answered bool // incoming: an answer was started
	ready    bool // READY fired
	closed   bool
	// wasConnected: the PeerConnection has been connected (setup timed).
	wasConnected bool
	lease        *lease
	send         [2]*sendKind // by kindVideo / kindAudio; nil: no app RTP nor RTCP to send
	recv         [2]recvKind
	loops        sync.WaitGroup // read loops, waited for by close
}

// sendKind is the send side of one kind: the app's RTP from a media port
// through a pion track to the remote, and the app's RTCP with it.
type sendKind struct {
	c      *mediaConn
	video  bool
	media  *mediaPort // nil when only the app's RTCP is relayed
	rtcp   *rtcpPort
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	ssrc   uint32 // what pion sends the app's stream under
}

// recvKind is the receive side of one kind: where the remote's RTP and
// RTCP go, and with which payload type.
type recvKind struct {
	on      bool // the app wants this kind
	dst     netip.AddrPort
	rtcpDst netip.AddrPort
	appPT   int // payload type to deliver with; -1 keeps the remote's
	// ssrc is the remote track's SSRC once it arrived (PLI names it).
	ssrc atomic.Uint32
	// rx measures the remote track (RFC 3550 jitter and loss); set when
	// it arrives, fed by its rtpLoop.
	rx atomic.Pointer[rtpstats.Receiver]
}

// Events of GET /media/connections/{id}/events.
type mediaEvent struct {
	Event         string         `json:"event"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
	ErrorMessage  string         `json:"error_message,omitempty"`
}

type streamOptions struct {
	IsVideo           bool         `json:"is_video"`
	MediaConnectionID string       `json:"media_connection_id"`
	StreamID          string       `json:"stream_id"`
	StreamParams      portResponse `json:"stream_params"`
}

// toRemote relays one compound RTCP packet from the app (b is the rtcp
// port's scratch copy) to the remote, naming pion's SSRC for the app's.
func (k *sendKind) toRemote(b []byte) {
	if k.media != nil && k.ssrc != 0 {
		if app := k.media.fan.SSRC(); app != 0 {
			mediarelay.RewriteSSRC(b, app, k.ssrc)
		}
	}
	// pion takes parsed packets only; RTCP is a few packets a second.
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	_ = k.c.pc.WriteRTCP(pkts)
}

// markReadyLocked fires READY once; mc.mu is held.
func (mc *mediaConn) markReadyLocked() {
	if mc.ready || mc.closed {
		return
	}
	mc.ready = true
	mc.events.push(mediaEvent{Event: "READY"})
	mc.s.log.Info("media connection ready", "connection", mc.id, "peer", mc.p.id, "remote", mc.remote)
}

func (mc *mediaConn) markReady() {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.markReadyLocked()
}

// signaling implements connection.
func (mc *mediaConn) signaling() *session { return mc.sess }

// handleAnswer implements connection: the callee's answer to our call.
func (mc *mediaConn) handleAnswer(d webrtc.SessionDescription) error {
	if !mc.outgoing {
		return errUnexpectedAnswer
	}
	return mc.sess.setRemoteDescription(d)
}

// fail implements connection: ERROR, then CLOSE.
func (mc *mediaConn) fail(msg string) {
	mc.mu.Lock()
	if mc.closed {
		mc.mu.Unlock()
		return
	}
	mc.events.push(mediaEvent{Event: "ERROR", ErrorMessage: msg})
	mc.mu.Unlock()
	mc.s.log.Warn("media connection failed", "connection", mc.id, "peer", mc.p.id, "err", msg)
	mc.close(msg)
}

// closeAsync closes from a pion callback, which must not wait for the
// PeerConnection it runs on.
func (mc *mediaConn) closeAsync(reason string, failed bool) {
	mc.s.background(func() {
		if failed {
			mc.fail(reason)
		} else {
			mc.close(reason)
		}
	})
}

// close implements connection. Idempotent.
func (mc *mediaConn) close(reason string) {
	mc.mu.Lock()
	if mc.closed {
		mc.mu.Unlock()
		return
	}
	mc.setClosedLocked()
	send := mc.send
	l := mc.lease
	mc.mu.Unlock()

	mc.p.removeConn(mc.pjID, mc)
	// Stop feeding the connection before closing it.
	for _, k := range send {
		if k == nil {
			continue
		}
		if k.media != nil && k.track != nil {
			k.media.fan.Remove(k.track)
		}
		if k.rtcp != nil {
			mc.s.media.feed(k.rtcp, k, false)
		}
	}
	if mc.pc != nil {
		mc.closePeerJSChannel()
		if err := mc.pc.Close(); err != nil {
			mc.s.log.Debug("closing peer connection", "connection", mc.id, "err", err)
		}
	}
	mc.loops.Wait()
	for _, port := range mc.s.media.release(l) {
		_ = port.Close()
	}
	// The queue is retired before the connection leaves the registry, so a
	// poll always finds one or the other until CLOSE is taken.
	mc.events.push(mediaEvent{Event: "CLOSE"})
	mc.events.close()
	mc.s.reg.retire(mc.id, mc.events)
	mc.s.media.removeConn(mc)
	mc.s.log.Info("media connection closed", "connection", mc.id, "peer", mc.p.id, "remote", mc.remote, "reason", reason)
}

// setClosedLocked marks the connection closed; mc.mu is held.
func (mc *mediaConn) setClosedLocked() {
	if !mc.closed {
		mc.closed = true
		if mc.done != nil {
			close(mc.done)
		}
	}
}

// startLoop runs f as a read loop close waits for; false once closed.
func (mc *mediaConn) startLoop(f func()) bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.closed {
		return false
	}
	mc.loops.Add(1)
	go func() {
		defer mc.loops.Done()
		f()
	}()
	return true
}

// readBufSize holds any packet pion hands over (its receive MTU is 1460).
const readBufSize = 1500

// senderRTCPLoop relays the remote's RTCP about the app's stream (receiver
// reports, PLI, FIR, NACK, REMB, TWCC) to the app's rtcp redirect, naming
// the app's SSRC for pion's. Reading also feeds pion's interceptors: the
// NACK responder answers from its send buffer here.
func (mc *mediaConn) senderRTCPLoop(k *sendKind, dst netip.AddrPort, egress dataplane.Port) {
	buf := make([]byte, readBufSize)
	for {
		n, _, err := k.sender.Read(buf)
		if err != nil {
			return
		}
		if !dst.IsValid() {
			continue
		}
		if k.media != nil {
			if app := k.media.fan.SSRC(); app != 0 {
				mediarelay.RewriteSSRC(buf[:n], k.ssrc, app)
			}
		}
		_ = egress.WriteTo(buf[:n], dst)
	}
}

// receiverRTCPLoop relays the remote's RTCP about its own stream (sender
// reports, SDES, BYE) to the app's rtcp redirect.
func (mc *mediaConn) receiverRTCPLoop(r *webrtc.RTPReceiver, k *sendKind, dst netip.AddrPort, egress dataplane.Port) {
	buf := make([]byte, readBufSize)
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			return
		}
		if !dst.IsValid() {
			continue
		}
		if k != nil && k.media != nil {
			if app := k.media.fan.SSRC(); app != 0 {
				mediarelay.RewriteSSRC(buf[:n], k.ssrc, app)
			}
		}
		_ = egress.WriteTo(buf[:n], dst)
	}
}

// rtpLoop delivers a remote track to the app's redirect with the payload
// type the app asked for, through a Delivery that batches the sends (its
// copies come from bufs), and measures it with rx (RFC 3550 jitter and
// loss, at the time the packet is read from pion). Nothing allocates per
// packet.
func rtpLoop(t *webrtc.TrackRemote, dst netip.AddrPort, pt int, egress dataplane.Port, bufs *bufpool.Pool, rx *rtpstats.Receiver) {
	var out *mediarelay.Delivery
	if dst.IsValid() {
		out = mediarelay.NewDelivery(egress, dst, bufs)
		defer out.Close()
	}
	buf := make([]byte, readBufSize)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if !mediarelay.IsRTP(buf[:n]) {
			continue
		}
		seq, ts := mediarelay.SeqTS(buf[:n])
		rx.Update(seq, ts, mediarelay.PayloadLen(buf[:n]), time.Now())
		if out == nil {
			continue
		}
		if pt >= 0 {
			mediarelay.SetPayloadType(buf[:n], uint8(pt))
		}
		out.Write(buf[:n])
	}
}

// onTrack starts delivering a remote track and fires STREAM.
func (mc *mediaConn) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	k := kindAudio
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		k = kindVideo
	}
	mc.mu.Lock()
	if mc.closed {
		mc.mu.Unlock()
		return
	}
	// Media flows only over a connected transport; READY comes first even
	// if pion reports the state after the track.
	mc.markReadyLocked()
	rk := &mc.recv[k]
	rx := rtpstats.New(rtpstats.Config{ClockRate: t.Codec().ClockRate})
	rk.rx.Store(rx)
	rk.ssrc.Store(uint32(t.SSRC()))
	dst, rtcpDst, pt, send := rk.dst, rk.rtcpDst, rk.appPT, mc.send[k]
	if !rk.on {
		// The app did not ask for this kind (the remote sent it anyway):
		// drain it so pion's buffers do not fill, deliver nothing.
		dst, rtcpDst = netip.AddrPort{}, netip.AddrPort{}
	}
	mc.mu.Unlock()

	egress := mc.s.cfg.Dataplane.Egress()
	if !mc.startLoop(func() { rtpLoop(t, dst, pt, egress, mc.s.media.bufs, rx) }) {
		return
	}
	mc.startLoop(func() { mc.receiverRTCPLoop(r, send, rtcpDst, egress) })
	ev := streamOptions{IsVideo: k == kindVideo, MediaConnectionID: mc.id, StreamID: t.StreamID()}
	ev.StreamParams.MediaID = t.ID()
	if dst.IsValid() {
		ev.StreamParams.Port = dst.Port()
		if dst.Addr().Unmap().Is4() {
			ev.StreamParams.IPv4 = dst.Addr().Unmap().String()
		} else {
			ev.StreamParams.IPv6 = dst.Addr().String()
		}
	}
	mc.events.push(mediaEvent{Event: "STREAM", StreamOptions: &ev})
	mc.s.log.Info("media stream", "connection", mc.id, "kind", t.Kind().String(), "codec", t.Codec().MimeType,
		"payload_type", t.PayloadType(), "ssrc", uint32(t.SSRC()), "redirect", dst)
}

// onConnectionState follows the PeerConnection: READY when it connects,
// teardown when it fails or the remote closed it (DTLS close_notify makes
// pion close it).
func (mc *mediaConn) onConnectionState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		mc.markReady()
		mc.connected()
	case webrtc.PeerConnectionStateFailed:
		mc.mu.Lock()
		ready := mc.ready
		mc.mu.Unlock()
		if ready {
			mc.closeAsync("connection to "+mc.remote+" lost (ICE failed)", false)
		} else {
			mc.closeAsync("could not connect to "+mc.remote+" (ICE failed)", true)
		}
	case webrtc.PeerConnectionStateClosed:
		mc.closeAsync("peer connection closed", false)
	}
}

// watchPeerJSChannel closes the call when the PeerJS data channel that
// rides along with it closes: that is how a PeerJS peer hangs up.
func (mc *mediaConn) watchPeerJSChannel(dc *webrtc.DataChannel) {
	if !mc.pjdc.CompareAndSwap(nil, dc) {
		return
	}
	dc.OnClose(func() {
		mc.dcOnce.Do(func() { close(mc.dcClosed) })
		mc.closeAsync("the PeerJS data channel closed", false)
	})
}

// peerJSChannelWait bounds how long a hang-up waits for the remote to
// acknowledge the data channel's closing.
const peerJSChannelWait = time.Second

// closePeerJSChannel closes the PeerJS data channel first when gw hangs
// up: a PeerJS peer takes that as the end of the call (it does not watch
// DTLS), so the stream reset must go out before the PeerConnection closes.
func (mc *mediaConn) closePeerJSChannel() {
	dc := mc.pjdc.Load()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen ||
		mc.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		// Nobody there to tell (or to wait for).
		return
	}
	if err := dc.Close(); err != nil {
		return
	}
	t := time.NewTimer(peerJSChannelWait)
	defer t.Stop()
	select {
	case <-mc.dcClosed:
	case <-t.C:
	}
}

type mediaStatus struct {
	Open     bool            `json:"open"`
	Metadata json.RawMessage `json:"metadata"`
	RemoteID string          `json:"remote_id"`
	// Stats is a gw extension: per-stream figures (mediametrics.go).
	Stats *mediaStatusStats `json:"stats"`
}

// lookupConn resolves {media_connection_id}.
func (s *Server) lookupConn(ctx *fasthttp.RequestCtx) (*mediaConn, *apiError) {
	id := pathParam(ctx, "media_connection_id")
	mc := s.media.conn(id)
	if mc == nil {
		return nil, notFound("media_connection_id", "no media connection %s", describe(id))
	}
	return mc, nil
}

// GET /media/connections/{media_connection_id}/status
func (s *Server) mediaConnectionStatus(ctx *fasthttp.RequestCtx) *apiError {
	mc, aerr := s.lookupConn(ctx)
	if aerr != nil {
		return aerr
	}
	mc.mu.Lock()
	open := mc.ready && !mc.closed
	mc.mu.Unlock()
	writeJSON(ctx, fasthttp.StatusOK, mediaStatus{Open: open, Metadata: mc.metadata, RemoteID: mc.remote, Stats: mc.statusStats()})
	return nil
}

// GET /media/connections/{media_connection_id}/events
func (s *Server) mediaConnectionEvents(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "media_connection_id")
	var q *eventQueue
	if mc := s.media.conn(id); mc != nil {
		q = mc.events
	} else if q = s.reg.retiredQueue(id, ""); q == nil {
		return notFound("media_connection_id", "no media connection %s", describe(id))
	}
	return s.longPoll(ctx, q, "media_connection_id", id)
}

// DELETE /media/connections/{media_connection_id}
func (s *Server) deleteMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	mc, aerr := s.lookupConn(ctx)
	if aerr != nil {
		return aerr
	}
	mc.close("deleted")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

type pliOptions struct {
	Port *int64  `json:"port"`
	IPv4 *string `json:"ip_v4"`
	IPv6 *string `json:"ip_v6"`
}

// POST /media/connections/{media_connection_id}/pli
func (s *Server) mediaConnectionPLI(ctx *fasthttp.RequestCtx) *apiError {
	mc, aerr := s.lookupConn(ctx)
	if aerr != nil {
		return aerr
	}
	var o pliOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	dst, aerr := s.parseAddr("", &addrBody{IPv4: o.IPv4, IPv6: o.IPv6, Port: o.Port})
	if aerr != nil {
		return aerr
	}
	mc.mu.Lock()
	k := -1
	for i := range mc.recv {
		if mc.recv[i].on && mc.recv[i].dst == dst {
			k = i
		}
	}
	var media, sender uint32
	if k >= 0 {
		media = mc.recv[k].ssrc.Load()
		if mc.send[k] != nil {
			sender = mc.send[k].ssrc
		}
	}
	mc.mu.Unlock()
	switch {
	case k < 0:
		return badRequest("port", "media connection %s delivers no stream to %s", describe(mc.id), dst)
	case media == 0:
		return badRequest("port", "no %s stream has arrived yet on media connection %s", kindWord(k == kindVideo), describe(mc.id))
	}
	if err := mc.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: sender, MediaSSRC: media}}); err != nil {
		return badRequest("media_connection_id", "cannot send the PLI: %v", err)
	}
	writeJSON(ctx, fasthttp.StatusCreated, struct{}{})
	return nil
}
