package controlplane

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/controlplane/binarypack"
	"github.com/gw-project/gw/controlplane/datarelay"
	"github.com/gw-project/gw/dataplane"
)

// A data connection is one PeerJS DataConnection: a PeerConnection with one
// data channel. Datagrams of the data port fed into it go out as messages
// (a dataFeeder on the port's worker goroutine); messages from the remote
// go to the redirect address as datagrams (onMessage on pion's read
// goroutine). Neither path takes a lock or allocates beyond what pion's
// send and receive do; datarelay does the framing and the flow policy.
//
// Lifecycle: connecting → open (OPEN) → closed (CLOSE, after ERROR if it
// failed). A closed connection answers status (open: false) and DELETE for
// retiredKeep, then is forgotten; DELETE forgets it at once and also closes
// the data port it was fed from, unless that now feeds another connection.

type dataConnState uint8

const (
	dataConnecting dataConnState = iota
	dataOpen
	dataClosed
)

type dataConn struct {
	s          *Server
	p          *peer
	id         string // dc-…
	pjID       string // PeerJS connectionId
	remote     string
	label      string
	metadata   json.RawMessage
	reliable   bool // as PeerJS reports it
	ser        datarelay.Serialization
	originator bool
	sess       *session
	events     *eventQueue
	egress     dataplane.Port
	chunker    binarypack.Chunker
	dec        *datarelay.Decoder // used only on pion's read goroutine

	opened       chan struct{} // closed at OPEN
	done         chan struct{} // closed when the connection closes
	redirectSet  chan struct{} // closed when a redirect address is first set
	redirectOnce sync.Once
	dst          atomic.Pointer[netip.AddrPort]
	dc           atomic.Pointer[webrtc.DataChannel]
	flow         atomic.Pointer[datarelay.Flow]
	rxDropped    atomic.Uint64
	// Datagrams and their bytes, to the remote and from it (metrics).
	txMsgs, txBytes, rxMsgs, rxBytes atomic.Uint64

	mu    sync.Mutex
	state dataConnState
	pc    *webrtc.PeerConnection

	// Guarded by s.data.mu: the port feeding the connection now, and the
	// last one that did (closed by DELETE).
	feed, lastFeed *dataPort
}

func (s *Server) newDataConn(p *peer, pjID, remote string, ser datarelay.Serialization) *dataConn {
	return &dataConn{
		s:           s,
		p:           p,
		id:          "dc-" + uuid.NewString(),
		pjID:        pjID,
		remote:      remote,
		ser:         ser,
		events:      newEventQueue(),
		egress:      s.dataPlane().Egress(),
		dec:         datarelay.NewDecoder(ser),
		opened:      make(chan struct{}),
		done:        make(chan struct{}),
		redirectSet: make(chan struct{}),
	}
}

// dataConnEvent is DataConnectionEventMessage.
type dataConnEvent struct {
	Event        string `json:"event"`
	ErrorMessage string `json:"error_message,omitempty"`
}

func (c *dataConn) signaling() *session { return c.sess }

func (c *dataConn) handleAnswer(d webrtc.SessionDescription) error {
	if !c.originator {
		return errors.New("an answer for a connection gw answered itself")
	}
	if c.isClosed() {
		return nil
	}
	return c.sess.setRemoteDescription(d)
}

func (c *dataConn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *dataConn) close(reason string) { c.shutdown("", reason) }

func (c *dataConn) fail(msg string) { c.shutdown(msg, msg) }

// closeAsync closes from a pion callback, which must not wait for the
// PeerConnection to close. Callbacks that follow gw's own close (pion
// reports the states it goes through) start nothing.
func (c *dataConn) closeAsync(errMsg, reason string) {
	if c.isClosed() {
		return
	}
	c.s.background(func() { c.shutdown(errMsg, reason) })
}

