package controlplane

import (
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/dataplane"
)

// The control plane's part of the metrics (Config.Metrics; nil: none):
// GET /metrics on the API listener, REST requests by route pattern, and the
// sources the registry reads at scrape time.

// metricsRoutes serves GET /metrics and has the router keep the pattern it
// matched, which instrument uses as the route label (the raw path would
// make a series per peer id). The router applies that setting to routes
// added after it, so this comes first.
func (s *Server) metricsRoutes(r *router.Router) {
	if s.cfg.Metrics == nil {
		return
	}
	r.SaveMatchedRoutePath = true
	r.GET("/metrics", s.cfg.Metrics.Handler())
}

// instrument wraps the router's handler: every answered request counts in
// gw_http_requests_total and gw_http_request_duration_seconds.
func (s *Server) instrument(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	m := s.cfg.Metrics
	if m == nil {
		return next
	}
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		next(ctx)
		route, _ := ctx.UserValue(router.MatchedRoutePathParam).(string)
		code := ctx.Response.StatusCode()
		if route == "" && code == fasthttp.StatusMethodNotAllowed {
			route = s.routePattern(string(ctx.Path()))
		}
		m.ObserveHTTP(route, string(ctx.Method()), code, time.Since(start))
	}
}

// routePattern is the pattern of the API route that path matches with some
// method, "" if none (metrics label it "unmatched").
func (s *Server) routePattern(path string) string {
	for _, rt := range s.routeTable() {
		if matchPattern(rt.path, path) {
			return rt.path
		}
	}
	return ""
}

// wireMetrics hands the registry what it reads at scrape time: the
// dataplanes, the media and data registries and the Server's
// PeerConnection states.
func (s *Server) wireMetrics() {
	m := s.cfg.Metrics
	if m == nil {
		return
	}
	var dps []dataplane.Dataplane
	for _, dp := range []dataplane.Dataplane{s.cfg.Dataplane, s.cfg.DataDataplane} {
		if dp != nil {
			dps = append(dps, dp)
		}
	}
	m.SetDataplane(dps...)
	if p, ok := s.cfg.ICENet.(interface{ Polling() int }); ok {
		m.SetICEPolling(p.Polling)
	}
	m.SetStreamSource(s.media)
	m.SetDataConnSource(s.data)
	m.SetPeerConnectionSource(s)
}
