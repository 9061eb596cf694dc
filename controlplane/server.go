// Package controlplane serves gw's REST API (the SkyWay WebRTC Gateway 0.4.3
// API, see api/openapi.yaml) on fasthttp: request decoding and validation,
// the error envelope, long-poll events, and the registry of peers, media,
// data and connections with the pion PeerConnections behind them. It never
// touches packets: it opens dataplane ports and tells them where packets go.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/router"
	"github.com/pion/transport/v5"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/api"
	"github.com/gw-project/gw/controlplane/mediarelay"
	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/internal/quietconn"
	"github.com/gw-project/gw/metrics"
)

// ICENetwork makes the network of each PeerConnection's ICE agent and can
// hold the writes on its sockets for a batch (udp.ICENet does both).
type ICENetwork interface {
	Net() (transport.Net, error)
	mediarelay.Batcher
}

// Config is what the control plane is built from; cmd/gw fills it from flags.
type Config struct {
	// SignalingURL is the PeerJS WebSocket endpoint peers register at,
	// e.g. ws://127.0.0.1:9000/peerjs.
	SignalingURL string
	// MediaAddr is reported as ip_v4 of every port gw opens.
	MediaAddr netip.Addr
	// EventTimeout is how long a long-poll waits before answering 408.
	EventTimeout time.Duration
	// ICEServers are used by peers created with turn: true (STUN-only ones
	// also without).
	ICEServers []ICEServer
	// ICETransportPolicy is "all" (the default, also for "") or "relay":
	// the PeerConnections of peers created with turn: true then use only
	// candidates relayed by the TURN servers of ICEServers, so that the
	// remote never learns gw's own addresses. It applies only where a
	// peer has a TURN server to use: relay without one cannot connect.
	ICETransportPolicy string
	// ICENet, if set, is the network every PeerConnection's ICE agent
	// opens its sockets through (nil: pion's standard one). Media ports
	// hold its writes around each batch they read (udp.ICENet).
	ICENet ICENetwork
	// Dataplane opens the local UDP ports.
	Dataplane dataplane.Dataplane
	// DataDataplane, if set, opens the data ports (POST /data) instead:
	// their buffers must hold whole datagrams of up to 64 KiB, where media
	// ports need only an MTU's worth. Give it the same port range; each
	// skips the ports the other holds.
	DataDataplane dataplane.Dataplane
	// MaxBodySize caps request bodies; 0 means 1 MiB.
	MaxBodySize int
	// SignalingTimeout bounds how long POST /peers waits for the signaling
	// server to accept the peer; 0 means 10 s.
	SignalingTimeout time.Duration
	// Metrics, if set, is served on GET /metrics and records REST requests
	// (see metrics.go); nil: no metrics.
	Metrics *metrics.Registry
	Logger  *slog.Logger
}

// The values of Config.ICETransportPolicy (W3C RTCIceTransportPolicy).
const (
	ICETransportPolicyAll   = "all"
	ICETransportPolicyRelay = "relay"
)

// ICEServer is one STUN or TURN server.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
}

// Server is the REST control plane. Create it with New, serve it with Serve,
// stop it with Shutdown.
type Server struct {
	cfg  Config
	log  *slog.Logger
	http *fasthttp.Server
	reg  *registry
	// media (media.go) and data (data.go) keep the ports and connections
	// of their part of the API.
	media *mediaRegistry
	data  *dataRegistry
	stop  chan struct{} // closed by Shutdown: ends long-polls
	// wg tracks background work owned by objects (closers started from
	// pion's callbacks); see background.
	wg       sync.WaitGroup
	bgMu     sync.Mutex
	bgDone   bool // Shutdown waits on wg: nothing more may join it
	stopOnce sync.Once
}

