package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/internal/quietconn"
)

// ServerOptions configure a Server. Zero values take the official server's
// defaults.
type ServerOptions struct {
	// Path the server lives under; the WebSocket is at Path+"peerjs".
	// Default "/". A missing leading or trailing slash is added.
	Path string
	// Keys accepted; nil accepts any key. Peers of different keys never see
	// each other (each key is its own namespace of ids).
	Keys *KeyStore
	// ConcurrentLimit on registered peers, all keys together. Default 5000.
	ConcurrentLimit int
	// AliveTimeout drops a peer that sent no HEARTBEAT for that long.
	// Default 60 s (the official CLI's default).
	AliveTimeout time.Duration
	// ExpireTimeout: messages queued for an absent peer and unread for that
	// long are dropped and their senders get EXPIRE. Default 5 s.
	ExpireTimeout time.Duration
	// CheckInterval of the liveness, queue and credential sweeps. Default 300 ms.
	CheckInterval time.Duration
	// ExpiresInLead: EXPIRESIN is sent when this much or less of a credential
	// remains. Default 60 s.
	ExpiresInLead time.Duration
	// ClockSkew tolerated on a credential's timestamp. Default 5 s.
	ClockSkew time.Duration
	// WriteTimeout for one frame to a peer; a peer that does not read is
	// dropped. Default 10 s.
	WriteTimeout time.Duration
	// MaxMessageSize of an incoming frame; larger ones close the socket.
	// Default 1 MiB.
	MaxMessageSize int64
	// AllowDiscovery enables GET {Path}{key}/peers.
	AllowDiscovery bool
	// Index, if set, answers a browser's GET {Path} (Accept: text/html)
	// instead of the JSON banner: gw's viewer page.
	Index fasthttp.RequestHandler
	// Fallback serves the requests the signaling server does not handle
	// (gw mounts its viewer page there). Nil: 404.
	Fallback fasthttp.RequestHandler
	// Logger; nil discards.
	Logger *slog.Logger
	// Observe, if set, is told of every frame a registered peer sends and
	// of every queued message that expires, with its type and what became
	// of it: "relayed", "queued", "expired", "dropped", "accepted" (handled
	// by the server: HEARTBEAT, LEAVE without dst, CREDENTIAL) or
	// "rejected" (a CREDENTIAL renewal); for metrics. It is called with
	// the server's lock held and must be quick.
	Observe func(msgType, result string)
}

const (
	maxQueuedPerPeer = 1000 // messages held for one absent id
	maxOutbox        = 4096 // frames waiting to be written to one socket
	closeGrace       = 2 * time.Second
)

// Server is a PeerJS signaling server.
type Server struct {
	o      ServerOptions
	path   string // normalized, ends with "/"
	wsPath string
	log    *slog.Logger
	keys   atomic.Pointer[KeyStore]
	up     websocket.FastHTTPUpgrader
	http   *fasthttp.Server
	stop   chan struct{}

	mu        sync.Mutex
	closed    bool
	realms    map[string]*realm // by key
	nclients  int
	conns     map[*sconn]struct{}
	httpConns map[net.Conn]struct{}
	listeners []net.Listener
	wg        sync.WaitGroup // sweeper and every connection's goroutines
}

// realm is the namespace of one key.
type realm struct {
	key     string
	clients map[string]*client
	queues  map[string]*queue
}

// queue holds messages for an id that is not connected.
type queue struct {
	created time.Time // the official server never reads a queue partially, so this is its last read
	msgs    []queued
}

type queued struct {
	typ, src, dst string
	payload       json.RawMessage
}

// client is a registered id; its socket may be replaced by a reconnect with
// the same token.
type client struct {
	id, token string
	realm     *realm
	conn      *sconn
	secret    string
	lastPing  atomic.Int64 // unix nanos of the last HEARTBEAT (or registration)
	// credential state, guarded by Server.mu
	credExpiry    time.Time
	expiresInSent bool
}