// shutdown closes the connection once: it stops the feeding port's sink
// and the receive path, frees the port for other use, closes the
// PeerConnection, then fires ERROR (if errMsg) and CLOSE.
func (c *dataConn) shutdown(errMsg, reason string) {
	c.mu.Lock()
	if c.state == dataClosed {
		c.mu.Unlock()
		return
	}
	c.state = dataClosed
	pc := c.pc
	c.mu.Unlock()
	close(c.done) // wakes a feeder waiting for room and a receive waiting for a redirect
	c.s.data.unfeed(c)
	c.p.removeConn(c.pjID, c)
	if pc != nil {
		// Graceful: it returns once pion's goroutines for it have ended.
		if err := pc.GracefulClose(); err != nil {
			c.s.log.Debug("closing data connection", "data_connection", c.id, "err", err)
		}
	}
	if errMsg != "" {
		c.events.push(dataConnEvent{Event: "ERROR", ErrorMessage: errMsg})
	}
	c.events.push(dataConnEvent{Event: "CLOSE"})
	c.events.close()
	c.s.data.forgetLater(c)
	c.s.log.Info("data connection closed", "peer", c.p.id, "data_connection", c.id, "remote", c.remote, "reason", reason)
}

// attach takes the connection's data channel: made by gw (originator or
// negotiated) or announced by the remote.
func (c *dataConn) attach(dc *webrtc.DataChannel) {
	if !c.dc.CompareAndSwap(nil, dc) {
		c.s.log.Debug("extra data channel ignored", "data_connection", c.id, "label", dc.Label())
		return
	}
	reliable := dc.MaxRetransmits() == nil && dc.MaxPacketLifeTime() == nil
	fl := datarelay.NewFlow(dc, reliable, c.s.data.highWater, c.done)
	c.flow.Store(fl)
	dc.SetBufferedAmountLowThreshold(fl.LowThreshold())
	dc.OnBufferedAmountLow(fl.Drained)
	dc.OnMessage(c.onMessage)
	dc.OnClose(func() { c.closeAsync("", "the data channel closed") })
	dc.OnOpen(c.onOpen)
}

func (c *dataConn) onOpen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != dataConnecting {
		return
	}
	c.state = dataOpen
	close(c.opened)
	// Under c.mu, so that OPEN never follows CLOSE.
	c.events.push(dataConnEvent{Event: "OPEN"})
	c.s.log.Info("data connection open", "peer", c.p.id, "data_connection", c.id, "remote", c.remote)
}

// onMessage turns a message from the remote into a datagram for the app.
// It runs on pion's read goroutine, one message at a time. Until the app
// gives a redirect address it waits: the channel then stops being read,
// and SCTP's flow control holds the remote back, so nothing is lost.
func (c *dataConn) onMessage(msg webrtc.DataChannelMessage) {
	d, closeReq, err := c.dec.Decode(msg.Data, msg.IsString)
	if closeReq {
		c.closeAsync("", "the remote asked to close")
		return
	}
	if err != nil {
		c.rxDropped.Add(1) // the message, or chunks of earlier ones
	}
	if d == nil {
		return
	}
	dst := c.dst.Load()
	if dst == nil {
		select {
		case <-c.redirectSet:
			dst = c.dst.Load()
		case <-c.done:
			return
		}
	}
	if err := c.egress.WriteTo(d, *dst); err != nil {
		c.rxDropped.Add(1)
		return
	}
	c.rxMsgs.Add(1)
	c.rxBytes.Add(uint64(len(d)))
}

func (c *dataConn) setRedirect(a netip.AddrPort) {
	c.dst.Store(&a)
	c.redirectOnce.Do(func() { close(c.redirectSet) })
}

func (c *dataConn) onConnectionState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateFailed:
		c.closeAsync("the connection to "+c.remote+" failed (ICE)", "ICE failed")
	case webrtc.PeerConnectionStateClosed:
		c.closeAsync("", "the peer connection closed")
	}
}

// dataFeeder is a data port's sink while it feeds a connection. It runs on
// the port's worker; blocking here is what stops the port being read.
type dataFeeder struct {
	c   *dataConn
	enc *datarelay.Encoder
}

