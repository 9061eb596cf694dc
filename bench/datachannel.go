package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gw-project/gw/controlplane"
	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/udp"
	"github.com/gw-project/gw/signaling"
)

// The datachannel scenario: app UDP → gw A's data port → DataChannel (real
// pion, over loopback) → gw B → app UDP, and back. Two control planes and
// a signaling server run in this process, driven through their REST APIs as
// an app would. For each serialization and datagram size it measures each
// direction alone: the sending app keeps a window of bytes in flight
// (counted at the receiving app), so the chain runs as fast as it can
// without the kernel dropping anything, and the table gives what arrives.

func init() {
	register(Scenario{
		Name: "datachannel",
		Help: "app UDP → gw → DataChannel → gw → app UDP, per serialization and size, each direction: MB/s and messages/s",
		Run:  runDatachannel,
	})
}

var dcFlags = struct {
	sizes, sers, ports *string
	window             *int
}{
	sizes:  flag.String("datachannel.sizes", "1000,60000", "datagram sizes in bytes"),
	sers:   flag.String("datachannel.serializations", "BINARY,JSON,NONE", "serializations (BINARY, BINARY_UTF8, JSON, NONE)"),
	ports:  flag.String("datachannel.ports", "23000-23999", "port range of the two gateways (below the kernel's ephemeral range, so that no other program's stale traffic lands there)"),
	window: flag.Int("datachannel.window", 4<<20, "bytes the sending app keeps in flight"),
}

type dcOptions struct {
	Sizes            []int
	Serializations   []string
	PortMin, PortMax int
	Window           int
	Warmup, Measure  time.Duration
}

func runDatachannel(ctx context.Context, env *Env) (*Result, error) {
	o := dcOptions{Serializations: strings.Split(*dcFlags.sers, ","), Window: *dcFlags.window,
		Warmup: 300 * time.Millisecond, Measure: env.Duration}
	var err error
	if o.Sizes, err = intList(*dcFlags.sizes); err != nil {
		return nil, fmt.Errorf("-datachannel.sizes: %w", err)
	}
	lo, hi, ok := strings.Cut(*dcFlags.ports, "-")
	o.PortMin, err = strconv.Atoi(lo)
	if err == nil && ok {
		o.PortMax, err = strconv.Atoi(hi)
	}
	if err != nil || !ok {
		return nil, fmt.Errorf("-datachannel.ports %q: want MIN-MAX", *dcFlags.ports)
	}
	return datachannelScenario(ctx, env, o)
}

func datachannelScenario(ctx context.Context, env *Env, o dcOptions) (*Result, error) {
	rig, err := newDCRig(o)
	if err != nil {
		return nil, err
	}
	defer rig.close()
	res := &Result{Notes: []string{
		"one direction at a time; the sending app keeps " + strconv.Itoa(o.Window>>10) + " KiB in flight (fewer datagrams for small sizes), so nothing should be lost: dropped counts what did not arrive",
		"BINARY datagrams over 16297 bytes go as 16300-byte PeerJS chunks; JSON sends text datagrams as JSON strings",
		"both gateways, their pion stacks and the apps share this process and its CPUs",
	}}
	for _, ser := range o.Serializations {
		l, err := rig.link(ser)
		if err != nil {
			return res, fmt.Errorf("%s: %w", ser, err)
		}
		for _, size := range o.Sizes {
			for dir := range 2 {
				if ctx.Err() != nil {
					l.close()
					return res, ctx.Err()
				}
				m, err := l.measure(ctx, dir, size, o)
				if err != nil {
					l.close()
					return res, fmt.Errorf("%s, %d bytes, %s: %w", ser, size, dirName(dir), err)
				}
				env.Logf("%s %6d B %s: %.1f MB/s, %.0f msg/s", ser, size, dirName(dir), m.mbps, m.mps)
				res.Rows = append(res.Rows, Row{
					Labels: []Label{{"serialization", ser}, {"size", strconv.Itoa(size)}, {"direction", dirName(dir)}},
					Values: []Value{
						{"throughput", "MB/s", m.mbps, 1},
						{"rate", "msg/s", m.mps, 0},
						{"dropped", "msg", float64(m.dropped), 0},
					},
				})
			}
		}
		l.close()
	}
	return res, nil
}

func dirName(dir int) string {
	if dir == 0 {
		return "A→B"
	}
	return "B→A"
}

// dcRig is a signaling server and two gateways in this process.
type dcRig struct {
	sig   *signaling.Server
	gws   [2]*dcGateway
	peers [2]dcPeer
	http  *http.Client
}