// NewServer returns a server; its sweeper runs until Close.
func NewServer(o ServerOptions) *Server {
	if o.ConcurrentLimit <= 0 {
		o.ConcurrentLimit = 5000
	}
	if o.AliveTimeout <= 0 {
		o.AliveTimeout = 60 * time.Second
	}
	if o.ExpireTimeout <= 0 {
		o.ExpireTimeout = 5 * time.Second
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 300 * time.Millisecond
	}
	if o.ExpiresInLead <= 0 {
		o.ExpiresInLead = 60 * time.Second
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := o.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	s := &Server{
		o:      o,
		path:   p,
		wsPath: p + "peerjs",
		log:    o.Logger,
		stop:   make(chan struct{}),
		realms: make(map[string]*realm),
		conns:  make(map[*sconn]struct{}),

		httpConns: make(map[net.Conn]struct{}),
	}
	s.keys.Store(o.Keys)
	s.up = websocket.FastHTTPUpgrader{
		// Origins are checked per key after the upgrade, so that a refused
		// one gets an ERROR frame like an unknown key does.
		CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
	}
	s.http = &fasthttp.Server{
		Handler:               s.Handler(),
		NoDefaultServerHeader: true,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           30 * time.Second,
		Logger:                fasthttpLogger{s.log},
	}
	s.wg.Add(1)
	go s.sweep()
	return s
}

// SetKeys replaces the key store (nil: any key). Peers already connected
// keep their sockets; the new keys apply to new sockets and reconnects.
func (s *Server) SetKeys(ks *KeyStore) { s.keys.Store(ks) }

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("signaling: server closed")

// Serve accepts connections on ln until Close, then returns nil. Each
// connection gets a goroutine of the server's own (rather than fasthttp's
// worker pool, whose cleaner outlives a shutdown by seconds), so that Close
// can end and wait for all of them.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		return ErrServerClosed
	}
	// A client that opens a connection and sends nothing is closed
	// without a 408.
	ln = quietconn.Listen(ln)
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and go on.
			s.log.Warn("signaling: accept", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.httpConns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			_ = s.http.ServeConn(nc) // a hijacked (WebSocket) conn returns at once
			s.mu.Lock()
			delete(s.httpConns, nc)
			s.mu.Unlock()
		}()
	}
}

// Close closes every socket (with a going-away close frame), stops the
// sweeper and Serve, and waits for all of the server's goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	conns := make([]*sconn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	lns := s.listeners
	s.mu.Unlock()

	for _, ln := range lns {
		ln.Close()
	}
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server closing")
	for _, c := range conns {
		c.kill(msg)
	}
	// Plain HTTP connections (keep-alive or mid-request); no new ones can
	// be added now that closed is set.
	s.mu.Lock()
	for nc := range s.httpConns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// realmLocked returns the realm of key, creating it.
func (s *Server) realmLocked(key string) *realm {
	r := s.realms[key]
	if r == nil {
		r = &realm{key: key, clients: make(map[string]*client), queues: make(map[string]*queue)}
		s.realms[key] = r
	}
	return r
}

// pruneLocked forgets an empty realm, so that random keys (when any key is
// accepted) do not accumulate.
func (s *Server) pruneLocked(r *realm) {
	if len(r.clients) == 0 && len(r.queues) == 0 && s.realms[r.key] == r {
		delete(s.realms, r.key)
	}
}

// unregisterLocked removes cl from its realm if it is still registered.
func (s *Server) unregisterLocked(cl *client) {
	r := cl.realm
	if r.clients[cl.id] != cl {
		return
	}
	delete(r.clients, cl.id)
	s.nclients--
	if cl.conn != nil && cl.conn.client == cl {
		cl.conn.client = nil
	}
	s.pruneLocked(r)
}

// wsParams are what serveWS copies out of the upgrade request (the
// RequestCtx is gone once the connection is hijacked).
type wsParams struct {
	key, id, token, origin, credential string
	hasCredential                      bool
}