func (f *dataFeeder) Receive(batch []dataplane.Packet) {
	c := f.c
	// Datagrams sent before OPEN wait in the socket buffer.
	select {
	case <-c.opened:
	case <-c.done:
		return
	}
	fl, dc := c.flow.Load(), c.dc.Load()
	var msgs, nbytes uint64
	for i := range batch {
		if !fl.Admit() {
			continue
		}
		sent := true
		for _, m := range f.enc.Encode(batch[i].Data) {
			if err := dc.Send(m); err != nil {
				fl.Drop() // closing, or larger than the remote takes
				sent = false
				break
			}
		}
		if sent {
			msgs++
			nbytes += uint64(len(batch[i].Data))
		}
	}
	// Once per batch: the counters are shared with scrapes.
	c.txMsgs.Add(msgs)
	c.txBytes.Add(nbytes)
}

// Feeding ports into connections, under the registry's lock.

// setFeed makes dp feed c, in place of the port feeding it before (which
// stays open, unused). dp must not feed another live connection.
func (d *dataRegistry) setFeed(c *dataConn, dp *dataPort, field string) *apiError {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports[dp.id] != dp {
		return notFound(field, "data %s was closed", describe(dp.id))
	}
	if c.isClosed() {
		return forbidden("data_connection_id", "data connection %s is closed", c.id)
	}
	if dp.user != nil && dp.user != c {
		return forbidden(field, "data %s is in use by data connection %s", describe(dp.id), dp.user.id)
	}
	if c.feed == dp {
		return nil
	}
	if old := c.feed; old != nil {
		old.user = nil
		old.port.SetSink(nil)
	}
	dp.user, c.feed, c.lastFeed = c, dp, dp
	dp.port.SetSink(&dataFeeder{c: c, enc: datarelay.NewEncoder(c.ser, &c.chunker)})
	return nil
}

// unfeed detaches the port feeding c (closed connection).
func (d *dataRegistry) unfeed(c *dataConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dp := c.feed; dp != nil {
		dp.user = nil
		dp.port.SetSink(nil)
		c.feed = nil
	}
}

func (d *dataRegistry) feedID(c *dataConn) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.feed == nil {
		return ""
	}
	return c.feed.id
}

// add registers c; false once the registry is shutting down.
func (d *dataRegistry) add(c *dataConn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.conns[c.id] = c
	return true
}

func (d *dataRegistry) conn(id string) *dataConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[id]
}

// forgetLater drops a closed connection after retiredKeep; its events, if
// not yet taken, stay pollable a while longer.
func (d *dataRegistry) forgetLater(c *dataConn) {
	time.AfterFunc(retiredKeep, func() {
		d.mu.Lock()
		gone := d.conns[c.id] == c
		if gone {
			delete(d.conns, c.id)
		}
		d.mu.Unlock()
		if gone {
			c.s.reg.retire(c.id, c.events)
		}
	})
}

// drop forgets a connection that never started.
func (d *dataRegistry) drop(c *dataConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns[c.id] == c {
		delete(d.conns, c.id)
	}
}

// remove forgets c now (DELETE) and returns the data port to close: the
// last one that fed c, unless it feeds another connection now.
func (d *dataRegistry) remove(c *dataConn) *dataPort {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns[c.id] != c {
		return nil
	}
	delete(d.conns, c.id)
	dp := c.lastFeed
	if dp == nil || d.ports[dp.id] != dp || dp.user != nil {
		return nil
	}
	d.releaseLocked(dp)
	return dp
}

// Request and response bodies.

type dataConnectOptions struct {
	PeerID   *string `json:"peer_id"`
	Token    *string `json:"token"`
	TargetID *string `json:"target_id"`
	Options  *struct {
		Metadata      json.RawMessage `json:"metadata"`
		Serialization *string         `json:"serialization"`
		DcInit        *dcInitBody     `json:"dcInit"`
	} `json:"options"`
	Params *struct {
		DataID *string `json:"data_id"`
	} `json:"params"`
	RedirectParams *dataRedirectBody `json:"redirect_params"`
}

