// Command gw is a self-hosted WebRTC gateway: a local REST API (SkyWay
// WebRTC Gateway 0.4.3 compatible), plain UDP ports for the app's media and
// data, and an embedded PeerJS-compatible signaling server.
//
//	gw [flags]                  run the gateway
//	gw signaling [flags]        run only the signaling server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gw-project/gw/controlplane"
	"github.com/gw-project/gw/dataplane"
	"github.com/gw-project/gw/dataplane/udp" // also registers std and mmsg
	"github.com/gw-project/gw/metrics"
	"github.com/gw-project/gw/signaling"
	"github.com/gw-project/gw/signaling/viewer"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// lingerRate is the media ports' packet rate (and, counted apart, the ICE
// sockets' read rate) over which --dataplane-linger holds reads: two
// datagrams a millisecond, so that a tick gathers several, and the 1,000
// packets/s stream the latency goal is judged on is never held.
const lingerRate = 2000

// lingerFor is --dataplane-linger as it acts: only the batched dataplane,
// and the ICE sockets with it, have it.
func lingerFor(dataplaneName string, d time.Duration) time.Duration {
	if dataplaneName != "mmsg" {
		return 0
	}
	return d
}

// lingerMode says how --dataplane-linger acts, for the ready line.
func lingerMode(dataplaneName string, d time.Duration) string {
	if d = lingerFor(dataplaneName, d); d == 0 {
		return "off"
	}
	return d.String()
}

// options are gw's settings after flags, environment and config file.
type options struct {
	apiAddr         string
	signalingAddr   string
	signalingURL    string
	signalingKeys   string
	signalingOpen   bool
	mediaAddr       string
	portRange       string
	eventTimeout    time.Duration
	logLevel        string
	iceServers      listFlag
	icePolicy       string
	dataplane       string
	dataplaneCPUs   string
	linger          time.Duration
	shutdownTimeout time.Duration
	pprofAddr       string
	metricsAddr     string
	metricsMax      int
	adaptiveProcs   bool
}

func gatewayFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("gw", flag.ContinueOnError)
	fs.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:8000", "listen address of the REST API")
	fs.StringVar(&o.signalingAddr, "signaling-addr", "127.0.0.1:9000", "listen address of the embedded signaling server, or \"off\"")
	fs.StringVar(&o.signalingURL, "signaling-url", "", "PeerJS WebSocket endpoint peers register at (default: the embedded server, ws://<signaling-addr>/peerjs)")
	fs.StringVar(&o.signalingKeys, "signaling-keys", "", "TOML key file of the embedded signaling server (keys, domains, secrets)")
	fs.BoolVar(&o.signalingOpen, "signaling-open", false, "let the embedded signaling server listen on a non-loopback address without a key file")
	fs.StringVar(&o.mediaAddr, "media-addr", "127.0.0.1", "IP on which media, rtcp and data ports open; reported as ip_v4")
	fs.StringVar(&o.portRange, "port-range", "50001-51000", "local UDP ports handed out, in order")
	fs.DurationVar(&o.eventTimeout, "event-timeout", 30*time.Second, "how long an event long-poll waits before answering 408")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Var(&o.iceServers, "ice-server", "STUN/TURN server as URL[,USERNAME,CREDENTIAL], used by peers created with turn: true (repeatable)")
	fs.StringVar(&o.icePolicy, "ice-transport-policy", controlplane.ICETransportPolicyAll, "all, or relay: peers created with turn: true send all WebRTC traffic through the TURN servers of --ice-server")
	fs.StringVar(&o.dataplane, "dataplane", dataplane.DefaultName(), "dataplane implementation: "+strings.Join(dataplane.Names(), ", "))
	fs.StringVar(&o.dataplaneCPUs, "dataplane-cpus", "", "CPUs dataplane workers are pinned to, e.g. 0,2-3 (default: not pinned)")
	fs.DurationVar(&o.linger, "dataplane-linger", 2*time.Millisecond, "while media ports (or, apart, the WebRTC sockets) receive over 2,000 packets/s in all, read those whose packets arrive spread out every this long, in batches, rather than on each packet's arrival (less CPU, at most this much added latency); 0: off")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long shutdown waits for peers to close")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's profiles (net/http/pprof) at http://ADDR/debug/pprof/, for profiling gw (default: off)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "also serve GET /metrics on this address (default: only on the API listener)")
	fs.IntVar(&o.metricsMax, "metrics-max-streams", metrics.DefaultMaxStreams, "media streams (and data connections) with series of their own in /metrics; more only count in the aggregates")
	fs.BoolVar(&o.adaptiveProcs, "adaptive-procs", true, "run Go code on one thread while gw's load fits in one CPU, and on all when it does not (fewer thread wake-ups per packet); off when GOMAXPROCS is set or --dataplane-cpus pins workers")
	fs.String("config", "", "TOML config file (gw's keys, or the original gateway's config.toml)")
	return fs
}

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "signaling" {
		return runSignaling(args[1:], stderr)
	}
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stderr, "gw", version)
		return 0
	}
	var o options
	fs := gatewayFlags(&o)
	fs.SetOutput(stderr)
	if err := parseAll(fs, "GW_", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "gw:", err)
		return 2
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 2
	}
	if o.pprofAddr != "" {
		if err := startPprof(o.pprofAddr, log); err != nil {
			fmt.Fprintln(stderr, "gw:", err)
			return 2
		}
	}
	if err := runGateway(o, log); err != nil {
		log.Error("gw stopped", "err", err)
		return 1
	}
	return 0
}

