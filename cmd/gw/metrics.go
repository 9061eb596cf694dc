package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/internal/quietconn"
	"github.com/gw-project/gw/metrics"
)

// metricsServer answers GET /metrics on a listener of its own
// (--metrics-addr), so that Prometheus can reach gw on another address
// than the API's, which stays on loopback.
type metricsServer struct {
	ln   net.Listener
	srv  *fasthttp.Server
	once sync.Once
}

// listenMetrics binds addr; "" means no separate listener (nil, nil).
func listenMetrics(addr string, reg *metrics.Registry) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	h := reg.Handler()
	return &metricsServer{ln: quietconn.Listen(ln), srv: &fasthttp.Server{
		Name:        "gw",
		ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != "/metrics" {
				ctx.Error("only /metrics here", fasthttp.StatusNotFound)
				return
			}
			if !ctx.IsGet() && !ctx.IsHead() {
				ctx.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
				return
			}
			h(ctx)
		},
	}}, nil
}

func (m *metricsServer) serve() error { return m.srv.Serve(m.ln) }

// close stops serving and waits for requests in progress (bounded by ctx).
// It is safe on a nil server, before serve, and more than once.
func (m *metricsServer) close(ctx context.Context) error {
	if m == nil {
		return nil
	}
	var err error
	m.once.Do(func() {
		// Closed here too in case serve has not taken the listener yet;
		// fasthttp's own close of it then fails harmlessly.
		m.ln.Close()
		if err = m.srv.ShutdownWithContext(ctx); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}
