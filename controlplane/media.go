package controlplane

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/controlplane/mediarelay"
	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/bufpool"
)

// mediaRegistry holds media and rtcp ports and media connections.
//
// A port is in use while a connection holds a lease on it (from the call or
// answer that named it until the connection closes). A port in use cannot
// be deleted; when the last connection using it closes, the port closes
// with it (the spec: "media ports that no other MediaConnection uses are
// closed at the same time").
type mediaRegistry struct {
	mu    sync.Mutex
	media map[string]*mediaPort
	rtcp  map[string]*rtcpPort
	conns map[string]*mediaConn
	// bufs hold the packets remote tracks deliver to apps while they wait
	// to be sent (mediarelay.Delivery).
	bufs *bufpool.Pool
}

func newMediaRegistry() *mediaRegistry {
	return &mediaRegistry{
		media: map[string]*mediaPort{},
		rtcp:  map[string]*rtcpPort{},
		conns: map[string]*mediaConn{},
		bufs:  bufpool.New(readBufSize),
	}
}

// mediaPort is a Media object: the UDP port an app sends one stream's RTP
// to. Its sink is a fan-out to the pion track of every connection using it.
type mediaPort struct {
	id    string
	video bool
	port  dataplane.Port
	fan   mediarelay.Fanout
	users int // guarded by mediaRegistry.mu
}

// rtcpPort is an Rtcp object: the UDP port an app sends its RTCP to. What
// arrives goes to the remote of every connection using it.
type rtcpPort struct {
	id    string
	port  dataplane.Port
	users int // guarded by mediaRegistry.mu
	// binds are the connections fed, copy-on-write under mediaRegistry.mu.
	binds atomic.Pointer[[]*sendKind]
	// scratch is the worker's copy of a packet, rewritten per connection
	// (each has its own SSRC); only the port's worker touches it.
	scratch []byte
}

// Receive implements dataplane.Sink: the app's RTCP, its SSRC replaced by
// the one pion sends the app's stream under, to each connection's remote.
func (r *rtcpPort) Receive(batch []dataplane.Packet) {
	binds := r.binds.Load()
	if binds == nil {
		return
	}
	for i := range batch {
		if !mediarelay.IsRTCP(batch[i].Data) {
			continue
		}
		for _, k := range *binds {
			r.scratch = append(r.scratch[:0], batch[i].Data...)
			k.toRemote(r.scratch)
		}
	}
}

// lease is what one connection holds: the ports it named.
type lease struct {
	media []*mediaPort
	rtcp  []*rtcpPort
}

// acquire looks up the media and rtcp ports a call or answer names and marks
// them in use, all or nothing. mediaIDs[0] must be video, [1] audio ("" for
// none).
func (m *mediaRegistry) acquire(mediaIDs, rtcpIDs [2]string, fields [2]string) (*lease, [2]*mediaPort, [2]*rtcpPort, *apiError) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var mp [2]*mediaPort
	var rp [2]*rtcpPort
	for k := range 2 {
		if id := mediaIDs[k]; id != "" {
			p := m.media[id]
			if p == nil {
				return nil, mp, rp, notFound(fields[k]+".media_id", "no media %s (never created, deleted, or closed with the last connection that used it)", describe(id))
			}
			if p.video != (k == kindVideo) {
				return nil, mp, rp, forbidden(fields[k]+".media_id", "media %s is %s, not %s", describe(id), kindWord(p.video), kindWord(k == kindVideo))
			}
			mp[k] = p
		}
		if id := rtcpIDs[k]; id != "" {
			p := m.rtcp[id]
			if p == nil {
				return nil, mp, rp, notFound(fields[k]+".rtcp_id", "no rtcp %s (never created, deleted, or closed with the last connection that used it)", describe(id))
			}
			rp[k] = p
		}
	}
	l := &lease{}
	for k := range 2 {
		if mp[k] != nil {
			mp[k].users++
			l.media = append(l.media, mp[k])
		}
		if rp[k] != nil {
			rp[k].users++
			l.rtcp = append(l.rtcp, rp[k])
		}
	}
	return l, mp, rp, nil
}

