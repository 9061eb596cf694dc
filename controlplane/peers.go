package controlplane

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/signaling"
)

// peer is a Peer object: one registration at the signaling server and what
// the app created through it.
type peer struct {
	s      *Server
	id     string
	token  string
	key    string
	domain string
	turn   bool
	events *eventQueue
	client *signaling.Client
	// ready is closed once the peer is registered; signaling messages that
	// arrive earlier (queued at the server) wait for it.
	ready chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[string]connection // by PeerJS connectionId
}

type credentialBody struct {
	Timestamp *int64  `json:"timestamp"`
	TTL       *int64  `json:"ttl"`
	AuthToken *string `json:"authToken"`
}

type peerOptions struct {
	Key        *string         `json:"key"`
	Domain     *string         `json:"domain"`
	PeerID     *string         `json:"peer_id"`
	Turn       *bool           `json:"turn"`
	Credential *credentialBody `json:"credential"`
}

// Event bodies of GET /peers/{id}/events.
type peerParams struct {
	PeerID string `json:"peer_id"`
	Token  string `json:"token,omitempty"`
}

type peerEvent struct {
	Event        string      `json:"event"`
	Params       *peerParams `json:"params,omitempty"`
	CallParams   *callParams `json:"call_params,omitempty"`
	DataParams   *dataParams `json:"data_params,omitempty"`
	RemainingSec *int        `json:"remainingSec,omitempty"`
	ErrorMessage string      `json:"error_message,omitempty"`
}

type callParams struct {
	MediaConnectionID string `json:"media_connection_id"`
}

type dataParams struct {
	DataConnectionID string `json:"data_connection_id"`
}

// validateCredential checks a credential's form; the signaling server checks
// its HMAC and lifetime.
func validateCredential(prefix string, c *credentialBody) (signaling.Credential, *apiError) {
	if c.Timestamp == nil {
		return signaling.Credential{}, badRequest(prefix+"timestamp", "%stimestamp field is not specified", prefix)
	}
	if *c.Timestamp < 0 {
		return signaling.Credential{}, badRequest(prefix+"timestamp", "%stimestamp must be a UNIX time in seconds", prefix)
	}
	if c.TTL == nil {
		return signaling.Credential{}, badRequest(prefix+"ttl", "%sttl field is not specified", prefix)
	}
	if err := intRange(prefix+"ttl", *c.TTL, 600, 90000); err != nil {
		return signaling.Credential{}, err
	}
	if err := requireString(prefix+"authToken", c.AuthToken); err != nil {
		return signaling.Credential{}, err
	}
	if _, err := base64.StdEncoding.DecodeString(*c.AuthToken); err != nil {
		return signaling.Credential{}, badRequest(prefix+"authToken", "%sauthToken must be base64: %v", prefix, err)
	}
	return signaling.Credential{Timestamp: *c.Timestamp, TTL: *c.TTL, AuthToken: *c.AuthToken}, nil
}

// POST /peers
func (s *Server) createPeer(ctx *fasthttp.RequestCtx) *apiError {
	var o peerOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	if err := requireString("key", o.Key); err != nil {
		return err
	}
	if err := requireString("domain", o.Domain); err != nil {
		return err
	}
	var wantID string
	if o.PeerID != nil {
		wantID = *o.PeerID
		if !signaling.ValidID(wantID) {
			return badRequest("peer_id", "peer_id %s is not a valid peer id (letters and digits, optionally joined by single spaces, '-' or '_')", describe(wantID))
		}
	}
	var cred *signaling.Credential
	if o.Credential != nil {
		c, err := validateCredential("credential.", o.Credential)
		if err != nil {
			return err
		}
		cred = &c
	}
	if wantID != "" {
		if !s.reg.reservePeerID(wantID) {
			return badRequest("peer_id", "peer_id %s is already in use on this gw", describe(wantID))
		}
	}
	select {
	case <-s.stop:
		s.reg.unreservePeerID(wantID)
		return statusError(fasthttp.StatusServiceUnavailable, "server", "gw is shutting down")
	default:
	}

	p := &peer{
		s:      s,
		token:  "pt-" + uuid.NewString(),
		key:    *o.Key,
		domain: *o.Domain,
		turn:   o.Turn == nil || *o.Turn, // the spec's default is true
		events: newEventQueue(),
		ready:  make(chan struct{}),
	}
	cctx, cancel := context.WithTimeout(context.Background(), s.cfg.SignalingTimeout)
	defer cancel()
	client, err := signaling.Connect(cctx, signaling.ClientOptions{
		URL:        s.cfg.SignalingURL,
		Key:        p.key,
		ID:         wantID,
		Domain:     p.domain,
		Credential: cred,
		Handler:    p,
		Logger:     s.log.With("peer", wantID),
		Observe:    s.cfg.Metrics.SignalingObserver(),
	})
	if err != nil {
		s.reg.unreservePeerID(wantID)
		close(p.ready)
		return connectError(err, wantID, s.cfg.SignalingURL)
	}
	p.client = client
	p.id = client.ID()
	if !s.reg.addPeer(p, wantID) {
		close(p.ready)
		_ = client.Close()
		return badRequest("peer_id", "peer_id %s is already in use on this gw", describe(p.id))
	}
	p.events.push(peerEvent{Event: "OPEN", Params: &peerParams{PeerID: p.id, Token: p.token}})
	close(p.ready)
	s.log.Info("peer open", "peer", p.id)
	writeJSON(ctx, fasthttp.StatusCreated, map[string]any{
		"command_type": cmdPeersCreate,
		"params":       peerParams{PeerID: p.id, Token: p.token},
	})
	return nil
}

