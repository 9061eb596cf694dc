package controlplane

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/dataplane"
)

// Data ports (POST /data) and the registry of data connections. The
// connections themselves are in dataconn.go.

// defaultHighWater is how many bytes a reliable data channel may hold
// before the port feeding it stops being read: enough to keep a loopback
// or LAN SCTP association busy, small next to the port's 4 MiB socket
// buffer that holds what arrives meanwhile.
const defaultHighWater = 1 << 20

// dataRegistry holds data ports and data connections. Its lock also guards
// which connection each port feeds (dataPort.user, dataConn.feed), so that
// a port feeds at most one live connection.
type dataRegistry struct {
	mu    sync.Mutex
	ports map[string]*dataPort
	conns map[string]*dataConn
	// released remembers closed data ids for a while, to tell "closed" from
	// "never existed" in errors.
	released map[string]bool
	closed   bool
	// highWater is the reliable channels' high-water mark (tests lower it).
	highWater uint64
}

// dataPort is a Data object: a local UDP port whose datagrams feed a data
// connection.
type dataPort struct {
	id   string
	port dataplane.Port
	user *dataConn // the live connection it feeds, if any
}

func newDataRegistry() *dataRegistry {
	return &dataRegistry{
		ports:     map[string]*dataPort{},
		conns:     map[string]*dataConn{},
		released:  map[string]bool{},
		highWater: defaultHighWater,
	}
}

// closeAll closes every data connection and port (shutdown).
func (d *dataRegistry) closeAll() {
	d.mu.Lock()
	d.closed = true
	conns := make([]*dataConn, 0, len(d.conns))
	for _, c := range d.conns {
		conns = append(conns, c)
	}
	ports := make([]*dataPort, 0, len(d.ports))
	for id, dp := range d.ports {
		ports = append(ports, dp)
		delete(d.ports, id)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.close("shutdown")
	}
	for _, dp := range ports {
		_ = dp.port.Close()
	}
}

// dataPlane opens data ports: the dedicated one if configured (data needs
// buffers for whole datagrams of up to 64 KiB), else the media one.
func (s *Server) dataPlane() dataplane.Dataplane {
	if s.cfg.DataDataplane != nil {
		return s.cfg.DataDataplane
	}
	return s.cfg.Dataplane
}

// dataSockParams is DataSockParameters.
type dataSockParams struct {
	DataID string `json:"data_id"`
	Port   uint16 `json:"port"`
	IPv4   string `json:"ip_v4,omitempty"`
	IPv6   string `json:"ip_v6,omitempty"`
}

// POST /data
func (s *Server) createData(ctx *fasthttp.RequestCtx) *apiError {
	// The spec asks for "{}"; an empty body is taken as that too.
	if body := ctx.PostBody(); len(body) > 0 {
		var o map[string]any
		if err := decodeBody(body, &o); err != nil {
			return err
		}
	}
	port, err := s.dataPlane().Open()
	if err != nil {
		if errors.Is(err, dataplane.ErrRangeExhausted) {
			return badRequest("port", "no UDP port left for data: %v; delete data, media or rtcp ports no longer needed", err)
		}
		return badRequest("port", "cannot open a UDP port for data: %v", err)
	}
	dp := &dataPort{id: "da-" + uuid.NewString(), port: port}
	d := s.data
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		_ = port.Close()
		return statusError(fasthttp.StatusServiceUnavailable, "server", "gw is shutting down")
	}
	d.ports[dp.id] = dp
	d.mu.Unlock()
	sp := dataSockParams{DataID: dp.id, Port: port.LocalAddr().Port()}
	if a := s.cfg.MediaAddr.Unmap(); a.Is4() {
		sp.IPv4 = a.String()
	} else {
		sp.IPv6 = a.String()
	}
	s.log.Debug("data port open", "data_id", dp.id, "port", sp.Port)
	writeJSON(ctx, fasthttp.StatusCreated, sp)
	return nil
}

// DELETE /data/{data_id}
func (s *Server) deleteData(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "data_id")
	d := s.data
	d.mu.Lock()
	dp, aerr := d.lookupPortLocked("data_id", id)
	if aerr == nil && dp.user != nil {
		aerr = forbidden("data_id", "data %s is in use by data connection %s; delete that first", describe(id), dp.user.id)
	}
	if aerr != nil {
		d.mu.Unlock()
		return aerr
	}
	d.releaseLocked(dp)
	d.mu.Unlock()
	_ = dp.port.Close()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// lookupPortLocked finds a data port for a request; field names the
// request's field in errors.
func (d *dataRegistry) lookupPortLocked(field, id string) (*dataPort, *apiError) {
	if dp := d.ports[id]; dp != nil {
		return dp, nil
	}
	if d.released[id] {
		return nil, notFound(field, "data %s was closed", describe(id))
	}
	return nil, notFound(field, "no data %s", describe(id))
}

// releaseLocked forgets a data port (the caller closes it) and remembers
// its id for a while.
func (d *dataRegistry) releaseLocked(dp *dataPort) {
	delete(d.ports, dp.id)
	d.released[dp.id] = true
	id := dp.id
	time.AfterFunc(retiredKeep, func() {
		d.mu.Lock()
		delete(d.released, id)
		d.mu.Unlock()
	})
}

// parseDataRedirect reads DataConnectionRedirectOptions: ip_v4 wins over
// ip_v6, as the spec says; one of them and port are required.
func parseDataRedirect(prefix string, r *dataRedirectBody, egress netip.AddrPort) (netip.AddrPort, *apiError) {
	var addr netip.Addr
	switch {
	case r.IPv4 != nil:
		a, err := netip.ParseAddr(*r.IPv4)
		if err != nil || !a.Is4() {
			return netip.AddrPort{}, badRequest(prefix+"ip_v4", "%sip_v4 %s is not an IPv4 address", prefix, describe(*r.IPv4))
		}
		addr = a
	case r.IPv6 != nil:
		a, err := netip.ParseAddr(*r.IPv6)
		if err != nil || !a.Is6() {
			return netip.AddrPort{}, badRequest(prefix+"ip_v6", "%sip_v6 %s is not an IPv6 address", prefix, describe(*r.IPv6))
		}
		addr = a
	default:
		return netip.AddrPort{}, badRequest(prefix+"ip_v4", "%sip_v4 or %sip_v6 is required", prefix, prefix)
	}
	if r.Port == nil {
		return netip.AddrPort{}, badRequest(prefix+"port", "%sport field is not specified", prefix)
	}
	if err := intRange(prefix+"port", *r.Port, 1, 65535); err != nil {
		return netip.AddrPort{}, err
	}
	if !egressReaches(egress, addr) {
		field := prefix + "ip_v4"
		if r.IPv4 == nil {
			field = prefix + "ip_v6"
		}
		return netip.AddrPort{}, badRequest(field, "gw sends data from %s and cannot reach %s", egress.Addr(), addr)
	}
	return netip.AddrPortFrom(addr, uint16(*r.Port)), nil
}

// egressReaches reports whether the send port bound at egress can send
// to a: an IPv4 socket cannot reach IPv6 and the other way round, unless
// the socket is dual-stack.
func egressReaches(egress netip.AddrPort, a netip.Addr) bool {
	local := egress.Addr()
	switch {
	case local.Unmap().Is4():
		return a.Unmap().Is4()
	case local.IsUnspecified():
		return true
	default:
		return a.Is6() && !a.Is4In6()
	}
}

type dataRedirectBody struct {
	IPv4 *string `json:"ip_v4"`
	IPv6 *string `json:"ip_v6"`
	Port *int64  `json:"port"`
}