// giveBack undoes acquire for a call or answer that failed before the
// connection used anything: nothing is closed.
func (m *mediaRegistry) giveBack(l *lease) {
	if l == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range l.media {
		p.users--
	}
	for _, p := range l.rtcp {
		p.users--
	}
}

// release ends a closed connection's lease: ports nobody else uses leave
// the registry, and are returned for the caller to close outside the lock.
func (m *mediaRegistry) release(l *lease) []dataplane.Port {
	if l == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []dataplane.Port
	for _, p := range l.media {
		if p.users--; p.users == 0 && m.media[p.id] == p {
			delete(m.media, p.id)
			out = append(out, p.port)
		}
	}
	for _, p := range l.rtcp {
		if p.users--; p.users == 0 && m.rtcp[p.id] == p {
			delete(m.rtcp, p.id)
			out = append(out, p.port)
		}
	}
	return out
}

// feed adds or removes k as a destination of its rtcp port.
func (m *mediaRegistry) feed(r *rtcpPort, k *sendKind, add bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next []*sendKind
	if cur := r.binds.Load(); cur != nil {
		for _, x := range *cur {
			if x != k {
				next = append(next, x)
			}
		}
	}
	if add {
		next = append(next, k)
	}
	r.binds.Store(&next)
}

func (m *mediaRegistry) addConn(c *mediaConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conns[c.id] = c
}

func (m *mediaRegistry) removeConn(c *mediaConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns[c.id] == c {
		delete(m.conns, c.id)
	}
}

func (m *mediaRegistry) conn(id string) *mediaConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns[id]
}

// counts reports how many media, rtcp ports and connections exist (tests).
func (m *mediaRegistry) counts() (media, rtcp, conns int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.media), len(m.rtcp), len(m.conns)
}

// closeAll closes every media object (shutdown): connections first, then
// the ports they no longer feed.
func (m *mediaRegistry) closeAll() {
	m.mu.Lock()
	conns := make([]*mediaConn, 0, len(m.conns))
	for _, c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.close("shutdown")
	}
	m.mu.Lock()
	var ports []dataplane.Port
	for id, p := range m.media {
		ports = append(ports, p.port)
		delete(m.media, id)
	}
	for id, p := range m.rtcp {
		ports = append(ports, p.port)
		delete(m.rtcp, id)
	}
	m.mu.Unlock()
	for _, p := range ports {
		_ = p.Close()
	}
}

const (
	kindVideo = 0
	kindAudio = 1
)

func kindWord(video bool) string {
	if video {
		return "video"
	}
	return "audio"
}

// openPort opens a dataplane port, turning a full range into the API's
// answer.
func (s *Server) openPort() (dataplane.Port, *apiError) {
	p, err := s.cfg.Dataplane.Open()
	if err != nil {
		if errors.Is(err, dataplane.ErrRangeExhausted) {
			return nil, badRequest("port", "no UDP port left to open: %v; delete media, rtcp or data ports no longer needed", err)
		}
		return nil, badRequest("port", "cannot open a UDP port: %v", err)
	}
	return p, nil
}

// portParams are the address fields of MediaParameters, MediaRtcpParameters.
func (s *Server) portAddr(p dataplane.Port) (port uint16, v4, v6 string) {
	a := s.cfg.MediaAddr
	if !a.IsValid() {
		a = p.LocalAddr().Addr()
	}
	if a.Unmap().Is4() {
		return p.LocalAddr().Port(), a.Unmap().String(), ""
	}
	return p.LocalAddr().Port(), "", a.String()
}

type mediaOptions struct {
	IsVideo *bool `json:"is_video"`
}

