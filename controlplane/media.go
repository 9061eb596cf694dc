package controlplane

import "github.com/valyala/fasthttp"

// mediaRegistry holds media and rtcp ports and media connections.
type mediaRegistry struct{}

func newMediaRegistry() *mediaRegistry { return &mediaRegistry{} }

// closeAll closes every media object (shutdown).
func (m *mediaRegistry) closeAll() {}

// acceptCall takes a remote's media OFFER.
func (s *Server) acceptCall(p *peer, src string, o pjOffer) {
	s.log.Warn("incoming call ignored: media connections are not implemented yet", "peer", p.id, "src", src)
}

func (s *Server) createMedia(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) deleteMedia(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) createRTCP(ctx *fasthttp.RequestCtx) *apiError  { return notImplemented(ctx) }
func (s *Server) deleteRTCP(ctx *fasthttp.RequestCtx) *apiError  { return notImplemented(ctx) }
func (s *Server) createMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	return notImplemented(ctx)
}
func (s *Server) deleteMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	return notImplemented(ctx)
}
func (s *Server) answerMediaConnection(ctx *fasthttp.RequestCtx) *apiError {
	return notImplemented(ctx)
}
func (s *Server) mediaConnectionPLI(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) mediaConnectionEvents(ctx *fasthttp.RequestCtx) *apiError {
	return notImplemented(ctx)
}
func (s *Server) mediaConnectionStatus(ctx *fasthttp.RequestCtx) *apiError {
	return notImplemented(ctx)
}