// dcInitBody is RTCDataChannelInit, as the API takes it and as gw's offers
// carry it for negotiated channels (a gw extension of PeerJS's payload, so
// that an answering gw can make the same channel).
type dcInitBody struct {
	Ordered           *bool   `json:"ordered,omitempty"`
	MaxPacketLifeTime *int64  `json:"maxPacketLifeTime,omitempty"`
	MaxRetransmits    *int64  `json:"maxRetransmits,omitempty"`
	Protocol          *string `json:"protocol,omitempty"`
	Negotiated        *bool   `json:"negotiated,omitempty"`
	ID                *int64  `json:"id,omitempty"`
	Priority          *string `json:"priority,omitempty"`
}

// channelInit checks dcInit as a browser's createDataChannel does and
// returns pion's form. prefix names the fields in errors.
func (b *dcInitBody) channelInit(prefix string) (*webrtc.DataChannelInit, *apiError) {
	init := &webrtc.DataChannelInit{Ordered: b.Ordered, Protocol: b.Protocol}
	u16 := func(name string, v *int64, hi int64) (*uint16, *apiError) {
		if v == nil {
			return nil, nil
		}
		if err := intRange(prefix+name, *v, 0, hi); err != nil {
			return nil, err
		}
		x := uint16(*v)
		return &x, nil
	}
	var err *apiError
	if init.MaxPacketLifeTime, err = u16("maxPacketLifeTime", b.MaxPacketLifeTime, 65535); err != nil {
		return nil, err
	}
	if init.MaxRetransmits, err = u16("maxRetransmits", b.MaxRetransmits, 65535); err != nil {
		return nil, err
	}
	if init.MaxPacketLifeTime != nil && init.MaxRetransmits != nil {
		return nil, badRequest(prefix+"maxRetransmits", "%smaxPacketLifeTime and %smaxRetransmits cannot both be set", prefix, prefix)
	}
	if b.Protocol != nil && len(*b.Protocol) > 65535 {
		return nil, badRequest(prefix+"protocol", "%sprotocol is longer than 65535 bytes", prefix)
	}
	if b.Priority != nil {
		switch *b.Priority {
		case "very-low", "low", "medium", "high":
		default:
			return nil, badRequest(prefix+"priority", "%spriority must be very-low, low, medium or high, not %s", prefix, describe(*b.Priority))
		}
	}
	if b.Negotiated != nil && *b.Negotiated {
		if b.ID == nil {
			return nil, badRequest(prefix+"id", "%sid is required for a negotiated channel", prefix)
		}
		init.Negotiated = b.Negotiated
		if init.ID, err = u16("id", b.ID, 65534); err != nil {
			return nil, err
		}
	}
	// Without negotiated, id is ignored, as browsers do: the stream id of
	// an announced channel follows the DTLS role.
	return init, nil
}

// reliableInit: a channel without retransmission limits is reliable.
func reliableInit(init *webrtc.DataChannelInit) bool {
	return init.MaxPacketLifeTime == nil && init.MaxRetransmits == nil
}

// dataOfferPayload is PeerJS's data OFFER payload, plus dcInit (gw
// extension) for negotiated channels.
type dataOfferPayload struct {
	SDP           webrtc.SessionDescription `json:"sdp"`
	Type          string                    `json:"type"`
	ConnectionID  string                    `json:"connectionId"`
	Label         string                    `json:"label"`
	Reliable      bool                      `json:"reliable"`
	Serialization string                    `json:"serialization"`
	Metadata      json.RawMessage           `json:"metadata,omitempty"`
	DcInit        *dcInitBody               `json:"dcInit,omitempty"`
}

// newPeerJSConnectionID is a connectionId as PeerJS makes them: prefix
// ("mc_" for media, "dc_" for data) and a random base-36 string.
func newPeerJSConnectionID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36)
}

