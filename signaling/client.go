package signaling

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Errors of Connect (and causes given to Handler.HandleState). Test them with
// errors.Is; the server's text is kept in the message.
var (
	ErrIDTaken    = errors.New("signaling: id is taken")
	ErrInvalidKey = errors.New("signaling: invalid key")
	ErrDomain     = errors.New("signaling: origin domain not allowed for this key")
	ErrInvalidID  = errors.New("signaling: invalid peer id")
	ErrAuth       = errors.New("signaling: authentication failed")
	ErrServer     = errors.New("signaling: server error")
	ErrClosed     = errors.New("signaling: client closed")
	ErrQueueFull  = errors.New("signaling: send queue full")
)

// State of a client's registration, reported to Handler.HandleState.
type State int

const (
	// Disconnected: the socket dropped; the client is reconnecting.
	Disconnected State = iota + 1
	// Reconnected: registered again with the same id and token.
	Reconnected
	// Failed: the client will not reconnect (id taken, key or credential
	// refused); only Close is left to do.
	Failed
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Reconnected:
		return "reconnected"
	case Failed:
		return "failed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Handler receives what happens to a Client. Its methods are called from one
// goroutine, in order, never after Close returns. They must not call Close
// (it waits for them); they may call everything else.
type Handler interface {
	// HandleMessage gets every relayed message (OFFER, ANSWER, CANDIDATE,
	// LEAVE, EXPIRE, ...) in arrival order, and ERROR frames that do not end
	// the connection (a rejected credential renewal).
	HandleMessage(Message)
	// HandleState reports Disconnected (with its cause), Reconnected (nil)
	// and Failed (with the fatal error).
	HandleState(State, error)
	// HandleExpiresIn reports the server's warning that the credential
	// lapses in remainingSec seconds: time to UpdateCredential.
	HandleExpiresIn(remainingSec int)
}

// ClientOptions configure Connect.
type ClientOptions struct {
	// URL of the WebSocket endpoint, e.g. ws://127.0.0.1:9000/peerjs. The
	// client appends ?key=&id=&token=&version=. The HTTP endpoints are
	// under the same URL with ws→http, wss→https and "peerjs" removed.
	URL string
	// Key; default "peerjs" (the official server's default).
	Key string
	// ID to register; "" asks the server for one.
	ID string
	// Domain, sent as Origin: https://<Domain>. Empty: no Origin header.
	Domain string
	// Credential for keys with a secret.
	Credential *Credential
	// Heartbeat interval; default 5 s. The client also pings the socket and
	// gives up on it after 3 intervals without a frame.
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the delay between reconnection
	// attempts (exponential, with jitter). Defaults 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds one connection attempt (dial, upgrade, OPEN);
	// Connect uses it only when its context has no deadline. Default 10 s.
	HandshakeTimeout time.Duration
	// WriteTimeout for one frame; default 10 s.
	WriteTimeout time.Duration
	// QueueSize bounds the messages Send holds while disconnected;
	// default 1024.
	QueueSize int
	Handler   Handler
	Logger    *slog.Logger
	// Observe, if set, is told of every message Send takes ("sent") or
	// refuses ("send_failed") and every one handed to the Handler
	// ("received"), with its type; for metrics. It must be quick.
	Observe func(msgType, result string)
}

// version sent in the URL: the PeerJS client release gw's behaviour follows.
// Servers ignore it.
const clientVersion = "1.5.5"

// Client is a registration at a PeerJS signaling server.
type Client struct {
	o       ClientOptions
	id      string
	token   string
	wsBase  *url.URL
	dialer  websocket.Dialer
	log     *slog.Logger
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	kick    chan struct{}
	events  chan event
	connOK  atomic.Bool
	loopEnd chan struct{}

	mu       sync.Mutex
	closed   bool
	failed   error
	queue    [][]byte
	unconf   []unconfirmed // written, not yet known to have reached the server
	cred     *Credential
	prevCred *Credential // before an UpdateCredential the server may still reject

	hmu      sync.Mutex
	hstopped bool
	dispQuit chan struct{}
	dispEnd  chan struct{}
}

type event struct {
	msg   *Message
	state State
	err   error
	sec   int
	isSec bool
}

// Connect registers at the server and returns once it answered OPEN. ctx
// (or HandshakeTimeout when ctx has no deadline) bounds only this first
// connection; the client then lives until Close, reconnecting by itself.
// Refusals are ErrIDTaken, ErrInvalidKey, ErrDomain, ErrInvalidID, ErrAuth
// or ErrServer (with the server's text); dial errors are wrapped.
func Connect(ctx context.Context, o ClientOptions) (*Client, error) {
	if o.Key == "" {
		o.Key = "peerjs"
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Handler == nil {
		o.Handler = nopHandler{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("signaling: URL %q: want ws:// or wss://host/...peerjs", o.URL)
	}
	u.RawQuery, u.Fragment = "", ""
	if o.ID != "" && !ValidID(o.ID) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidID, o.ID)
	}
	if o.Credential != nil {
		cr := *o.Credential
		o.Credential = &cr
	}
	c := &Client{
		o:        o,
		id:       o.ID,
		token:    randomToken(),
		wsBase:   u,
		dialer:   websocket.Dialer{HandshakeTimeout: o.HandshakeTimeout},
		log:      o.Logger,
		kick:     make(chan struct{}, 1),
		events:   make(chan event, 256),
		loopEnd:  make(chan struct{}),
		cred:     o.Credential,
		dispQuit: make(chan struct{}),
		dispEnd:  make(chan struct{}),
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.HandshakeTimeout)
		defer cancel()
	}
	if c.id == "" {
		if c.id, err = c.fetchID(ctx); err != nil {
			return nil, err
		}
	}
	conn, pending, err := c.dial(ctx, false)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.connOK.Store(true)
	go c.dispatch()
	go c.run(conn, pending)
	return c, nil
}

