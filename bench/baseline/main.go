// Command baseline is the naive relay the benchmark suite measures gw
// against: the media path written the way pion's rtp-to-webrtc example
// does it, one packet at a time, nothing batched, nothing pooled.
//
// Two processes make one relay, like two gw processes do:
//
//	baseline -role recv -api 127.0.0.1:Q -dst 127.0.0.1:SINK
//	baseline -role send -api 127.0.0.1:P -peer http://127.0.0.1:Q -streams N -port-base B
//
// The send side opens UDP ports B..B+N-1 (one per stream), and for each a
// PeerConnection with a TrackLocalStaticRTP: every datagram read with
// ReadFromUDP is written with WriteRTP. It offers each PeerConnection to the
// recv side over HTTP (POST /offer, the whole SDP after ICE gathering, no
// trickle). The recv side answers, and for each track that arrives runs a
// loop of ReadRTP, Marshal, WriteToUDP to -dst.
//
// Both serve GET /stats: streams connected, goroutines, the SRTP profile
// DTLS negotiated. The bench process reads CPU and memory from /proc.
//
// A third role takes WebRTC out, for the cost of the two process hops
// alone:
//
//	baseline -role forward -streams N -port-base B -dst 127.0.0.1:D
//
// opens ports B..B+N-1 (B 0: ports the kernel picks) and sends each
// datagram read there with ReadFromUDP on to -dst with WriteToUDP.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

var (
	role     = flag.String("role", "", "send, recv or forward")
	apiAddr  = flag.String("api", "127.0.0.1:0", "HTTP address for /offer (recv) and /stats")
	peerURL  = flag.String("peer", "", "send: base URL of the recv side")
	dst      = flag.String("dst", "", "recv, forward: where received RTP goes (host:port)")
	streams  = flag.Int("streams", 1, "send, forward: number of streams (one PeerConnection, or one port, each)")
	portBase = flag.Int("port-base", 31000, "send, forward: first UDP port apps send RTP to (forward: 0 lets the kernel pick)")
	srtpMode = flag.String("srtp", "default", "SRTP profiles offered: default (pion's: AES-256-GCM first) or gcm128 (AES-128-GCM first, what gw prefers)")
	rcvbuf   = flag.Int("rcvbuf", 0, "send, forward: SO_RCVBUF of each app-facing UDP socket (0: the kernel default, as in pion's example)")
)

// codec is what both sides use: H.264, as a camera pipeline sends.
var codec = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

type stats struct {
	Role       string   `json:"role"`
	Streams    int      `json:"streams"`
	Connected  int      `json:"connected"`
	Tracks     int      `json:"tracks"`
	Goroutines int      `json:"goroutines"`
	SRTP       []string `json:"srtp"`
	Ports      []int    `json:"ports,omitempty"`
	Packets    uint64   `json:"packets"`
}

var (
	mu        sync.Mutex
	pcs       []*webrtc.PeerConnection
	ports     []int
	connected atomic.Int32
	tracks    atomic.Int32
	packets   atomic.Uint64
)

func main() {
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("baseline " + *role + ": ")
	ln, err := net.Listen("tcp", *apiAddr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", serveStats)
	switch *role {
	case "recv":
		d, err := net.ResolveUDPAddr("udp4", *dst)
		if err != nil {
			log.Fatalf("-dst: %v", err)
		}
		out, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			log.Fatal(err)
		}
		mux.HandleFunc("POST /offer", func(w http.ResponseWriter, r *http.Request) { answer(w, r, out, d) })
	case "send":
		if *peerURL == "" {
			log.Fatal("-peer is required")
		}
	case "forward":
		d, err := net.ResolveUDPAddr("udp4", *dst)
		if err != nil {
			log.Fatalf("-dst: %v", err)
		}
		if err := forwardAll(d); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatal("-role send, recv or forward")
	}
	go func() { _ = http.Serve(ln, mux) }()
	// The bench process reads the address from the first line.
	fmt.Printf("listening %s\n", ln.Addr())
	if *role == "send" {
		go func() {
			if err := sendAll(); err != nil {
				log.Fatal(err)
			}
		}()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	mu.Lock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
	mu.Unlock()
}

// newAPI is pion with its defaults (codecs, interceptors), candidates on
// the loopback interface only, and the chosen SRTP profiles.
func newAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if *srtpMode == "gcm128" {
		se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func track(pc *webrtc.PeerConnection) {
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			connected.Add(1)
		}
	})
	mu.Lock()
	pcs = append(pcs, pc)
	mu.Unlock()
}