// parseAll parses the command line, then fills the rest from the
// environment and the config file.
func parseAll(fs *flag.FlagSet, envPrefix string, args []string) error {
	file, err := loadConfigFile(findConfigPath(args))
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return applyEnvAndFile(fs, envPrefix, file)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// parseICEServer reads URL[,USERNAME,CREDENTIAL].
func parseICEServer(s string) (controlplane.ICEServer, error) {
	parts := strings.Split(s, ",")
	url := strings.TrimSpace(parts[0])
	if !strings.HasPrefix(url, "stun:") && !strings.HasPrefix(url, "stuns:") &&
		!strings.HasPrefix(url, "turn:") && !strings.HasPrefix(url, "turns:") {
		return controlplane.ICEServer{}, fmt.Errorf("ice server %q: URL must start with stun:, stuns:, turn: or turns:", s)
	}
	srv := controlplane.ICEServer{URLs: []string{url}}
	switch len(parts) {
	case 1:
	case 3:
		srv.Username, srv.Credential = parts[1], parts[2]
	default:
		return controlplane.ICEServer{}, fmt.Errorf("ice server %q: want URL or URL,USERNAME,CREDENTIAL", s)
	}
	return srv, nil
}

// runGateway runs until SIGINT/SIGTERM, then closes every peer and port.
func runGateway(o options, log *slog.Logger) error {
	mediaIP, err := parseIP(o.mediaAddr)
	if err != nil {
		return err
	}
	lo, hi, err := parsePortRange(o.portRange)
	if err != nil {
		return err
	}
	cpus, err := parseCPUs(o.dataplaneCPUs)
	if err != nil {
		return err
	}
	var ice []controlplane.ICEServer
	for _, s := range o.iceServers {
		srv, err := parseICEServer(s)
		if err != nil {
			return err
		}
		ice = append(ice, srv)
	}
	if o.eventTimeout <= 0 {
		return errors.New("event timeout must be positive")
	}
	if o.metricsMax < 0 {
		return errors.New("--metrics-max-streams must not be negative")
	}
	reg := metrics.New(metrics.Options{Version: version, MaxStreams: o.metricsMax})

	// Listen first, so a taken port fails fast before anything else starts.
	var sig *signaling.Server
	var sigLn net.Listener
	if o.signalingAddr != "off" {
		sig, err = newSignalingServer(o.signalingAddr, o.signalingKeys, o.signalingOpen, "--signaling-keys", "--signaling-open", log, reg.SignalingObserver())
		if err != nil {
			return err
		}
		if sigLn, err = net.Listen("tcp", o.signalingAddr); err != nil {
			return fmt.Errorf("signaling listener: %w", err)
		}
		if o.signalingURL == "" {
			o.signalingURL = "ws://" + sigLn.Addr().String() + "/peerjs"
		}
	} else if o.signalingURL == "" {
		return errors.New("--signaling-addr off needs --signaling-url")
	}
	// Until the servers own them, the listeners are closed on every
	// error path.
	var apiLn net.Listener
	serving := false
	defer func() {
		if serving {
			return
		}
		for _, ln := range []net.Listener{sigLn, apiLn} {
			if ln != nil {
				ln.Close()
			}
		}
	}()
	if apiLn, err = net.Listen("tcp", o.apiAddr); err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	ms, err := listenMetrics(o.metricsAddr, reg)
	if err != nil {
		return err
	}
	defer ms.close(context.Background()) // on the error paths below

	dp, err := dataplane.New(o.dataplane, dataplane.Config{Addr: mediaIP, PortMin: lo, PortMax: hi, CPUs: cpus,
		Linger: o.linger, LingerRate: lingerRate})
	if err != nil {
		return err
	}
	defer dp.Close()
	// Data ports take whole datagrams of up to 64 KiB (media ones an MTU's
	// worth), so they come from a plane of their own over the same range;
	// few buffers per port, since data apps rarely burst like media.
	dataDP, err := dataplane.New(o.dataplane, dataplane.Config{Addr: mediaIP, PortMin: lo, PortMax: hi, CPUs: cpus,
		BufSize: 64 << 10, BatchSize: 8})
	if err != nil {
		return err
	}
	defer dataDP.Close()

	cp, err := controlplane.New(controlplane.Config{
		SignalingURL:       o.signalingURL,
		MediaAddr:          mediaIP,
		EventTimeout:       o.eventTimeout,
		ICEServers:         ice,
		ICETransportPolicy: o.icePolicy,
		ICENet:             udp.NewICENet(dataplane.DefaultSockBuf, lingerFor(dp.Name(), o.linger), lingerRate),
		Dataplane:          dp,
		DataDataplane:      dataDP,
		Metrics:            reg,
		Logger:             log,
	})
	if err != nil {
		return err
	}

	procsMode, stopGoverning := governProcs(o.adaptiveProcs, len(cpus) > 0, log)
	defer stopGoverning()

	serving = true
	errc := make(chan error, 3)
	if sig != nil {
		go func() { errc <- sig.Serve(sigLn) }()
		log.Info("signaling server listening", "addr", sigLn.Addr().String())
	}
	go func() { errc <- cp.Serve(apiLn) }()
	if ms != nil {
		go func() { errc <- ms.serve() }()
		log.Info("metrics listening", "addr", ms.ln.Addr().String())
	}
	log.Info("gw ready", "version", version, "api", apiLn.Addr().String(), "signaling_url", o.signalingURL,
		"media_addr", mediaIP, "ports", o.portRange, "dataplane", dp.Name(), "linger", lingerMode(dp.Name(), o.linger),
		"gomaxprocs", procsMode)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	var runErr error
	select {
	case s := <-stop:
		log.Info("shutting down", "signal", s.String())
	case runErr = <-errc:
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	// Peers leave signaling before the embedded server goes away.
	if err := cp.Shutdown(ctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("api shutdown: %w", err)
	}
	if err := ms.close(ctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("metrics shutdown: %w", err)
	}
	if sig != nil {
		if err := sig.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("signaling shutdown: %w", err)
		}
	}
	if err := dp.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if err := dataDP.Close(); err != nil && runErr == nil {
		runErr = err
	}
	log.Info("gw stopped")
	return runErr
}

// newSignalingServer builds the embedded (or standalone) signaling server,
// refusing a non-loopback address without keys unless told to be open.
// keysFlag and openFlag name the flags in the refusal.
func newSignalingServer(addr, keysPath string, open bool, keysFlag, openFlag string, log *slog.Logger, observe func(msgType, result string)) (*signaling.Server, error) {
	var keys *signaling.KeyStore
	if keysPath != "" {
		var err error
		if keys, err = signaling.LoadKeys(keysPath); err != nil {
			return nil, err
		}
	} else if !isLoopbackAddr(addr) && !open {
		return nil, fmt.Errorf("signaling server on non-loopback address %s without a key file: give %s, or %s to accept any key", addr, keysFlag, openFlag)
	}
	// The viewer page answers browsers at the server's root.
	return signaling.NewServer(signaling.ServerOptions{
		Keys:     keys,
		Index:    viewer.Index,
		Fallback: viewer.Assets,
		Logger:   log.With("component", "signaling"),
		Observe:  observe,
	}), nil
}

// runSignaling is `gw signaling`: the signaling server alone.
func runSignaling(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gw signaling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address")
	keys := fs.String("keys", "", "TOML key file (keys, domains, secrets)")
	open := fs.Bool("open", false, "allow a non-loopback address without a key file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.String("config", "", "TOML config file")
	if err := parseAll(fs, "GW_SIGNALING_", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "gw signaling:", err)
		return 2
	}
	log, err := newLogger(*level, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gw signaling:", err)
		return 2
	}
	srv, err := newSignalingServer(*addr, *keys, *open, "--keys", "--open", log, nil)
	if err != nil {
		log.Error("gw signaling", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("gw signaling", "err", err)
		return 1
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("signaling server listening", "addr", ln.Addr().String())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	select {
	case <-stop:
	case err := <-errc:
		log.Error("gw signaling", "err", err)
		return 1
	}
	if err := srv.Close(); err != nil {
		log.Error("gw signaling", "err", err)
		return 1
	}
	return 0
}