// ID is the registered peer id.
func (c *Client) ID() string { return c.id }

// Connected reports whether the client is registered right now.
func (c *Client) Connected() bool { return c.connOK.Load() }

// Send queues m for the server; messages go out in Send order, at once when
// connected, after the reconnection otherwise. Src is set by the server.
func (c *Client) Send(m Message) error {
	if m.Type == "" {
		return errors.New("signaling: message without type")
	}
	b, err := json.Marshal(m)
	if err != nil {
		err = fmt.Errorf("signaling: encode message: %w", err)
	} else {
		err = c.enqueue(b)
	}
	if c.o.Observe != nil {
		result := "sent"
		if err != nil {
			result = "send_failed"
		}
		c.o.Observe(m.Type, result)
	}
	return err
}

func (c *Client) enqueue(b []byte) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.failed != nil:
		err := c.failed
		c.mu.Unlock()
		return fmt.Errorf("signaling: client failed: %w", err)
	case len(c.queue) >= c.o.QueueSize:
		c.mu.Unlock()
		return ErrQueueFull
	}
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// UpdateCredential renews the credential: it is sent to the server now if
// connected, and used for every later reconnection. Locally detectable
// problems (ttl range, already expired) are returned; a server's rejection
// arrives as an ERROR message to the Handler, and the previous credential is
// then kept.
func (c *Client) UpdateCredential(cr Credential) error {
	if cr.TTL < int64(MinCredentialTTL/time.Second) || cr.TTL > int64(MaxCredentialTTL/time.Second) {
		return fmt.Errorf("%w: ttl %d outside 600..90000", ErrAuth, cr.TTL)
	}
	if !cr.Expiry().After(time.Now()) {
		return fmt.Errorf("%w: credential already expired", ErrAuth)
	}
	payload, _ := json.Marshal(cr)
	b, _ := json.Marshal(Message{Type: TypeCredential, Payload: payload})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.failed != nil {
		err := c.failed
		c.mu.Unlock()
		return fmt.Errorf("signaling: client failed: %w", err)
	}
	c.prevCred, c.cred = c.cred, &cr
	c.mu.Unlock()
	if !c.Connected() {
		return nil // the next reconnection carries it
	}
	return c.enqueue(b)
}

