package controlplane

import "github.com/valyala/fasthttp"

// dataRegistry holds data ports and data connections.
type dataRegistry struct{}

func newDataRegistry() *dataRegistry { return &dataRegistry{} }

// closeAll closes every data object (shutdown).
func (d *dataRegistry) closeAll() {}

// acceptConnect takes a remote's data OFFER.
func (s *Server) acceptConnect(p *peer, src string, o pjOffer) {
	s.log.Warn("incoming data connection ignored: data connections are not implemented yet", "peer", p.id, "src", src)
}

func (s *Server) createData(ctx *fasthttp.RequestCtx) *apiError           { return notImplemented(ctx) }
func (s *Server) deleteData(ctx *fasthttp.RequestCtx) *apiError           { return notImplemented(ctx) }
func (s *Server) createDataConnection(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) deleteDataConnection(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) putDataConnection(ctx *fasthttp.RequestCtx) *apiError    { return notImplemented(ctx) }
func (s *Server) dataConnectionEvents(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
func (s *Server) dataConnectionStatus(ctx *fasthttp.RequestCtx) *apiError { return notImplemented(ctx) }