type portResponse struct {
	MediaID string `json:"media_id,omitempty"`
	RTCPID  string `json:"rtcp_id,omitempty"`
	Port    uint16 `json:"port"`
	IPv4    string `json:"ip_v4,omitempty"`
	IPv6    string `json:"ip_v6,omitempty"`
}

// POST /media
func (s *Server) createMedia(ctx *fasthttp.RequestCtx) *apiError {
	var o mediaOptions
	if err := decodeBody(ctx.PostBody(), &o); err != nil {
		return err
	}
	if o.IsVideo == nil {
		return badRequest("is_video", "is_video field is not specified")
	}
	port, aerr := s.openPort()
	if aerr != nil {
		return aerr
	}
	prefix := "au-"
	if *o.IsVideo {
		prefix = "vi-"
	}
	mp := &mediaPort{id: prefix + uuid.NewString(), video: *o.IsVideo, port: port}
	if s.cfg.ICENet != nil {
		mp.fan.Batch = s.cfg.ICENet
	}
	port.SetSink(&mp.fan)
	s.media.mu.Lock()
	s.media.media[mp.id] = mp
	s.media.mu.Unlock()
	num, v4, v6 := s.portAddr(port)
	s.log.Info("media open", "media", mp.id, "port", num)
	writeJSON(ctx, fasthttp.StatusCreated, portResponse{MediaID: mp.id, Port: num, IPv4: v4, IPv6: v6})
	return nil
}

// DELETE /media/{media_id}
func (s *Server) deleteMedia(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "media_id")
	m := s.media
	m.mu.Lock()
	p := m.media[id]
	switch {
	case p == nil:
		m.mu.Unlock()
		return notFound("media_id", "no media %s", describe(id))
	case p.users > 0:
		m.mu.Unlock()
		return forbidden("media_id", "media %s is in use by %d media connection(s); close them first", describe(id), p.users)
	}
	delete(m.media, id)
	m.mu.Unlock()
	_ = p.port.Close()
	s.log.Info("media closed", "media", id)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// POST /media/rtcp
func (s *Server) createRTCP(ctx *fasthttp.RequestCtx) *apiError {
	// The body is "{}" in the spec, but not required: accept none, and
	// refuse only what is not a JSON object.
	if body := ctx.PostBody(); len(body) > 0 {
		var o map[string]any
		if err := decodeBody(body, &o); err != nil {
			return err
		}
	}
	port, aerr := s.openPort()
	if aerr != nil {
		return aerr
	}
	rp := &rtcpPort{id: "rc-" + uuid.NewString(), port: port, scratch: make([]byte, 0, dataplane.DefaultBufSize)}
	port.SetSink(rp)
	s.media.mu.Lock()
	s.media.rtcp[rp.id] = rp
	s.media.mu.Unlock()
	num, v4, v6 := s.portAddr(port)
	s.log.Info("rtcp open", "rtcp", rp.id, "port", num)
	writeJSON(ctx, fasthttp.StatusCreated, portResponse{RTCPID: rp.id, Port: num, IPv4: v4, IPv6: v6})
	return nil
}

// DELETE /media/rtcp/{rtcp_id}
func (s *Server) deleteRTCP(ctx *fasthttp.RequestCtx) *apiError {
	id := pathParam(ctx, "rtcp_id")
	m := s.media
	m.mu.Lock()
	p := m.rtcp[id]
	switch {
	case p == nil:
		m.mu.Unlock()
		return notFound("rtcp_id", "no rtcp %s", describe(id))
	case p.users > 0:
		m.mu.Unlock()
		return forbidden("rtcp_id", "rtcp %s is in use by %d media connection(s); close them first", describe(id), p.users)
	}
	delete(m.rtcp, id)
	m.mu.Unlock()
	_ = p.port.Close()
	s.log.Info("rtcp closed", "rtcp", id)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// egressFamilyOK reports whether the shared send port can reach a.
func (s *Server) egressFamilyOK(a netip.Addr) bool {
	return egressReaches(s.cfg.Dataplane.Egress().LocalAddr(), a)
}