// Close sends LEAVE (after what Send queued) when connected, closes the
// socket and waits for the client's goroutines. The Handler is not called
// once Close returns. Close must not be called from a Handler method.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.dispEnd
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	<-c.loopEnd
	c.hmu.Lock()
	c.hstopped = true
	c.hmu.Unlock()
	close(c.dispQuit)
	<-c.dispEnd
	return nil
}

// dispatch calls the Handler, one event at a time.
func (c *Client) dispatch() {
	defer close(c.dispEnd)
	for {
		select {
		case <-c.dispQuit:
			return
		case ev := <-c.events:
			c.hmu.Lock()
			if c.hstopped {
				c.hmu.Unlock()
				return
			}
			switch {
			case ev.msg != nil:
				c.o.Handler.HandleMessage(*ev.msg)
			case ev.isSec:
				c.o.Handler.HandleExpiresIn(ev.sec)
			default:
				c.o.Handler.HandleState(ev.state, ev.err)
			}
			c.hmu.Unlock()
		}
	}
}

// emit hands ev to the dispatcher; false once the client is closing.
func (c *Client) emit(ev event) bool {
	if c.o.Observe != nil {
		switch {
		case ev.msg != nil:
			c.o.Observe(ev.msg.Type, "received")
		case ev.isSec:
			c.o.Observe(TypeExpiresIn, "received")
		}
	}
	select {
	case c.events <- ev:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// run owns the connection: it writes, heartbeats and reconnects.
func (c *Client) run(conn *websocket.Conn, pending []event) {
	defer close(c.loopEnd)
	for {
		cause := c.session(conn, pending)
		c.connOK.Store(false)
		if c.ctx.Err() != nil {
			return
		}
		if fatal(cause) {
			c.fail(cause)
			return
		}
		c.log.Info("signaling: disconnected", "id", c.id, "cause", cause)
		if !c.emit(event{state: Disconnected, err: cause}) {
			return
		}
		if conn, pending = c.reconnect(); conn == nil {
			return
		}
	}
}

func (c *Client) fail(err error) {
	c.log.Warn("signaling: giving up", "id", c.id, "err", err)
	c.mu.Lock()
	c.failed = err
	c.queue, c.unconf = nil, nil
	c.mu.Unlock()
	c.emit(event{state: Failed, err: err})
}

// fatal tells the errors no reconnection can cure.
func fatal(err error) bool {
	for _, e := range []error{ErrIDTaken, ErrInvalidKey, ErrDomain, ErrInvalidID, ErrAuth} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// session serves one registered socket until it fails or Close.
//
// A WebSocket write succeeds once the kernel has the bytes, even on a path
// that is already dead, so written messages stay "unconfirmed" until the
// pong to a later ping arrives (the server read the ping, so it read them
// too). When the socket times out (a dead path: nothing came back for
// three heartbeats), unconfirmed messages go back to the head of the queue
// and are sent again on the next socket; a ping follows each burst of
// messages, so only what the server got in the last round trip before the
// path died can arrive twice. When the socket ends any other way (close
// frame, EOF, reset: the server is gone or restarting) the server has read
// what reached it and the rest is a round trip's worth at most: resending
// would duplicate, and PeerJS browsers take a second OFFER as a new
// connection, so nothing is resent then.
func (c *Client) session(conn *websocket.Conn, pending []event) error {
	readErr := make(chan error, 1)
	var pings uint64        // sent on this socket; this goroutine only
	var pongs atomic.Uint64 // highest answered, set by the reader
	conn.SetPongHandler(func(data string) error {
		if k, err := strconv.ParseUint(data, 10, 64); err == nil {
			pongs.Store(k)
			c.confirm(k)
		}
		return nil
	})
	go c.readLoop(conn, pending, readErr)
	ticker := time.NewTicker(c.o.Heartbeat)
	defer ticker.Stop()

	ping := func() error {
		pings++
		return conn.WriteControl(websocket.PingMessage, strconv.AppendUint(nil, pings, 10), time.Now().Add(c.o.WriteTimeout))
	}
	flush := func() error {
		_, err := c.flush(conn, pings)
		if err == nil && pongs.Load() == pings && c.unconfirmedSince(pings) {
			err = ping()
		}
		return err
	}
	end := func(err error) error {
		conn.Close()
		<-readErr
		var ne net.Error
		c.requeueUnconfirmed(errors.As(err, &ne) && ne.Timeout())
		return err
	}
	// A heartbeat at once: a takeover keeps the server's last-heartbeat
	// time of the old socket, which may be old.
	if err := c.write(conn, []byte(`{"type":"HEARTBEAT"}`)); err != nil {
		return end(err)
	}
	if err := flush(); err != nil {
		return end(err)
	}
	for {
		select {
		case <-c.kick:
			if err := flush(); err != nil {
				return end(err)
			}
		case <-ticker.C:
			if err := c.write(conn, []byte(`{"type":"HEARTBEAT"}`)); err != nil {
				return end(err)
			}
			if err := ping(); err != nil {
				return end(err)
			}
		case err := <-readErr:
			readErr <- err // for end
			return end(err)
		case <-c.ctx.Done():
			// Close: what Send queued, then LEAVE, then a close frame; give
			// the server a moment to close its side.
			if _, err := c.flush(conn, pings); err == nil && c.write(conn, []byte(`{"type":"LEAVE"}`)) == nil {
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				t := time.NewTimer(time.Second)
				select {
				case err := <-readErr:
					readErr <- err
				case <-t.C:
				}
				t.Stop()
			}
			return end(c.ctx.Err())
		}
	}
}

func (c *Client) write(conn *websocket.Conn, b []byte) error {
	_ = conn.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
	return conn.WriteMessage(websocket.TextMessage, b)
}

// unconfirmed is a message written on the current socket, before ping
// number tag+1 was sent.
type unconfirmed struct {
	b   []byte
	tag uint64
}

// flush writes the queue in order, moving each message to the unconfirmed
// list (tagged with the pings sent so far); n is how many it wrote. A message
// whose write failed stays first in the queue.
func (c *Client) flush(conn *websocket.Conn, pings uint64) (n int, err error) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return n, nil
		}
		b := c.queue[0]
		c.mu.Unlock()
		if err := c.write(conn, b); err != nil {
			return n, err
		}
		n++
		c.mu.Lock()
		if len(c.queue) > 0 { // fail() may have emptied it meanwhile
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.unconf = append(c.unconf, unconfirmed{b, pings})
		}
		c.mu.Unlock()
	}
}