// serveConn runs on the hijacked connection's goroutine: it registers the
// peer, starts the writer and reads frames until the socket ends.
func (s *Server) serveConn(ws *websocket.Conn, p wsParams) {
	c := &sconn{ws: ws, wake: make(chan struct{}, 1), done: make(chan struct{}), writerEnd: make(chan struct{}), writeTimeout: s.o.WriteTimeout}
	c.raw = ws.NetConn()
	if u, ok := c.raw.(interface{ UnsafeConn() net.Conn }); ok {
		// fasthttp's hijacked conn ignores Close while it owns the
		// connection; closing the real one is how to end a blocked read.
		c.raw = u.UnsafeConn()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.writeLoop()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if cl := c.client; cl != nil && cl.conn == c {
			// The official server forgets the id when its socket closes,
			// keeping the messages queued for it.
			s.unregisterLocked(cl)
		}
		s.mu.Unlock()
		close(c.done)
		c.raw.Close()
		<-c.writerEnd
		// fasthttp recycles the hijacked connection once this returns:
		// nobody may touch ws after that.
		c.life.Lock()
		c.released = true
		c.life.Unlock()
		s.wg.Done()
	}()

	ws.SetReadLimit(s.o.MaxMessageSize)
	s.register(c, p)
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			// As the ws module the official server uses does.
			c.kill(websocket.FormatCloseMessage(websocket.CloseInvalidFramePayloadData, "invalid UTF-8 sequence"))
			return
		}
		if mt == websocket.BinaryMessage {
			// The official server parses data.toString(): binary frames
			// holding JSON work too.
			data = []byte(strings.ToValidUTF8(string(data), "\uFFFD"))
		}
		f, err := parseFrame(data)
		if err != nil {
			continue
		}
		s.handleFrame(c, f)
	}
}

