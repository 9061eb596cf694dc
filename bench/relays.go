package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A relay is one system under test carrying n streams from app UDP ports
// to the sink: two processes (the sending side and the receiving side),
// connected over WebRTC on loopback.
type relay interface {
	// ingress is where the app sends stream i.
	ingress() []netip.AddrPort
	// procs are the two sides: [0] takes the app's RTP, [1] delivers it.
	procs() [2]*child
	// goroutines of each side (-1 if unknown).
	goroutines() [2]int
	// srtp names the SRTP profile the sides negotiated, as far as known.
	srtp() string
	close()
}

// gwRelay is two gw processes: A's peer calls B's peer once per stream
// (video only, H.264), over REST as an app would, and B delivers each
// call's video to the sink.
type gwRelay struct {
	a, b  *gwProc
	ports []netip.AddrPort
}

// newGWRelay starts gw A (with the embedded signaling server) and gw B
// (registering there) and sets up n calls.
func newGWRelay(ctx context.Context, env *Env, o mediaOptions, n int, sink netip.AddrPort, bin string, args []string) (*gwRelay, error) {
	r := &gwRelay{}
	var err error
	common := append([]string{"--event-timeout", "2s"}, args...)
	lo, hi := o.PortMin, o.PortMin+(o.PortMax-o.PortMin)/4
	if r.a, err = startGW("gw A", bin, append([]string{"--port-range", fmt.Sprintf("%d-%d", lo, hi)}, common...), o.PprofDir != ""); err != nil {
		return nil, err
	}
	lo, hi = hi+1, o.PortMin+(o.PortMax-o.PortMin)/2
	if r.b, err = startGW("gw B", bin, append([]string{"--port-range", fmt.Sprintf("%d-%d", lo, hi),
		"--signaling-addr", "off", "--signaling-url", r.a.signalingURL}, common...), o.PprofDir != ""); err != nil {
		r.close()
		return nil, err
	}
	if err := r.setup(ctx, env, n, sink); err != nil {
		r.close()
		return nil, fmt.Errorf("%w\n-- gw A:\n%s\n-- gw B:\n%s", err, r.a.logs.String(), r.b.logs.String())
	}
	return r, nil
}

func (r *gwRelay) setup(ctx context.Context, env *Env, n int, sink netip.AddrPort) error {
	pa, err := r.a.createPeer(ctx, "bencha")
	if err != nil {
		return err
	}
	pb, err := r.b.createPeer(ctx, "benchb")
	if err != nil {
		return err
	}
	// B answers every CALL as it comes.
	answered := make(chan error, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		got := 0
		for got < n && actx.Err() == nil {
			var ev map[string]any
			err := r.b.api.call(actx, "GET", "/peers/"+pb.id+"/events?token="+pb.token, nil, 200, &ev)
			if isStatus(err, 408) {
				continue
			}
			if err != nil {
				answered <- err
				return
			}
			if ev["event"] != "CALL" {
				continue
			}
			params, _ := ev["call_params"].(map[string]any)
			mc, _ := params["media_connection_id"].(string)
			if err := r.b.api.call(actx, "POST", "/media/connections/"+mc+"/answer", map[string]any{
				"constraints": map[string]any{
					"video": false, "audio": false,
					"video_params": map[string]any{"band_width": 0, "codec": "H264", "payload_type": mediaPT},
				},
				"redirect_params": map[string]any{"video": map[string]any{"ip_v4": sink.Addr().String(), "port": sink.Port()}},
			}, 202, nil); err != nil {
				answered <- err
				return
			}
			got++
		}
		answered <- actx.Err()
	}()
	// A calls, a few at a time.
	r.ports = make([]netip.AddrPort, n)
	mcs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var m struct {
				MediaID string `json:"media_id"`
				Port    uint16 `json:"port"`
				IPv4    string `json:"ip_v4"`
			}
			if err := r.a.api.call(ctx, "POST", "/media", map[string]any{"is_video": true}, 201, &m); err != nil {
				errs <- err
				return
			}
			addr, err := netip.ParseAddr(m.IPv4)
			if err != nil {
				errs <- err
				return
			}
			r.ports[i] = netip.AddrPortFrom(addr, m.Port)
			var c struct {
				Params struct {
					ID string `json:"media_connection_id"`
				} `json:"params"`
			}
			if err := r.a.api.call(ctx, "POST", "/media/connections", map[string]any{
				"peer_id": pa.id, "token": pa.token, "target_id": pb.id,
				"constraints": map[string]any{
					"video": true, "audio": false, "videoReceiveEnabled": false, "audioReceiveEnabled": false,
					"video_params": map[string]any{"band_width": 0, "codec": "H264", "media_id": m.MediaID,
						"payload_type": mediaPT, "sampling_rate": 90000},
				},
			}, 202, &c); err != nil {
				errs <- err
				return
			}
			mcs[i] = c.Params.ID
			if _, err := r.a.api.waitEvent(ctx, "/media/connections/"+c.Params.ID+"/events", "READY"); err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	select {
	case err := <-answered:
		if err != nil {
			return err
		}
	case <-time.After(30 * time.Second):
		return errors.New("gw B did not answer every call")
	}
	env.Logf("    gw: %d calls ready", n)
	return nil
}