// confirm forgets the messages written before ping k was sent. If some
// were written after, the loop is woken to ping for them.
func (c *Client) confirm(k uint64) {
	c.mu.Lock()
	i := 0
	for i < len(c.unconf) && c.unconf[i].tag < k {
		c.unconf[i].b = nil
		i++
	}
	c.unconf = c.unconf[i:]
	more := len(c.unconf) > 0
	c.mu.Unlock()
	if more {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// unconfirmedSince reports whether messages were written since ping k.
func (c *Client) unconfirmedSince(k uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unconf) > 0 && c.unconf[len(c.unconf)-1].tag >= k
}

// requeueUnconfirmed puts what the failed socket may have lost back in front
// of the queue when resend is set, and forgets it otherwise.
func (c *Client) requeueUnconfirmed(resend bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !resend || len(c.unconf) == 0 {
		c.unconf = nil
		return
	}
	q := make([][]byte, 0, len(c.unconf)+len(c.queue))
	for _, u := range c.unconf {
		q = append(q, u.b)
	}
	c.queue = append(q, c.queue...)
	c.unconf = nil
}

// readLoop reads frames for session until the socket fails; the error (a
// fatal ERROR included) goes to done.
func (c *Client) readLoop(conn *websocket.Conn, pending []event, done chan<- error) {
	timeout := 3 * c.o.Heartbeat
	extend := func() { _ = conn.SetReadDeadline(time.Now().Add(timeout)) }
	onPong := conn.PongHandler()
	conn.SetPongHandler(func(data string) error { extend(); return onPong(data) })
	for _, ev := range pending {
		if !c.emit(ev) {
			done <- c.ctx.Err()
			return
		}
	}
	for {
		extend()
		m, err := readMessage(conn)
		if err != nil {
			done <- err
			return
		}
		var ev event
		switch m.Type {
		case TypeOpen, TypeHeartbeat:
			continue
		case TypeIDTaken:
			done <- ErrIDTaken
			return
		case TypeInvalidKey:
			done <- ErrInvalidKey
			return
		case TypeError:
			msg := ErrorText(m)
			if strings.HasPrefix(msg, msgRenewalRejected) {
				c.mu.Lock()
				if c.prevCred != nil {
					c.cred, c.prevCred = c.prevCred, nil
				}
				c.mu.Unlock()
				ev.msg = &m
				break
			}
			done <- serverError(msg)
			return
		case TypeExpiresIn:
			var p struct {
				RemainingSec int `json:"remainingSec"`
			}
			_ = json.Unmarshal(m.Payload, &p)
			ev.sec, ev.isSec = p.RemainingSec, true
		case TypeExpire:
			if m.Src == c.id && m.Dst == c.id {
				continue // the echo of a reconnection probe
			}
			ev.msg = &m
		default:
			ev.msg = &m
		}
		if !c.emit(ev) {
			done <- c.ctx.Err()
			return
		}
	}
}

func readMessage(conn *websocket.Conn) (Message, error) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return Message{}, err
		}
		var m Message
		if json.Unmarshal(data, &m) == nil && m.Type != "" {
			return m, nil
		}
		// Like PeerJS: a frame that is not a message is ignored.
	}
}