// register does what the official server does with a new socket, in its
// order: parameters, key, (gw: domain, id, credential), id taken or same
// token taking over, concurrent limit, OPEN, then the queued messages.
func (s *Server) register(c *sconn, p wsParams) {
	if p.id == "" || p.token == "" || p.key == "" {
		c.fail(errorFrame(TypeError, msgInvalidParams))
		return
	}
	var secret string
	if ks := s.keys.Load(); ks != nil {
		k, ok := ks.Lookup(p.key)
		if !ok {
			c.fail(errorFrame(TypeError, msgInvalidKey))
			return
		}
		if !k.allowsOrigin(p.origin) {
			c.fail(errorFrame(TypeError, msgDomain))
			return
		}
		secret = k.Secret
	}
	if !ValidID(p.id) {
		c.fail(errorFrame(TypeError, msgInvalidID))
		return
	}
	now := time.Now()
	var expiry time.Time
	if secret != "" {
		if !p.hasCredential {
			c.fail(errorFrame(TypeError, msgCredRequired))
			return
		}
		cred, err := parseCredential([]byte(p.credential))
		if err == nil {
			expiry, err = verifyCredential(secret, p.id, cred, now, s.o.ClockSkew)
		}
		if err != nil {
			c.fail(errorFrame(TypeError, credentialMsg(err)))
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.realmLocked(p.key)
	cl := r.clients[p.id]
	if cl != nil {
		if cl.token != p.token {
			c.fail(errorFrame(TypeIDTaken, msgIDTaken))
			s.pruneLocked(r)
			return
		}
		// Same id and token: the new socket replaces the old one without
		// an OPEN. The official server leaves the old socket open but
		// deaf; closing it frees it.
		old := cl.conn
		cl.conn, c.client = c, cl
		if old != nil {
			old.client = nil
			old.closeAfterFlush(nil)
		}
		s.log.Debug("signaling: socket replaced", "key", p.key, "id", p.id)
	} else {
		if s.nclients >= s.o.ConcurrentLimit {
			c.fail(errorFrame(TypeError, msgLimit))
			s.pruneLocked(r)
			return
		}
		cl = &client{id: p.id, token: p.token, realm: r, conn: c, secret: secret}
		cl.lastPing.Store(now.UnixNano())
		r.clients[p.id] = cl
		s.nclients++
		c.client = cl
		c.push(appendMessage(nil, TypeOpen, "", "", nil))
		s.log.Debug("signaling: peer registered", "key", p.key, "id", p.id)
	}
	if q := r.queues[p.id]; q != nil {
		delete(r.queues, p.id)
		for _, m := range q.msgs {
			s.routeLocked(r, m)
		}
	}
	if secret != "" {
		cl.credExpiry, cl.expiresInSent = expiry, false
		s.checkCredentialLocked(cl, now)
	}
}

func credentialMsg(err error) string {
	if err.Error() == msgCredExpired {
		return msgCredExpired
	}
	return msgCredInvalid + err.Error()
}

// handleFrame dispatches a client frame like the official server's message
// handler: HEARTBEAT refreshes, the five relayed types are routed, CREDENTIAL
// renews (gw), anything else is dropped.
func (s *Server) handleFrame(c *sconn, f frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	result := "dropped"
	defer func() {
		if s.o.Observe != nil {
			s.o.Observe(f.typ, result)
		}
	}()
	cl := c.client
	if cl == nil || cl.conn != c {
		return // not (or no longer) registered: the official server would not route for it either
	}
	switch f.typ {
	case TypeHeartbeat:
		cl.lastPing.Store(time.Now().UnixNano())
		result = "accepted"
	case TypeOffer, TypeAnswer, TypeCandidate, TypeLeave, TypeExpire:
		result = s.routeLocked(cl.realm, queued{typ: f.typ, src: cl.id, dst: f.dst, payload: f.payload})
	case TypeCredential:
		if cl.secret == "" {
			return
		}
		cred, err := parseCredential(f.payload)
		var exp time.Time
		now := time.Now()
		if err == nil {
			exp, err = verifyCredential(cl.secret, cl.id, cred, now, s.o.ClockSkew)
		}
		if err != nil {
			// The old credential still holds: keep the socket.
			c.push(errorFrame(TypeError, msgRenewalRejected+err.Error()))
			result = "rejected"
			return
		}
		cl.credExpiry, cl.expiresInSent = exp, false
		s.checkCredentialLocked(cl, now)
		result = "accepted"
	}
}

// routeLocked delivers m to its destination, queues it while the destination
// is absent (LEAVE and EXPIRE are not worth queueing), or, for LEAVE without
// destination, unregisters the sender. It says which it did, for
// ServerOptions.Observe.
func (s *Server) routeLocked(r *realm, m queued) (result string) {
	if m.dst != "" {
		if dc := r.clients[m.dst]; dc != nil {
			if dc.conn != nil && dc.conn.push(appendMessage(nil, m.typ, m.src, m.dst, m.payload)) {
				return "relayed"
			}
			// Its socket is dead but not yet noticed: forget it and tell
			// the sender, as the official server does.
			conn := dc.conn
			s.unregisterLocked(dc)
			if conn != nil {
				conn.kill(nil)
			}
			s.routeLocked(r, queued{typ: TypeLeave, src: m.dst, dst: m.src})
			return "dropped"
		}
		if m.typ != TypeLeave && m.typ != TypeExpire {
			q := r.queues[m.dst]
			if q == nil {
				q = &queue{created: time.Now()}
				r.queues[m.dst] = q
			}
			if len(q.msgs) < maxQueuedPerPeer {
				q.msgs = append(q.msgs, m)
				return "queued"
			}
		}
		return "dropped"
	}
	if m.typ == TypeLeave {
		if cl := r.clients[m.src]; cl != nil {
			conn := cl.conn
			s.unregisterLocked(cl)
			// The official server keeps the socket open but unregistered;
			// nothing a PeerJS client does can tell, and closing it keeps
			// such sockets from piling up outside the concurrent limit.
			if conn != nil {
				conn.closeAfterFlush(nil)
			}
		}
		return "accepted"
	}
	return "dropped"
}

// checkCredentialLocked sends EXPIRESIN once when the lead is reached, and at
// expiry ERROR "credential expired" then closes.
func (s *Server) checkCredentialLocked(cl *client, now time.Time) {
	if cl.credExpiry.IsZero() || cl.conn == nil {
		return
	}
	rem := cl.credExpiry.Sub(now)
	if rem <= 0 {
		conn := cl.conn
		s.unregisterLocked(cl)
		conn.fail(errorFrame(TypeError, msgCredExpired))
		return
	}
	if rem <= s.o.ExpiresInLead && !cl.expiresInSent {
		cl.expiresInSent = true
		sec := int64(math.Ceil(rem.Seconds()))
		cl.conn.push(appendMessage(nil, TypeExpiresIn, "", "", []byte(`{"remainingSec":`+strconv.FormatInt(sec, 10)+`}`)))
	}
}

// sweep is the official server's two timers in one: every CheckInterval it
// drops peers silent for AliveTimeout, expires queues unread for
// ExpireTimeout, and (gw) watches credentials.
func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.sweepOnce(now)
		}
	}
}