// sendAll sets up every stream, one after the other.
func sendAll() error {
	api := newAPI()
	for i := range *streams {
		port := *portBase + i
		conn, err := appPort(port)
		if err != nil {
			return err
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return err
		}
		track(pc)
		t, err := webrtc.NewTrackLocalStaticRTP(codec, "video", fmt.Sprintf("bench%d", i))
		if err != nil {
			return err
		}
		sender, err := pc.AddTrack(t)
		if err != nil {
			return err
		}
		// Read RTCP, as pion's examples do, so interceptors see it.
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
		if err := offer(pc); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		go relayIn(conn, t)
		mu.Lock()
		ports = append(ports, port)
		mu.Unlock()
	}
	return nil
}

// appPort opens a port apps send to (0: one the kernel picks), with
// -rcvbuf.
func appPort(port int) (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err == nil && *rcvbuf > 0 {
		_ = conn.SetReadBuffer(*rcvbuf)
	}
	return conn, err
}

// relayIn is the example's loop: one ReadFromUDP, one WriteRTP.
func relayIn(conn *net.UDPConn, t *webrtc.TrackLocalStaticRTP) {
	buf := make([]byte, 1600)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		pkt := &rtp.Packet{}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if err := t.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
		packets.Add(1)
	}
}

// forwardAll opens the forward role's ports, each with its loop.
func forwardAll(d *net.UDPAddr) error {
	for i := range *streams {
		port := 0
		if *portBase != 0 {
			port = *portBase + i
		}
		conn, err := appPort(port)
		if err != nil {
			return err
		}
		go forward(conn, d)
		mu.Lock()
		ports = append(ports, conn.LocalAddr().(*net.UDPAddr).Port)
		mu.Unlock()
		connected.Add(1)
	}
	return nil
}

// forward is the relay's loop with WebRTC taken out: one ReadFromUDP, one
// WriteToUDP.
func forward(conn *net.UDPConn, d *net.UDPAddr) {
	buf := make([]byte, 1600)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if _, err := conn.WriteToUDP(buf[:n], d); err == nil {
			packets.Add(1)
		}
	}
}

// offer sends pc's complete offer to the recv side and applies its answer.
func offer(pc *webrtc.PeerConnection) error {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return err
	}
	<-done
	body, err := json.Marshal(pc.LocalDescription())
	if err != nil {
		return err
	}
	resp, err := http.Post(*peerURL+"/offer", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("offer: %s: %s", resp.Status, b)
	}
	var a webrtc.SessionDescription
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	return pc.SetRemoteDescription(a)
}

// answer takes one offer: a PeerConnection whose tracks go to d.
func answer(w http.ResponseWriter, r *http.Request, out *net.UDPConn, d *net.UDPAddr) {
	var o webrtc.SessionDescription
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pc, err := newAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	track(pc)
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		tracks.Add(1)
		relayOut(t, out, d)
	})
	if err := pc.SetRemoteDescription(o); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a, err := pc.CreateAnswer(nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(a); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	<-done
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(pc.LocalDescription())
}

// relayOut is the receiving half: ReadRTP, Marshal, WriteToUDP.
func relayOut(t *webrtc.TrackRemote, out *net.UDPConn, d *net.UDPAddr) {
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		b, err := pkt.Marshal()
		if err != nil {
			continue
		}
		if _, err := out.WriteToUDP(b, d); err != nil {
			continue
		}
		packets.Add(1)
	}
}

func serveStats(w http.ResponseWriter, _ *http.Request) {
	st := stats{Role: *role, Streams: *streams, Connected: int(connected.Load()), Tracks: int(tracks.Load()),
		Goroutines: runtime.NumGoroutine(), Packets: packets.Load()}
	mu.Lock()
	st.Ports = append(st.Ports, ports...)
	list := append([]*webrtc.PeerConnection(nil), pcs...)
	mu.Unlock()
	seen := map[string]bool{}
	for _, pc := range list {
		for _, s := range pc.GetStats() {
			if ts, ok := s.(webrtc.TransportStats); ok && ts.SRTPCipher != "" && !seen[ts.SRTPCipher] {
				seen[ts.SRTPCipher] = true
				st.SRTP = append(st.SRTP, ts.SRTPCipher)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