// ErrorText is the text of an ERROR frame.
func ErrorText(m Message) string {
	var p struct {
		Msg string `json:"msg"`
	}
	_ = json.Unmarshal(m.Payload, &p)
	return p.Msg
}

// serverError maps an ERROR frame's text to the package's errors.
func serverError(msg string) error {
	var kind error
	switch {
	case msg == msgInvalidKey:
		kind = ErrInvalidKey
	case msg == msgDomain:
		kind = ErrDomain
	case msg == msgInvalidID:
		kind = ErrInvalidID
	case strings.HasPrefix(msg, "credential"):
		kind = ErrAuth
	default:
		kind = ErrServer
	}
	return fmt.Errorf("%w: %s", kind, msg)
}

// reconnect retries with exponential backoff and jitter until registered
// (nil on Close or a fatal refusal, reported as Failed).
func (c *Client) reconnect() (*websocket.Conn, []event) {
	for attempt := 0; ; attempt++ {
		d := c.o.MinBackoff << min(attempt, 30)
		if d > c.o.MaxBackoff || d <= 0 {
			d = c.o.MaxBackoff
		}
		d = d/2 + mrand.N(d/2+1) // jitter, so peers do not storm a restarted server together
		t := time.NewTimer(d)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(c.ctx, c.o.HandshakeTimeout)
		conn, pending, err := c.dial(hctx, true)
		cancel()
		if err == nil {
			c.connOK.Store(true)
			c.log.Info("signaling: reconnected", "id", c.id)
			if !c.emit(event{state: Reconnected}) {
				conn.Close()
				return nil, nil
			}
			return conn, pending
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		if fatal(err) {
			c.fail(err)
			return nil, nil
		}
		c.log.Debug("signaling: reconnection failed", "id", c.id, "attempt", attempt+1, "err", err)
	}
}

// dial opens a socket and waits until the server registered it. A first
// connection waits for OPEN. A reconnection may instead take over its old,
// not yet noticed, socket, which the server does silently; so it also sends
// itself an EXPIRE (relayed only to registered ids, never queued, on both
// servers) and counts its echo — or any relayed message — as registered.
func (c *Client) dial(ctx context.Context, reconnect bool) (*websocket.Conn, []event, error) {
	q := "key=" + url.QueryEscape(c.o.Key) + "&id=" + url.QueryEscape(c.id) +
		"&token=" + url.QueryEscape(c.token) + "&version=" + clientVersion
	c.mu.Lock()
	cred := c.cred
	c.mu.Unlock()
	if cred != nil {
		b, _ := json.Marshal(cred)
		q += "&credential=" + url.QueryEscape(string(b))
	}
	u := *c.wsBase
	u.RawQuery = q
	hdr := http.Header{}
	if c.o.Domain != "" {
		hdr.Set("Origin", "https://"+c.o.Domain)
	}
	conn, resp, err := c.dialer.DialContext(ctx, u.String(), hdr)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signaling: dial %s: %w", c.wsBase.Redacted(), err)
	}
	conn.SetReadLimit(4 << 20)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	fail := func(err error) (*websocket.Conn, []event, error) {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
		conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("signaling: connect: %w", ctx.Err())
		}
		return nil, nil, err
	}
	if reconnect {
		probe, _ := json.Marshal(Message{Type: TypeExpire, Dst: c.id})
		if err := c.write(conn, probe); err != nil {
			return fail(err)
		}
	}
	var pending []event
	for {
		m, err := readMessage(conn)
		if err != nil {
			return fail(fmt.Errorf("signaling: waiting for OPEN: %w", err))
		}
		switch m.Type {
		case TypeOpen:
			return c.registered(ctx, conn, pending)
		case TypeIDTaken:
			return fail(fmt.Errorf("%w: %q", ErrIDTaken, c.id))
		case TypeInvalidKey:
			return fail(fmt.Errorf("%w: %q", ErrInvalidKey, c.o.Key))
		case TypeError:
			return fail(serverError(ErrorText(m)))
		case TypeHeartbeat:
		case TypeExpiresIn:
			var p struct {
				RemainingSec int `json:"remainingSec"`
			}
			_ = json.Unmarshal(m.Payload, &p)
			pending = append(pending, event{sec: p.RemainingSec, isSec: true})
		default:
			if !reconnect {
				continue // nothing is relayed before OPEN on a first connection
			}
			if m.Type == TypeExpire && m.Src == c.id && m.Dst == c.id {
				return c.registered(ctx, conn, pending)
			}
			pending = append(pending, event{msg: &m})
			return c.registered(ctx, conn, pending)
		}
	}
}