// connectError turns a failed registration into the API's answer.
func connectError(err error, id, url string) *apiError {
	switch {
	case errors.Is(err, signaling.ErrIDTaken):
		return badRequest("peer_id", "peer_id %s is already taken at the signaling server", describe(id))
	case errors.Is(err, signaling.ErrInvalidID):
		return badRequest("peer_id", "the signaling server refused peer_id %s: %v", describe(id), err)
	case errors.Is(err, signaling.ErrInvalidKey):
		return forbidden("key", "the signaling server refused the key: %v", err)
	case errors.Is(err, signaling.ErrDomain):
		return forbidden("domain", "the signaling server refused the domain for this key: %v", err)
	case errors.Is(err, signaling.ErrAuth):
		return forbidden("credential", "the signaling server refused the credential: %v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return requestTimeout("signaling", "the signaling server at %s did not accept the peer in time", url)
	default:
		return requestTimeout("signaling", "could not register at the signaling server at %s: %v", url, err)
	}
}

// lookupPeer resolves {peer_id} and the token query parameter.
func (s *Server) lookupPeer(ctx *fasthttp.RequestCtx) (*peer, *apiError) {
	if !ctx.QueryArgs().Has("token") {
		return nil, badRequest("token", "token field is not specified")
	}
	return s.authPeer(pathParam(ctx, "peer_id"), string(ctx.QueryArgs().Peek("token")))
}

// authPeer finds peer id and checks its token: 404 for an unknown peer, 403
// for a wrong token. Operations naming the peer in their body use it too.
func (s *Server) authPeer(id, token string) (*peer, *apiError) {
	p := s.reg.peer(id)
	if p == nil {
		return nil, notFound("peer_id", "no peer %s", describe(id))
	}
	if p.token != token {
		return nil, forbidden("token", "token does not match peer %s", describe(id))
	}
	return p, nil
}

// caller checks the peer_id, token and target_id of a call or a connect:
// the caller's peer, authenticated, and the id of the peer it asks for.
func (s *Server) caller(peerID, token, targetID *string) (*peer, string, *apiError) {
	if err := requireString("peer_id", peerID); err != nil {
		return nil, "", err
	}
	if err := requireString("token", token); err != nil {
		return nil, "", err
	}
	p, err := s.authPeer(*peerID, *token)
	if err != nil {
		return nil, "", err
	}
	if err := requireString("target_id", targetID); err != nil {
		return nil, "", err
	}
	if !signaling.ValidID(*targetID) {
		return nil, "", badRequest("target_id", "target_id %s is not a valid peer id", describe(*targetID))
	}
	return p, *targetID, nil
}

// DELETE /peers/{peer_id}
func (s *Server) deletePeer(ctx *fasthttp.RequestCtx) *apiError {
	p, err := s.lookupPeer(ctx)
	if err != nil {
		return err
	}
	s.closePeer(p, "deleted")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// closePeer leaves signaling, closes everything the peer owns and fires
// CLOSE. Safe to call more than once.
func (s *Server) closePeer(p *peer, reason string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.close("peer closed")
	}
	if p.client != nil {
		_ = p.client.Close()
	}
	p.events.push(peerEvent{Event: "CLOSE", Params: &peerParams{PeerID: p.id, Token: p.token}})
	p.events.close()
	s.reg.removePeer(p)
	s.log.Info("peer closed", "peer", p.id, "reason", reason)
}

// PUT /peers/{peer_id}/credential
func (s *Server) updateCredential(ctx *fasthttp.RequestCtx) *apiError {
	p, err := s.lookupPeer(ctx)
	if err != nil {
		return err
	}
	var c credentialBody
	if err := decodeBody(ctx.PostBody(), &c); err != nil {
		return err
	}
	cred, err := validateCredential("", &c)
	if err != nil {
		return err
	}
	if uerr := p.client.UpdateCredential(cred); uerr != nil {
		return statusError(fasthttp.StatusBadRequest, "credential", "cannot renew the credential: %v", uerr)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"command_type": cmdPeersCredentialUpdate,
		"params":       map[string]any{"credential": cred},
	})
	return nil
}