func (s *Server) sweepOnce(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var realms []*realm
	for _, r := range s.realms {
		realms = append(realms, r)
	}
	for _, r := range realms {
		var dead []*client
		for _, cl := range r.clients {
			if now.Sub(time.Unix(0, cl.lastPing.Load())) >= s.o.AliveTimeout {
				dead = append(dead, cl)
				continue
			}
			s.checkCredentialLocked(cl, now)
		}
		for _, cl := range dead {
			s.log.Debug("signaling: peer timed out", "key", r.key, "id", cl.id)
			conn := cl.conn
			delete(r.queues, cl.id)
			s.unregisterLocked(cl)
			if conn != nil {
				conn.closeAfterFlush(nil)
			}
		}
		var expired []string
		for id, q := range r.queues {
			if now.Sub(q.created) >= s.o.ExpireTimeout {
				expired = append(expired, id)
			}
		}
		for _, id := range expired {
			q := r.queues[id]
			delete(r.queues, id)
			seen := make(map[string]bool)
			for _, m := range q.msgs {
				if s.o.Observe != nil {
					s.o.Observe(m.typ, "expired")
				}
				if !seen[m.src] {
					seen[m.src] = true
					s.routeLocked(r, queued{typ: TypeExpire, src: m.dst, dst: m.src})
				}
			}
		}
		s.pruneLocked(r)
	}
}

// sconn is one WebSocket. Frames to it go through an outbox written by its
// own goroutine, so a slow peer never blocks the peers relaying to it.
type sconn struct {
	ws           *websocket.Conn
	raw          net.Conn // under ws; safe to close at any time
	writeTimeout time.Duration
	client       *client // guarded by Server.mu

	// life guards ws against use after serveConn returned (fasthttp
	// reuses the hijacked connection object).
	life      sync.RWMutex
	released  bool
	writerEnd chan struct{}

	mu      sync.Mutex
	out     [][]byte
	closing bool // close once out is written
	closeBy []byte
	dead    bool
	wake    chan struct{}
	done    chan struct{} // closed when the reader is gone
}

// push queues a frame; false when the socket is closing or dead.
func (c *sconn) push(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return false
	}
	if len(c.out) >= maxOutbox {
		c.dead = true
		c.raw.Close() // a peer this far behind is not reading
		return false
	}
	c.out = append(c.out, b)
	c.signal()
	return true
}

func (c *sconn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// fail sends one last frame and closes, as the official server's
// send-then-close.
func (c *sconn) fail(b []byte) {
	c.push(b)
	c.closeAfterFlush(nil)
}

// closeAfterFlush closes the socket once the queued frames are written: a
// close frame (msg, or an empty one as ws's close() sends), then the reader
// is given closeGrace to see the peer's close frame.
func (c *sconn) closeAfterFlush(msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	c.closing = true
	c.closeBy = msg
	c.signal()
}

// kill closes at once, with a close frame when msg is not nil.
func (c *sconn) kill(msg []byte) {
	c.mu.Lock()
	already := c.dead
	c.dead = true
	c.mu.Unlock()
	if already {
		return
	}
	c.life.RLock()
	if !c.released {
		if msg != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(100*time.Millisecond))
		}
		c.raw.Close()
	}
	c.life.RUnlock()
	c.signal()
}

func (c *sconn) writeLoop() {
	defer close(c.writerEnd)
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		batch, closing, closeBy, dead := c.out, c.closing, c.closeBy, c.dead
		c.out = nil
		c.mu.Unlock()
		if dead {
			return
		}
		for _, b := range batch {
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.kill(nil)
				return
			}
		}
		if closing {
			if closeBy == nil {
				closeBy = websocket.FormatCloseMessage(websocket.CloseNoStatusReceived, "")
			}
			_ = c.ws.WriteControl(websocket.CloseMessage, closeBy, time.Now().Add(c.writeTimeout))
			_ = c.raw.SetReadDeadline(time.Now().Add(closeGrace))
			return
		}
	}
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("signaling: http", "msg", strings.TrimSpace(fmt.Sprintf(format, args...)))
}