func (c *Client) registered(ctx context.Context, conn *websocket.Conn, pending []event) (*websocket.Conn, []event, error) {
	_ = conn.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("signaling: connect: %w", ctx.Err())
	}
	return conn, pending, nil
}

// fetchID asks the server for an id (GET {path}{key}/id).
func (c *Client) fetchID(ctx context.Context) (string, error) {
	u := *c.wsBase
	u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	p := strings.TrimSuffix(u.Path, "peerjs")
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	u.Path, u.RawPath = p+c.o.Key+"/id", ""
	u.RawQuery = "ts=" + strconv.FormatInt(time.Now().UnixNano(), 10) + "&version=" + clientVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("signaling: id request: %w", err)
	}
	if c.o.Domain != "" {
		req.Header.Set("Origin", "https://"+c.o.Domain)
	}
	// No keep-alive: one request, and no idle connection left behind.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("signaling: get id: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", fmt.Errorf("signaling: get id: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: GET %s: %s", ErrServer, u.Redacted(), resp.Status)
	}
	id := strings.TrimSpace(string(body))
	if !ValidID(id) {
		return "", fmt.Errorf("%w: server gave id %q", ErrInvalidID, id)
	}
	return id, nil
}

// randomToken is a PeerJS-like connection token: random base-36.
func randomToken() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	return n.Text(36)
}

type nopHandler struct{}

func (nopHandler) HandleMessage(Message)    {}
func (nopHandler) HandleState(State, error) {}
func (nopHandler) HandleExpiresIn(int)      {}