// GET /peers/{peer_id}/events
func (s *Server) peerEvents(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "peer_id")
	p, aerr := s.lookupPeer(ctx)
	q := (*eventQueue)(nil)
	if aerr == nil {
		q = p.events
	} else if aerr.status == fasthttp.StatusNotFound || aerr.status == fasthttp.StatusForbidden {
		// A deleted peer's last events (CLOSE) stay pollable for a while.
		q = s.reg.retiredQueue(id, string(ctx.QueryArgs().Peek("token")))
	}
	if q == nil {
		return aerr
	}
	return s.longPoll(ctx, q, "peer_id", id)
}

// longPoll answers with q's next event, 408 after the configured wait, or
// 404 once the object is gone and drained.
func (s *Server) longPoll(ctx *fasthttp.RequestCtx, q *eventQueue, field, id string) *apiError {
	conn := ctx.Conn()
	ev, err := q.poll(s.cfg.EventTimeout, s.stop, func() bool { return connAlive(conn) })
	switch {
	case err == nil:
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		ctx.SetBody(ev)
		return nil
	case errors.Is(err, errQueueClosed):
		return notFound(field, "%s %s no longer exists", field, describe(id))
	default:
		return requestTimeout(field, "no event within %s", s.cfg.EventTimeout)
	}
}

// GET /peers/{peer_id}/status
func (s *Server) peerStatus(ctx *fasthttp.RequestCtx) *apiError {
	p, err := s.lookupPeer(ctx)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"peer_id":      p.id,
		"disconnected": !p.client.Connected(),
	})
	return nil
}

// HandleState learns of the signaling connection's ups and downs. A drop is
// reported by status.disconnected while the client reconnects; only a
// permanent failure fires ERROR.
func (p *peer) HandleState(st signaling.State, err error) {
	<-p.ready
	switch st {
	case signaling.Failed:
		p.events.push(peerEvent{Event: "ERROR", ErrorMessage: signalingErrorName(err)})
		p.s.log.Warn("signaling failed", "peer", p.id, "err", err)
	case signaling.Disconnected:
		p.s.log.Info("signaling disconnected; reconnecting", "peer", p.id, "err", err)
	case signaling.Reconnected:
		p.s.log.Info("signaling reconnected", "peer", p.id)
	}
}

// HandleExpiresIn fires EXPIRESIN before the peer's credential lapses.
func (p *peer) HandleExpiresIn(sec int) {
	<-p.ready
	p.events.push(peerEvent{Event: "EXPIRESIN", RemainingSec: &sec})
}

// signalingErrorName maps a signaling failure to the spec's error_message.
func signalingErrorName(err error) string {
	switch {
	case errors.Is(err, signaling.ErrIDTaken):
		return "UNAVAILABLE_ID"
	case errors.Is(err, signaling.ErrInvalidID):
		return "INVALID_ID"
	case errors.Is(err, signaling.ErrInvalidKey), errors.Is(err, signaling.ErrDomain):
		return "INVALID_KEY"
	case errors.Is(err, signaling.ErrAuth), errors.Is(err, signaling.ErrServer):
		return "SERVER_ERROR"
	default:
		return "SERVER_DISCONNECTED"
	}
}