func (r *gwRelay) ingress() []netip.AddrPort { return r.ports }
func (r *gwRelay) procs() [2]*child          { return [2]*child{r.a.child, r.b.child} }
func (r *gwRelay) goroutines() [2]int        { return [2]int{r.a.goroutines(), r.b.goroutines()} }

// srtp: both gw processes offer AEAD_AES_128_GCM first (controlplane/webrtc.go)
// and pion's DTLS server picks the first of the client's profiles it has.
func (r *gwRelay) srtp() string { return "SRTP_AEAD_AES_128_GCM" }

func (r *gwRelay) close() {
	for _, g := range []*gwProc{r.a, r.b} {
		if g != nil {
			g.stop()
		}
	}
}

// baselineRelay is the two processes of bench/baseline.
type baselineRelay struct {
	send, recv *child
	sendAPI    *rest
	recvAPI    *rest
	ports      []netip.AddrPort
	profile    string
}

type baselineStats struct {
	Connected  int      `json:"connected"`
	Tracks     int      `json:"tracks"`
	Goroutines int      `json:"goroutines"`
	SRTP       []string `json:"srtp"`
	Ports      []int    `json:"ports"`
}

// newBaselineRelay starts the baseline's two processes with n streams on
// ports from portBase; srtp is "default" or "gcm128", or "none": the
// forward role (plain UDP forwarders, the two process hops alone).
func newBaselineRelay(ctx context.Context, env *Env, n, portBase int, srtp string, sink netip.AddrPort, rcvbuf int) (*baselineRelay, error) {
	r := &baselineRelay{profile: srtp}
	name, args := "baseline", []string{"-role", "recv", "-dst", sink.String(), "-srtp", srtp}
	if srtp == "none" {
		name, args = "udp-forward", []string{"-role", "forward", "-port-base", "0", "-dst", sink.String(), "-rcvbuf", strconv.Itoa(rcvbuf)}
	}
	recv, line, err := startChild(name+" recv", bins.baseline, args, true)
	if err != nil {
		return nil, err
	}
	r.recv = recv
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		r.close()
		return nil, fmt.Errorf("%s recv said %q", name, line)
	}
	r.recvAPI = newREST("http://" + addr)
	args = []string{"-role", "send", "-peer", "http://" + addr, "-srtp", srtp}
	if srtp == "none" {
		// The forward role's ports are open before it prints its line.
		var s baselineStats
		if err := r.recvAPI.call(ctx, "GET", "/stats", nil, http.StatusOK, &s); err != nil || len(s.Ports) != 1 {
			r.close()
			return nil, fmt.Errorf("udp-forward recv: no port (%v)", err)
		}
		args = []string{"-role", "forward", "-dst", fmt.Sprintf("127.0.0.1:%d", s.Ports[0])}
	}
	args = append(args, "-streams", strconv.Itoa(n), "-port-base", strconv.Itoa(portBase), "-rcvbuf", strconv.Itoa(rcvbuf))
	send, line, err := startChild(name+" send", bins.baseline, args, true)
	if err != nil {
		r.close()
		return nil, err
	}
	r.send = send
	addr, _ = strings.CutPrefix(line, "listening ")
	r.sendAPI = newREST("http://" + addr)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var s baselineStats
		if err := r.sendAPI.call(ctx, "GET", "/stats", nil, http.StatusOK, &s); err == nil && s.Connected == n && len(s.Ports) == n {
			for _, p := range s.Ports {
				r.ports = append(r.ports, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(p)))
			}
			break
		}
		if r.send.exited() || r.recv.exited() {
			err := fmt.Errorf("%s exited during setup\n-- send:\n%s\n-- recv:\n%s", name, r.send.logs.String(), r.recv.logs.String())
			r.close()
			return nil, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.close()
			return nil, fmt.Errorf("%s: %d streams not connected within 2 minutes", name, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	env.Logf("    %s (%s): %d streams ready", name, srtp, n)
	return r, nil
}

func (r *baselineRelay) stats(api *rest) baselineStats {
	s := baselineStats{Goroutines: -1}
	_ = api.call(context.Background(), "GET", "/stats", nil, http.StatusOK, &s)
	return s
}

func (r *baselineRelay) ingress() []netip.AddrPort { return r.ports }
func (r *baselineRelay) procs() [2]*child          { return [2]*child{r.send, r.recv} }
func (r *baselineRelay) goroutines() [2]int {
	return [2]int{r.stats(r.sendAPI).Goroutines, r.stats(r.recvAPI).Goroutines}
}

func (r *baselineRelay) srtp() string {
	if r.profile == "none" {
		return "none (no WebRTC)"
	}
	s := r.stats(r.recvAPI)
	if len(s.SRTP) == 0 {
		return "?"
	}
	b, _ := json.Marshal(s.SRTP)
	return strings.Trim(string(b), "[]\"")
}

func (r *baselineRelay) close() {
	r.send.stop()
	r.recv.stop()
}