type dcGateway struct {
	srv      *controlplane.Server
	dp, data dataplane.Dataplane
	api      *rest
}

type dcPeer struct{ id, token string }

func newDCRig(o dcOptions) (*dcRig, error) {
	quiet := slog.New(slog.DiscardHandler)
	r := &dcRig{http: &http.Client{Timeout: time.Minute}}
	sigLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.sig = signaling.NewServer(signaling.ServerOptions{Logger: quiet})
	go r.sig.Serve(sigLn)
	addr := netip.MustParseAddr("127.0.0.1")
	half := (o.PortMax - o.PortMin) / 2
	for i := range 2 {
		lo := o.PortMin + i*(half+1)
		g := &dcGateway{}
		r.gws[i] = g
		if g.dp, err = dataplane.New(dataplane.DefaultName(), dataplane.Config{Addr: addr, PortMin: lo, PortMax: lo + half}); err != nil {
			r.close()
			return nil, err
		}
		if g.data, err = dataplane.New(dataplane.DefaultName(), dataplane.Config{Addr: addr, PortMin: lo, PortMax: lo + half,
			BufSize: 64 << 10, BatchSize: 8}); err != nil {
			r.close()
			return nil, err
		}
		g.srv, err = controlplane.New(controlplane.Config{
			SignalingURL: "ws://" + sigLn.Addr().String() + "/peerjs", MediaAddr: addr,
			EventTimeout: time.Second, Dataplane: g.dp, DataDataplane: g.data, Logger: quiet,
			// As cmd/gw does: with the kernel's default receive buffer,
			// SCTP bursts overflow the ICE sockets, and each loss costs a
			// retransmission timeout.
			ICENet: udp.NewICENet(dataplane.DefaultSockBuf, 0, 0),
		})
		if err != nil {
			r.close()
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		g.api = newREST("http://" + ln.Addr().String())
		go g.srv.Serve(ln)
		var resp struct {
			Params struct {
				PeerID string `json:"peer_id"`
				Token  string `json:"token"`
			} `json:"params"`
		}
		id := "bench" + strconv.Itoa(i)
		if err := r.call(i, "POST", "/peers", map[string]any{"key": "peerjs", "domain": "localhost", "peer_id": id, "turn": false}, 201, &resp); err != nil {
			r.close()
			return nil, err
		}
		r.peers[i] = dcPeer{resp.Params.PeerID, resp.Params.Token}
		if _, err := r.waitEvent(i, "/peers/"+id+"/events?token="+resp.Params.Token, "OPEN"); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

func (r *dcRig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, g := range r.gws {
		if g == nil {
			continue
		}
		if g.srv != nil {
			_ = g.srv.Shutdown(ctx)
		}
		for _, dp := range []dataplane.Dataplane{g.data, g.dp} {
			if dp != nil {
				_ = dp.Close()
			}
		}
	}
	if r.sig != nil {
		_ = r.sig.Close()
	}
}

// call does one REST request on gateway i, decoding the answer into out.
func (r *dcRig) call(i int, method, path string, body any, want int, out any) error {
	return r.gws[i].api.call(context.Background(), method, path, body, want, out)
}

// waitEvent long-polls gateway i until the event named want.
func (r *dcRig) waitEvent(i int, path, want string) (map[string]any, error) {
	return r.gws[i].api.waitEvent(context.Background(), path, want)
}

// dcLink is one data connection with an app at each end.
type dcLink struct {
	r      *dcRig
	conn   [2]string
	port   [2]uint16
	app    [2]*dcApp
	dataID [2]string
}

// dcApp is an app's UDP socket, counting what it receives.
type dcApp struct {
	conn *net.UDPConn
	n, b atomic.Int64
	done chan struct{}
}

func newDCApp() (*dcApp, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	udp.SetReadBuffer(c, 32<<20)
	a := &dcApp{conn: c, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		buf := make([]byte, 70000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			a.b.Add(int64(n))
			a.n.Add(1)
		}
	}()
	return a, nil
}

func (a *dcApp) close() {
	a.conn.Close()
	<-a.done
}

func (r *dcRig) link(ser string) (*dcLink, error) {
	l := &dcLink{r: r}
	for i := range 2 {
		app, err := newDCApp()
		if err != nil {
			l.close()
			return nil, err
		}
		l.app[i] = app
		var d struct {
			DataID string `json:"data_id"`
			Port   uint16 `json:"port"`
		}
		if err := r.call(i, "POST", "/data", map[string]any{}, 201, &d); err != nil {
			l.close()
			return nil, err
		}
		l.dataID[i], l.port[i] = d.DataID, d.Port
	}
	redirect := func(i int) map[string]any {
		return map[string]any{"ip_v4": "127.0.0.1", "port": l.app[i].conn.LocalAddr().(*net.UDPAddr).Port}
	}
	var c struct {
		Params struct {
			ID string `json:"data_connection_id"`
		} `json:"params"`
	}
	a, b := r.peers[0], r.peers[1]
	if err := r.call(0, "POST", "/data/connections", map[string]any{
		"peer_id": a.id, "token": a.token, "target_id": b.id,
		"options": map[string]any{"serialization": ser, "dcInit": map[string]any{"ordered": true}},
		"params":  map[string]any{"data_id": l.dataID[0]}, "redirect_params": redirect(0),
	}, 202, &c); err != nil {
		l.close()
		return nil, err
	}
	l.conn[0] = c.Params.ID
	ev, err := r.waitEvent(1, "/peers/"+b.id+"/events?token="+b.token, "CONNECTION")
	if err != nil {
		l.close()
		return nil, err
	}
	l.conn[1], _ = ev["data_params"].(map[string]any)["data_connection_id"].(string)
	if err := r.call(1, "PUT", "/data/connections/"+l.conn[1], map[string]any{
		"feed_params": map[string]any{"data_id": l.dataID[1]}, "redirect_params": redirect(1),
	}, 200, nil); err != nil {
		l.close()
		return nil, err
	}
	for i := range 2 {
		if _, err := r.waitEvent(i, "/data/connections/"+l.conn[i]+"/events", "OPEN"); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *dcLink) close() {
	for i := range 2 {
		if l.conn[i] != "" {
			_ = l.r.call(i, "DELETE", "/data/connections/"+l.conn[i], nil, 204, nil)
		} else if l.dataID[i] != "" {
			_ = l.r.call(i, "DELETE", "/data/"+l.dataID[i], nil, 204, nil)
		}
		if l.app[i] != nil {
			l.app[i].close()
		}
	}
}

type dcMeasure struct {
	mbps, mps float64
	dropped   int64
}

// measure sends size-byte datagrams from side dir's app for warm-up plus
// the measurement window, keeping the window in flight, and counts what
// side 1-dir's app receives during the measurement.
func (l *dcLink) measure(ctx context.Context, dir, size int, o dcOptions) (dcMeasure, error) {
	tx, rx := l.app[dir], l.app[1-dir]
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.port[dir])
	// ASCII text: valid in every serialization (JSON sends it as a string).
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	// Bound datagrams in flight too: the kernel charges a socket buffer per
	// datagram (about 1 KiB of overhead each), and gw's port must hold
	// whatever a stalled channel leaves there.
	maxCount := min(4096, int64(o.Window)/int64(size+1024))
	n0, b0 := rx.n.Load(), rx.b.Load()
	var sent, sentBytes int64
	// The measurement starts after the warm-up and once something has
	// arrived: a fresh channel's first message can take longer than a
	// short warm-up (SCTP's slow start, a loaded machine).
	measureFrom := time.Now().Add(o.Warmup)
	var measureTo time.Time
	var mn, mb int64 // receiver counts at the start of the measurement
	measuring := false
	stall := time.Now()
	lastRx := rx.n.Load()
	for {
		now := time.Now()
		if !measuring && now.After(measureFrom) && rx.n.Load() > n0 {
			measuring, mn, mb = true, rx.n.Load(), rx.b.Load()
			measureFrom, measureTo = now, now.Add(o.Measure)
		}
		if measuring && now.After(measureTo) {
			break
		}
		if ctx.Err() != nil {
			return dcMeasure{}, ctx.Err()
		}
		inflight := sentBytes - (rx.b.Load() - b0)
		if inflight > int64(o.Window) || sent-(rx.n.Load()-n0) >= maxCount {
			if cur := rx.n.Load(); cur != lastRx {
				lastRx, stall = cur, now
			} else if now.Sub(stall) > 10*time.Second {
				return dcMeasure{}, errors.New("nothing arrived for 10 s")
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if _, err := tx.conn.WriteToUDPAddrPort(payload, dst); err != nil {
			return dcMeasure{}, err
		}
		sent++
		sentBytes += int64(size)
	}
	secs := time.Since(measureFrom).Seconds()
	gotN, gotB := rx.n.Load()-mn, rx.b.Load()-mb
	// Let the rest arrive before the next case.
	deadline := time.Now().Add(10 * time.Second)
	for rx.n.Load()-n0 < sent && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return dcMeasure{mbps: float64(gotB) / secs / 1e6, mps: float64(gotN) / secs, dropped: sent - (rx.n.Load() - n0)}, nil
}