// hasValue reports whether an optional JSON member carries something.
func hasValue(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// POST /data/connections
func (s *Server) createDataConnection(ctx *fasthttp.RequestCtx) *apiError {
	var o dataConnectOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	p, target, aerr := s.caller(o.PeerID, o.Token, o.TargetID)
	if aerr != nil {
		return aerr
	}
	if o.Params == nil {
		return badRequest("params", "params field is not specified (give {} to feed no data yet)")
	}
	ser := datarelay.Binary
	init := &webrtc.DataChannelInit{}
	var metadata json.RawMessage
	var negotiated *dcInitBody
	if opt := o.Options; opt != nil {
		if opt.Serialization != nil {
			var ok bool
			if ser, ok = datarelay.ParseAPI(*opt.Serialization); !ok {
				return badRequest("options.serialization", "options.serialization must be one of %v, not %s", datarelay.APINames(), describe(*opt.Serialization))
			}
		}
		if opt.DcInit != nil {
			var err *apiError
			if init, err = opt.DcInit.channelInit("options.dcInit."); err != nil {
				return err
			}
			if init.Negotiated != nil {
				negotiated = opt.DcInit
			}
		}
		if hasValue(opt.Metadata) {
			metadata = opt.Metadata
		}
	}
	var redirect *netip.AddrPort
	if o.RedirectParams != nil {
		a, err := parseDataRedirect("redirect_params.", o.RedirectParams, s.dataPlane().Egress().LocalAddr())
		if err != nil {
			return err
		}
		redirect = &a
	}
	var feed *dataPort
	if o.Params.DataID != nil {
		s.data.mu.Lock()
		dp, err := s.data.lookupPortLocked("params.data_id", *o.Params.DataID)
		if err == nil && dp.user != nil {
			err = forbidden("params.data_id", "data %s is in use by data connection %s", describe(dp.id), dp.user.id)
		}
		s.data.mu.Unlock()
		if err != nil {
			return err
		}
		feed = dp
	}

	pc, err := s.newPeerConnection(p, nil, nil)
	if err != nil {
		return badRequest("peer_id", "cannot create a peer connection: %v", err)
	}
	c := s.newDataConn(p, newPeerJSConnectionID("dc_"), target, ser)
	c.originator = true
	c.label = c.pjID // PeerJS's default label
	c.metadata = metadata
	c.reliable = reliableInit(init)
	c.pc = pc
	c.sess = p.newSession("data", c.pjID, target, pc)
	pc.OnConnectionStateChange(c.onConnectionState)
	abort := func(e *apiError) *apiError {
		c.close("not started: " + e.message)
		s.data.drop(c)
		return e
	}
	dc, err := pc.CreateDataChannel(c.label, init)
	if err != nil {
		return abort(badRequest("options.dcInit", "the data channel cannot be made: %v", err))
	}
	c.attach(dc)
	if !s.data.add(c) {
		return abort(statusError(fasthttp.StatusServiceUnavailable, "server", "gw is shutting down"))
	}
	if redirect != nil {
		c.setRedirect(*redirect)
	}
	if feed != nil {
		if err := s.data.setFeed(c, feed, "params.data_id"); err != nil {
			return abort(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		return abort(badRequest("peer_id", "cannot make an offer: %v", err))
	}
	if !p.addConn(c.pjID, c) {
		return abort(notFound("peer_id", "peer %s is closing", describe(p.id)))
	}
	payload := dataOfferPayload{
		SDP: offer, Type: "data", ConnectionID: c.pjID, Label: c.label,
		Reliable: c.reliable, Serialization: ser.PeerJSName(), Metadata: metadata, DcInit: negotiated,
	}
	if err := c.sess.sendDescription("OFFER", payload); err != nil {
		return abort(forbidden("peer_id", "peer %s cannot signal: %v", describe(p.id), err))
	}
	s.log.Info("data connection offered", "peer", p.id, "data_connection", c.id, "remote", target, "serialization", ser)
	// PeerConnectResponse requires data_port, which the original never
	// defines: gw gives the port of the data fed in, or null.
	var dataPort any
	if feed != nil {
		dataPort = feed.port.LocalAddr().Port()
	}
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{
		"command_type": cmdPeersConnect,
		"params":       map[string]any{"data_connection_id": c.id, "data_port": dataPort},
	})
	return nil
}

// acceptConnect takes a remote's data OFFER: gw answers it at once, as a
// PeerJS client does, and tells the app with CONNECTION.
func (s *Server) acceptConnect(p *peer, src string, o pjOffer) {
	log := s.log.With("peer", p.id, "remote", src, "connection", o.ConnectionID)
	ser := datarelay.Binary // PeerJS's default
	if o.Serialization != "" {
		var ok bool
		if ser, ok = datarelay.ParsePeerJS(o.Serialization); !ok {
			log.Warn("unknown serialization; relaying the bytes as they are", "serialization", o.Serialization)
			ser = datarelay.None
		}
	}
	pc, err := s.newPeerConnection(p, nil, nil)
	if err != nil {
		log.Warn("incoming data connection refused", "err", err)
		return
	}
	c := s.newDataConn(p, o.ConnectionID, src, ser)
	c.label = o.Label
	if c.label == "" {
		c.label = o.ConnectionID
	}
	if hasValue(o.Metadata) {
		c.metadata = o.Metadata
	}
	c.reliable = o.Reliable != nil && *o.Reliable
	c.pc = pc
	c.sess = p.newSession("data", o.ConnectionID, src, pc)
	pc.OnConnectionStateChange(c.onConnectionState)
	abort := func(why string, err error) {
		log.Warn("incoming data connection failed", "why", why, "err", err)
		c.close(why)
		s.data.drop(c)
	}
	if hasValue(o.DcInit) {
		var b dcInitBody
		if err := json.Unmarshal(o.DcInit, &b); err != nil {
			abort("bad dcInit in the offer", err)
			return
		}
		init, aerr := b.channelInit("dcInit.")
		if aerr != nil {
			abort("bad dcInit in the offer", errors.New(aerr.message))
			return
		}
		if init.Negotiated != nil {
			dc, err := pc.CreateDataChannel(c.label, init)
			if err != nil {
				abort("cannot make the negotiated channel", err)
				return
			}
			c.attach(dc)
		}
	}
	pc.OnDataChannel(c.attach)
	if !s.data.add(c) {
		abort("shutting down", nil)
		return
	}
	if !p.addConn(c.pjID, c) {
		abort("peer closing", nil)
		return
	}
	if err := c.sess.setRemoteDescription(o.SDP); err != nil {
		abort("the offer was refused", err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		abort("cannot answer", err)
		return
	}
	if err := c.sess.sendDescription("ANSWER", pjAnswer{SDP: answer, Type: "data", ConnectionID: c.pjID}); err != nil {
		abort("cannot signal the answer", err)
		return
	}
	p.events.push(peerEvent{Event: "CONNECTION", DataParams: &dataParams{DataConnectionID: c.id}})
	log.Info("data connection answered", "data_connection", c.id, "serialization", ser)
}

// lookupDataConn resolves {data_connection_id}.
func (s *Server) lookupDataConn(ctx *fasthttp.RequestCtx) (*dataConn, *apiError) {
	id := pathParam(ctx, "data_connection_id")
	if c := s.data.conn(id); c != nil {
		return c, nil
	}
	return nil, notFound("data_connection_id", "no data connection %s", describe(id))
}

// DELETE /data/connections/{data_connection_id}
func (s *Server) deleteDataConnection(ctx *fasthttp.RequestCtx) *apiError {
	c, aerr := s.lookupDataConn(ctx)
	if aerr != nil {
		return aerr
	}
	c.close("deleted")
	if dp := s.data.remove(c); dp != nil {
		_ = dp.port.Close()
		s.log.Debug("data port closed with its connection", "data_id", dp.id, "data_connection", c.id)
	}
	s.reg.retire(c.id, c.events)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

type dataConnPutOptions struct {
	FeedParams *struct {
		DataID *string `json:"data_id"`
	} `json:"feed_params"`
	RedirectParams *dataRedirectBody `json:"redirect_params"`
}

// PUT /data/connections/{data_connection_id}
func (s *Server) putDataConnection(ctx *fasthttp.RequestCtx) *apiError {
	c, aerr := s.lookupDataConn(ctx)
	if aerr != nil {
		return aerr
	}
	var o dataConnPutOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	if o.FeedParams == nil && o.RedirectParams == nil {
		return badRequest("body", "give feed_params, redirect_params or both")
	}
	var redirect netip.AddrPort
	if o.RedirectParams != nil {
		if redirect, aerr = parseDataRedirect("redirect_params.", o.RedirectParams, c.egress.LocalAddr()); aerr != nil {
			return aerr
		}
	}
	var feed *dataPort
	if o.FeedParams != nil {
		if err := requireString("feed_params.data_id", o.FeedParams.DataID); err != nil {
			return err
		}
		s.data.mu.Lock()
		feed, aerr = s.data.lookupPortLocked("feed_params.data_id", *o.FeedParams.DataID)
		s.data.mu.Unlock()
		if aerr != nil {
			return aerr
		}
	}
	if c.isClosed() {
		return forbidden("data_connection_id", "data connection %s is closed", c.id)
	}
	if feed != nil {
		if err := s.data.setFeed(c, feed, "feed_params.data_id"); err != nil {
			return err
		}
	}
	if o.RedirectParams != nil {
		c.setRedirect(redirect)
	}
	resp := map[string]any{"command_type": cmdDataConnPut}
	if id := s.data.feedID(c); id != "" {
		resp["data_id"] = id
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// GET /data/connections/{data_connection_id}/events
func (s *Server) dataConnectionEvents(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "data_connection_id")
	q := (*eventQueue)(nil)
	if c := s.data.conn(id); c != nil {
		q = c.events
	} else if q = s.reg.retiredQueue(id, ""); q == nil {
		return notFound("data_connection_id", "no data connection %s", describe(id))
	}
	return s.longPoll(ctx, q, "data_connection_id", id)
}

// dataConnStatus is DataConnectionStatusMessage, plus gw's drop counters.
type dataConnStatus struct {
	RemoteID       string `json:"remote_id"`
	BufferSize     uint64 `json:"buffersize"`
	Label          string `json:"label"`
	Metadata       any    `json:"metadata"`
	Open           bool   `json:"open"`
	Reliable       bool   `json:"reliable"`
	Serialization  string `json:"serialization"`
	Type           string `json:"type"`
	SendDropped    uint64 `json:"send_dropped"`
	ReceiveDropped uint64 `json:"receive_dropped"`
}

// statusMetadata fits metadata to the status schema, which declares an
// object although PeerJS metadata may be any JSON value (and the API's own
// options.metadata is a string): an object as it is, nothing as {}, any
// other value as {"value": it}.
func statusMetadata(raw json.RawMessage) any {
	switch {
	case !hasValue(raw):
		return map[string]any{}
	case raw[0] == '{':
		return raw
	default:
		return map[string]json.RawMessage{"value": raw}
	}
}

// GET /data/connections/{data_connection_id}/status
func (s *Server) dataConnectionStatus(ctx *fasthttp.RequestCtx) *apiError {
	c, aerr := s.lookupDataConn(ctx)
	if aerr != nil {
		return aerr
	}
	st := dataConnStatus{
		RemoteID:       c.remote,
		Label:          c.label,
		Metadata:       statusMetadata(c.metadata),
		Reliable:       c.reliable,
		Serialization:  c.ser.APIName(),
		Type:           "DATA",
		ReceiveDropped: c.rxDropped.Load(),
	}
	c.mu.Lock()
	st.Open = c.state == dataOpen
	c.mu.Unlock()
	if dc := c.dc.Load(); dc != nil && st.Open {
		st.BufferSize = dc.BufferedAmount()
	}
	if fl := c.flow.Load(); fl != nil {
		st.SendDropped = fl.Dropped()
	}
	writeJSON(ctx, fasthttp.StatusOK, st)
	return nil
}