// New builds the control plane.
func New(cfg Config) (*Server, error) {
	if cfg.SignalingURL == "" {
		return nil, errors.New("controlplane: no signaling URL")
	}
	if cfg.EventTimeout <= 0 {
		cfg.EventTimeout = 30 * time.Second
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = 1 << 20
	}
	if cfg.SignalingTimeout <= 0 {
		cfg.SignalingTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.ICETransportPolicy {
	case "":
		cfg.ICETransportPolicy = ICETransportPolicyAll
	case ICETransportPolicyAll:
	case ICETransportPolicyRelay:
		// Relay without a TURN server would leave every peer on its host
		// candidates, exposing what the policy is meant to hide.
		if !slices.ContainsFunc(cfg.ICEServers, ICEServer.isTURN) {
			return nil, errors.New("controlplane: ICE transport policy relay needs a turn: or turns: ICE server")
		}
	default:
		return nil, fmt.Errorf("controlplane: ICE transport policy %q: want %s or %s", cfg.ICETransportPolicy, ICETransportPolicyAll, ICETransportPolicyRelay)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		reg:   newRegistry(),
		media: newMediaRegistry(),
		data:  newDataRegistry(),
		stop:  make(chan struct{}),
	}
	s.wireMetrics()
	r := s.routes()
	s.http = &fasthttp.Server{
		Handler:            s.instrument(r.Handler),
		Name:               "gw",
		MaxRequestBodySize: cfg.MaxBodySize,
		ReadTimeout:        time.Minute,
		// Long-polls hold a response for up to EventTimeout.
		WriteTimeout:                  cfg.EventTimeout + time.Minute,
		IdleTimeout:                   2 * time.Minute,
		ErrorHandler:                  s.transportError,
		NoDefaultServerHeader:         false,
		DisableHeaderNamesNormalizing: false,
		Logger:                        slogPrintf{s.log},
	}
	return s, nil
}

// Handler is the API's request handler, for serving it elsewhere (tests,
// fuzzing).
func (s *Server) Handler() fasthttp.RequestHandler { return s.http.Handler }

// Serve answers API requests on ln until Shutdown. A connection on which
// nothing arrives within the read timeout is closed without an answer.
func (s *Server) Serve(ln net.Listener) error {
	return s.http.Serve(quietconn.Listen(ln))
}

// Shutdown closes every peer (each leaves signaling and closes what it owns),
// ends waiting long-polls, and stops serving.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	for _, p := range s.reg.allPeers() {
		s.closePeer(p, "shutdown")
	}
	s.media.closeAll()
	s.data.closeAll()
	s.bgMu.Lock()
	s.bgDone = true
	s.bgMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if herr := s.http.ShutdownWithContext(ctx); herr != nil && err == nil {
		err = herr
	}
	return err
}

// background runs f on a goroutine of its own that Shutdown waits for.
// Once Shutdown has closed every connection and waits, f does not run:
// what it would close is closed, and a WaitGroup may not grow from zero
// while it is waited on (a pion callback closing a connection raced
// Shutdown's wait that way).
func (s *Server) background(f func()) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgDone {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// op is a handler: it writes a success response itself, or returns the
// error the router writes in the envelope.
type op func(ctx *fasthttp.RequestCtx) *apiError

// Command types of the spec's operations, used in every envelope.
const (
	cmdPeersCreate           = "PEERS_CREATE"
	cmdPeersDelete           = "PEERS_DELETE"
	cmdPeersCredentialUpdate = "PEERS_CREDENTIAL_UPDATE"
	cmdPeersEvents           = "PEERS_EVENTS"
	cmdPeersStatus           = "PEERS_STATUS"
	cmdDataCreate            = "DATA_CREATE"
	cmdDataDelete            = "DATA_DELETE"
	cmdDataConnCreate        = "DATA_CONNECTION_CREATE"
	cmdDataConnDelete        = "DATA_CONNECTION_DELETE"
	cmdDataConnPut           = "DATA_CONNECTION_PUT"
	cmdDataConnEvents        = "DATA_CONNECTION_EVENTS"
	cmdDataConnStatus        = "DATA_CONNECTION_STATUS"
	cmdMediaCreate           = "MEDIA_CREATE"
	cmdMediaDelete           = "MEDIA_DELETE"
	cmdRTCPCreate            = "RTCP_CREATE"
	cmdRTCPDelete            = "RTCP_DELETE"
	cmdMediaConnCreate       = "MEDIA_CONNECTION_CREATE"
	cmdMediaConnDelete       = "MEDIA_CONNECTION_DELETE"
	cmdMediaConnAnswer       = "MEDIA_CONNECTION_ANSWER"
	cmdMediaConnPLI          = "MEDIA_CONNECTION_PLI"
	cmdMediaConnEvents       = "MEDIA_CONNECTION_EVENTS"
	cmdMediaConnStatus       = "MEDIA_CONNECTION_STATUS"
	// Success bodies of two operations use other names in the spec.
	cmdPeersCall    = "PEERS_CALL"
	cmdPeersConnect = "PEERS_CONNECT"
)

type route struct {
	method, path, command string
	handle                op
}

func (s *Server) routeTable() []route {
	return []route{
		{"POST", "/peers", cmdPeersCreate, s.createPeer},
		{"DELETE", "/peers/{peer_id}", cmdPeersDelete, s.deletePeer},
		{"PUT", "/peers/{peer_id}/credential", cmdPeersCredentialUpdate, s.updateCredential},
		{"GET", "/peers/{peer_id}/events", cmdPeersEvents, s.peerEvents},
		{"GET", "/peers/{peer_id}/status", cmdPeersStatus, s.peerStatus},

		{"POST", "/data", cmdDataCreate, s.createData},
		{"DELETE", "/data/{data_id}", cmdDataDelete, s.deleteData},
		{"POST", "/data/connections", cmdDataConnCreate, s.createDataConnection},
		{"DELETE", "/data/connections/{data_connection_id}", cmdDataConnDelete, s.deleteDataConnection},
		{"PUT", "/data/connections/{data_connection_id}", cmdDataConnPut, s.putDataConnection},
		{"GET", "/data/connections/{data_connection_id}/events", cmdDataConnEvents, s.dataConnectionEvents},
		{"GET", "/data/connections/{data_connection_id}/status", cmdDataConnStatus, s.dataConnectionStatus},

		{"POST", "/media", cmdMediaCreate, s.createMedia},
		{"DELETE", "/media/{media_id}", cmdMediaDelete, s.deleteMedia},
		{"POST", "/media/rtcp", cmdRTCPCreate, s.createRTCP},
		{"DELETE", "/media/rtcp/{rtcp_id}", cmdRTCPDelete, s.deleteRTCP},
		{"POST", "/media/connections", cmdMediaConnCreate, s.createMediaConnection},
		{"DELETE", "/media/connections/{media_connection_id}", cmdMediaConnDelete, s.deleteMediaConnection},
		{"POST", "/media/connections/{media_connection_id}/answer", cmdMediaConnAnswer, s.answerMediaConnection},
		{"POST", "/media/connections/{media_connection_id}/pli", cmdMediaConnPLI, s.mediaConnectionPLI},
		{"GET", "/media/connections/{media_connection_id}/events", cmdMediaConnEvents, s.mediaConnectionEvents},
		{"GET", "/media/connections/{media_connection_id}/status", cmdMediaConnStatus, s.mediaConnectionStatus},
	}
}

func (s *Server) routes() *router.Router {
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	// Before the API's routes: it makes the router record their patterns.
	s.metricsRoutes(r)
	commands := map[string]string{} // path → command type, for 405 answers
	for _, rt := range s.routeTable() {
		rt := rt
		if _, ok := commands[rt.path]; !ok {
			commands[rt.path] = rt.command
		}
		r.Handle(rt.method, rt.path, func(ctx *fasthttp.RequestCtx) {
			if err := rt.handle(ctx); err != nil {
				writeError(ctx, rt.command, err)
			}
		})
	}
	r.GET("/openapi.yaml", func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/yaml")
		ctx.SetBody(api.Spec)
	})
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		// The router lists OPTIONS even with HandleOPTIONS off, and gw
		// answers OPTIONS with this very 405: leave it out.
		allow := strings.Join(slices.DeleteFunc(strings.Split(string(ctx.Response.Header.Peek("Allow")), ", "),
			func(m string) bool { return m == fasthttp.MethodOptions }), ", ")
		ctx.Response.Header.Set("Allow", allow)
		cmd := commandFor(commands, ctx)
		writeError(ctx, cmd, statusError(fasthttp.StatusMethodNotAllowed, "method",
			"%s is not allowed on %s (allowed: %s)", ctx.Method(), ctx.Path(), allow))
	}
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeError(ctx, "UNKNOWN", notFound("path", "no such operation: %s %s", ctx.Method(), ctx.Path()))
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		s.log.Error("handler panic", "method", string(ctx.Method()), "path", string(ctx.Path()), "panic", v)
		writeError(ctx, "UNKNOWN", statusError(fasthttp.StatusInternalServerError, "server", "internal error"))
	}
	return r
}

