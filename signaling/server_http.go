package signaling

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/fasthttp/websocket"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
)

// banner is the official server's GET {path} body, byte for byte.
const banner = `{"name":"PeerJS Server","description":"A server side element to broker connections between PeerJS clients.","website":"https://peerjs.com/"}`

// Handler serves the WebSocket, the banner and the id/peers endpoints, and
// passes anything else to ServerOptions.Fallback.
func (s *Server) Handler() fasthttp.RequestHandler {
	return s.serveHTTP
}

func (s *Server) serveHTTP(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if path == s.wsPath && websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		s.serveWS(ctx)
		return
	}
	route, key := s.route(path)
	if route == "" {
		s.fallback(ctx)
		return
	}
	// The official server's API router runs cors({origin: true}) first:
	// the Origin is reflected, and preflights are answered here.
	ctx.Response.Header.Set("Vary", "Origin")
	if o := ctx.Request.Header.Peek("Origin"); len(o) > 0 {
		ctx.Response.Header.SetBytesV("Access-Control-Allow-Origin", o)
	}
	if ctx.IsOptions() {
		ctx.Response.Header.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
		if h := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(h) > 0 {
			ctx.Response.Header.SetBytesV("Access-Control-Allow-Headers", h)
			ctx.Response.Header.Set("Vary", "Origin, Access-Control-Request-Headers")
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		s.fallback(ctx)
		return
	}
	switch route {
	case "banner":
		if s.o.Index != nil && acceptsHTML(ctx) {
			s.o.Index(ctx)
			return
		}
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBodyString(banner)
	case "id":
		ctx.SetContentType("text/html; charset=utf-8")
		ctx.SetBodyString(s.freshID(key))
	case "peers":
		if !s.o.AllowDiscovery || !s.keyKnown(key) {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			ctx.SetContentType("text/plain; charset=utf-8")
			ctx.SetBodyString("Unauthorized")
			return
		}
		ids := s.peerIDs(key)
		b, _ := json.Marshal(ids)
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBody(b)
	}
}

// route classifies path as the official server's express routes would:
// "/" under the path (trailing slash optional), and "{key}/id" or
// "{key}/peers", case-insensitively, trailing slash optional.
func (s *Server) route(path string) (route, key string) {
	if path == s.path || path+"/" == s.path {
		return "banner", ""
	}
	rest, ok := strings.CutPrefix(path, s.path)
	if !ok {
		return "", ""
	}
	rest = strings.TrimSuffix(rest, "/")
	key, method, ok := strings.Cut(rest, "/")
	if !ok || key == "" {
		return "", ""
	}
	switch strings.ToLower(method) {
	case "id":
		return "id", key
	case "peers":
		return "peers", key
	}
	return "", ""
}

func (s *Server) fallback(ctx *fasthttp.RequestCtx) {
	if s.o.Fallback != nil {
		s.o.Fallback(ctx)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("Not Found")
}

func (s *Server) keyKnown(key string) bool {
	ks := s.keys.Load()
	if ks == nil {
		return true
	}
	_, ok := ks.Lookup(key)
	return ok
}

// freshID returns a random UUID not registered under key, as the official
// server does (for any key).
func (s *Server) freshID(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := uuid.NewString()
		if r := s.realms[key]; r == nil || r.clients[id] == nil {
			return id
		}
	}
}

func (s *Server) peerIDs(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := []string{}
	if r := s.realms[key]; r != nil {
		for id := range r.clients {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// serveWS upgrades and hands the socket to serveConn. Every refusal happens
// after the upgrade, as ERROR frames, like the official server.
func (s *Server) serveWS(ctx *fasthttp.RequestCtx) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ctx.Error("signaling server closed", fasthttp.StatusServiceUnavailable)
		return
	}
	q := ctx.QueryArgs()
	p := wsParams{
		key:    string(q.Peek("key")),
		id:     string(q.Peek("id")),
		token:  string(q.Peek("token")),
		origin: string(ctx.Request.Header.Peek("Origin")),
	}
	if q.Has("credential") {
		p.hasCredential = true
		p.credential = string(q.Peek("credential"))
	}
	if err := s.up.Upgrade(ctx, func(ws *websocket.Conn) { s.serveConn(ws, p) }); err != nil {
		s.log.Debug("signaling: upgrade failed", "err", err)
	}
}

// acceptsHTML: a browser navigating to the server (it asks for text/html
// first); PeerJS clients and scripts asking for the banner do not.
func acceptsHTML(ctx *fasthttp.RequestCtx) bool {
	return strings.Contains(string(ctx.Request.Header.Peek("Accept")), "text/html")
}