// commandFor finds the command type of the route a path matches, whatever
// the method, so a 405 names the resource's operation.
func commandFor(commands map[string]string, ctx *fasthttp.RequestCtx) string {
	for path, cmd := range commands {
		if matchPattern(path, string(ctx.Path())) {
			return cmd
		}
	}
	return "UNKNOWN"
}

// matchPattern matches a route pattern with {param} segments against a path.
func matchPattern(pattern, path string) bool {
	ps, xs := splitPath(pattern), splitPath(path)
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if len(ps[i]) > 1 && ps[i][0] == '{' {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func splitPath(p string) []string {
	var parts []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			parts = append(parts, p[start:i])
			start = i + 1
		}
	}
	return parts
}

func notImplemented(ctx *fasthttp.RequestCtx) *apiError {
	return statusError(fasthttp.StatusNotImplemented, "operation",
		"%s %s is not implemented yet in this gw", ctx.Method(), ctx.Path())
}

// transportError answers requests fasthttp rejects before routing (body too
// large, malformed HTTP) in the envelope.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	var status int
	var field, msg string
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, field, msg = fasthttp.StatusRequestEntityTooLarge, "body", "request body larger than the limit"
	case errors.Is(err, os.ErrDeadlineExceeded):
		status, field, msg = fasthttp.StatusRequestTimeout, "request", "request not complete within the read timeout"
	default:
		status, field, msg = fasthttp.StatusBadRequest, "request", "malformed HTTP request: "+err.Error()
	}
	cmd := "UNKNOWN"
	for _, rt := range s.routeTable() {
		if rt.method == string(ctx.Method()) && matchPattern(rt.path, string(ctx.Path())) {
			cmd = rt.command
			break
		}
	}
	writeError(ctx, cmd, statusError(status, field, "%s", msg))
}

// slogPrintf lets fasthttp log through slog.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// pathParam is a {name} segment of the path, unescaped: the router matches
// the raw path, and peer ids may hold spaces.
func pathParam(ctx *fasthttp.RequestCtx, name string) string {
	raw, _ := ctx.UserValue(name).(string)
	v, err := url.PathUnescape(raw)
	if err != nil {
		return raw
	}
	return v
}
