package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gw-project/gw/dataplane"
)

// TestBurstIntegrity sends 100k numbered datagrams of varied sizes in bursts
// and checks that the sink sees every one, in order, intact, from the right
// source. The sender keeps at most a window in flight, so the kernel never
// has cause to drop. "socket" sends like an app, one datagram per syscall;
// "send" sends with another port's Send, which for mmsg means GSO, and so
// GRO-coalesced buffers on the receiving mmsg port.
func TestBurstIntegrity(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		for _, mode := range []string{"socket", "send"} {
			t.Run(mode, func(t *testing.T) {
				dp := newDP(t, name, 2, nil)
				p := openPort(t, dp)
				dst := p.LocalAddr()
				c := &checker{sizes: sizeOf}

				var send func([][]byte)
				switch mode {
				case "socket":
					s := sender(t)
					c.wantSrc = addrOf(s)
					send = func(pkts [][]byte) {
						for _, b := range pkts {
							if _, err := s.WriteToUDPAddrPort(b, dst); err != nil {
								t.Fatal(err)
							}
						}
					}
				case "send":
					src := openPort(t, dp)
					c.wantSrc = src.LocalAddr()
					send = func(pkts [][]byte) {
						if n, err := src.Send(pkts, dst); err != nil || n != len(pkts) {
							t.Fatalf("Send: %d of %d: %v", n, len(pkts), err)
						}
					}
				}
				p.SetSink(c)

				const (
					total  = 100_000
					burst  = 200
					window = 1000 // in flight at most: well within the socket buffer
				)
				bufs := make([][]byte, burst)
				for i := range bufs {
					bufs[i] = make([]byte, 2048)
				}
				pkts := make([][]byte, burst)
				for seq := uint64(0); seq < total; {
					waitFor(t, "the port to catch up", func() bool { return seq-c.got.Load() <= window-burst })
					n := min(burst, total-int(seq))
					for k := range n {
						pkts[k] = packet(bufs[k][:sizeOf(seq)], seq)
						seq++
					}
					send(pkts[:n])
				}
				waitFor(t, "all datagrams", func() bool { return c.got.Load() >= total })
				c.check(t)

				st := p.Stats()
				if st.RxPackets != total {
					t.Errorf("RxPackets = %d, want %d", st.RxPackets, total)
				}
				if st.Drops != [dataplane.NumDropReasons]uint64{} {
					t.Errorf("drops: %v", st.Drops)
				}
				var hist uint64
				for _, h := range st.BatchHist {
					hist += h
				}
				if hist == 0 || hist > st.RxSyscalls {
					t.Errorf("batch histogram %v inconsistent with %d receive calls", st.BatchHist, st.RxSyscalls)
				}
				gro := coalesced(p)
				t.Logf("features %v, %d receive calls, %d coalesced buffers, hist %v",
					st.Features, st.RxSyscalls, gro, st.BatchHist)
				if mode == "send" && st.Features&dataplane.FeatureGRO != 0 &&
					st.Features&dataplane.FeatureGSO != 0 && gro == 0 {
					t.Error("GSO sender and GRO receiver, but no coalesced buffer arrived")
				}
			})
		}
	})
}

// recvAll reads n datagrams from r and checks them against want.
func recvAll(t *testing.T, r *net.UDPConn, want [][]byte, from netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 65536)
	_ = r.SetReadDeadline(time.Now().Add(hangGuard))
	for i, w := range want {
		n, addr, err := r.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, len(want), err)
		}
		if string(buf[:n]) != string(w) {
			seq, _ := checkPacket(buf[:n])
			t.Fatalf("datagram %d: got %d bytes (seq %d), want %d bytes", i, n, seq, len(w))
		}
		if from.IsValid() && addr != from {
			t.Fatalf("datagram %d from %v, want %v", i, addr, from)
		}
	}
}

// batchShapes are Send batches by datagram sizes: runs GSO coalesces,
// shorter last ones, runs too long for one GSO message, empty datagrams.
var batchShapes = map[string][]int{
	"single":       {100},
	"equal":        repeat(1200, 64),
	"shorter-last": append(repeat(1000, 10), 700),
	"mixed":        {100, 100, 100, 50, 50, 20, 1400, 1400, 8, 9, 9, 9, 300},
	"over-64-segs": repeat(200, 150),
	"over-64KiB":   repeat(1400, 60),
	"empty":        {0, 0, 100, 100, 0},
	"longer-after": {100, 100, 200, 200, 200},
	"many":         repeat(64, 1500),
}

func repeat(size, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func makeBatch(sizes []int) [][]byte {
	pkts := make([][]byte, len(sizes))
	for i, s := range sizes {
		if s == 0 {
			pkts[i] = []byte{}
			continue
		}
		pkts[i] = packet(make([]byte, max(s, 8))[:max(s, 8)], uint64(i))[:s]
	}
	return pkts
}

// TestSendBatches checks that Send delivers every shape of batch intact
// and in order, from ports and from the egress port.
func TestSendBatches(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		for _, from := range []dataplane.Port{p, dp.Egress()} {
			for shape, sizes := range batchShapes {
				t.Run(fmt.Sprintf("%s/%v", shape, from.LocalAddr()), func(t *testing.T) {
					r := receiver(t)
					pkts := makeBatch(sizes)
					before := from.Stats()
					n, err := from.Send(pkts, addrOf(r))
					if err != nil || n != len(pkts) {
						t.Fatalf("Send = %d, %v; want %d", n, err, len(pkts))
					}
					recvAll(t, r, pkts, from.LocalAddr())
					after := from.Stats()
					if d := after.TxPackets - before.TxPackets; d != uint64(len(pkts)) {
						t.Errorf("TxPackets grew by %d, want %d", d, len(pkts))
					}
					var nbytes uint64
					for _, b := range pkts {
						nbytes += uint64(len(b))
					}
					if d := after.TxBytes - before.TxBytes; d != nbytes {
						t.Errorf("TxBytes grew by %d, want %d", d, nbytes)
					}
				})
			}
		}
	})
}

// TestCloseWhileBusy closes a port while a sender hammers it: Close returns,
// and the sink is never called after it has.
func TestCloseWhileBusy(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		var closed atomic.Bool
		var got, after atomic.Int64
		p.SetSink(dataplane.SinkFunc(func(b []dataplane.Packet) {
			if closed.Load() {
				after.Add(1)
			}
			got.Add(int64(len(b)))
		}))
		s := sender(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := packet(make([]byte, 300), 0)
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = s.WriteToUDPAddrPort(b, p.LocalAddr())
				}
			}()
		}
		waitFor(t, "traffic", func() bool { return got.Load() > 1000 })
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		closed.Store(true)
		time.Sleep(20 * time.Millisecond) // the senders keep going
		close(stop)
		wg.Wait()
		if n := after.Load(); n != 0 {
			t.Errorf("sink called %d times after Close returned", n)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := p.Send([][]byte{{1}}, addrOf(s)); err == nil {
			t.Error("Send after Close succeeded")
		}
		if err := p.WriteTo([]byte{1}, addrOf(s)); err == nil {
			t.Error("WriteTo after Close succeeded")
		}
	})
}

// TestPortReuse checks lowest-first numbering and reuse after Close.
func TestPortReuse(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp, cfg := newDPCfg(t, name, 3, nil)
		var ps []dataplane.Port
		for i := range 3 {
			p := openPort(t, dp)
			if got := int(p.LocalAddr().Port()); got != cfg.PortMin+i {
				t.Fatalf("port %d: got %d, want %d", i, got, cfg.PortMin+i)
			}
			ps = append(ps, p)
		}
		ps[1].Close()
		p := openPort(t, dp)
		if got := int(p.LocalAddr().Port()); got != cfg.PortMin+1 {
			t.Errorf("after closing the middle port, got %d, want %d", got, cfg.PortMin+1)
		}
		// The reused port works.
		c := &checker{}
		p.SetSink(c)
		s := sender(t)
		if _, err := s.WriteToUDPAddrPort(packet(make([]byte, 20), 0), p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "datagram on reused port", func() bool { return c.got.Load() == 1 })
		c.check(t)
		p.Close()
		ps[0].Close()
		ps[2].Close()
		p = openPort(t, dp)
		if got := int(p.LocalAddr().Port()); got != cfg.PortMin {
			t.Errorf("after closing all, got %d, want %d", got, cfg.PortMin)
		}
	})
}

// TestRangeExhausted checks the error when every port is taken, and that
// asking again and again changes nothing.
func TestRangeExhausted(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp, cfg := newDPCfg(t, name, 2, nil)
		a := openPort(t, dp)
		openPort(t, dp)
		for range 5 {
			p, err := dp.Open()
			if !errors.Is(err, dataplane.ErrRangeExhausted) {
				t.Fatalf("Open on a full range: %v, %v", p, err)
			}
			if want := fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the range %s", err, want)
			}
		}
		a.Close()
		if p := openPort(t, dp); int(p.LocalAddr().Port()) != cfg.PortMin {
			t.Errorf("got %v after freeing the first port", p.LocalAddr())
		}
	})
}

// TestSkipsPortsOfOthers has another process hold the first port of the
// range (bound on all addresses, as an app would).
func TestSkipsPortsOfOthers(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp, cfg := newDPCfg(t, name, 3, nil)
		holdInOtherProcess(t, cfg.PortMin)
		holdInOtherProcess(t, cfg.PortMin+2)
		p := openPort(t, dp)
		if got := int(p.LocalAddr().Port()); got != cfg.PortMin+1 {
			t.Errorf("got port %d, want %d", got, cfg.PortMin+1)
		}
		_, err := dp.Open()
		if !errors.Is(err, dataplane.ErrRangeExhausted) {
			t.Fatalf("Open with the rest held elsewhere: %v", err)
		}
		if !strings.Contains(err.Error(), "2 by other") {
			t.Errorf("error %q does not count the ports others hold", err)
		}
	})
}

// TestNilSinkDrops checks that with no sink, datagrams are counted dropped.
func TestNilSinkDrops(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		s := sender(t)
		b := packet(make([]byte, 100), 0)
		for range 100 {
			if _, err := s.WriteToUDPAddrPort(b, p.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "no-sink drops", func() bool { return p.Stats().Drops[dataplane.DropNoSink] == 100 })
		if st := p.Stats(); st.RxPackets != 0 {
			t.Errorf("RxPackets = %d with no sink", st.RxPackets)
		}
	})
}

// TestSetSinkSwap swaps sinks (and none) while traffic flows: every
// datagram goes to exactly one sink or is counted dropped, in order.
func TestSetSinkSwap(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		var seen []uint64 // appended on the worker only
		var got atomic.Uint64
		mk := func() dataplane.Sink {
			return dataplane.SinkFunc(func(b []dataplane.Packet) {
				for _, pk := range b {
					seq, _ := checkPacket(pk.Data)
					seen = append(seen, seq)
				}
				got.Add(uint64(len(b)))
			})
		}
		sinks := []dataplane.Sink{mk(), mk(), nil}
		stop := make(chan struct{})
		swapped := make(chan int)
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					swapped <- n
					return
				default:
				}
				p.SetSink(sinks[n%len(sinks)])
				n++
				time.Sleep(50 * time.Microsecond)
			}
		}()
		const total = 20000
		s := sender(t)
		buf := make([]byte, 64)
		done := func() uint64 { return got.Load() + p.Stats().Drops[dataplane.DropNoSink] }
		for seq := uint64(0); seq < total; seq++ {
			if seq%100 == 0 {
				waitFor(t, "the port to catch up", func() bool { return seq-done() <= 1000 })
			}
			if _, err := s.WriteToUDPAddrPort(packet(buf, seq), p.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "all datagrams", func() bool { return done() == total })
		close(stop)
		t.Logf("%d swaps, %d delivered, %d dropped", <-swapped, got.Load(), total-got.Load())
		p.Close()
		for i := 1; i < len(seen); i++ {
			if seen[i] <= seen[i-1] {
				t.Fatalf("order: %d after %d", seen[i], seen[i-1])
			}
		}
	})
}

// TestTruncated checks that datagrams longer than BufSize are dropped and
// counted, whether they arrive alone or coalesced by GRO, and that the port
// goes on working.
func TestTruncated(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 2, func(c *dataplane.Config) { c.BufSize = 512 })
		p := openPort(t, dp)
		c := &checker{}
		p.SetSink(c)
		s := sender(t)
		if _, err := s.WriteToUDPAddrPort(packet(make([]byte, 600), 99), p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "truncation drop", func() bool { return p.Stats().Drops[dataplane.DropTruncated] == 1 })
		// Four 600-byte datagrams from a GSO sender: coalesced for a GRO
		// port, separate otherwise; dropped either way.
		src := newDP(t, dataplane.DefaultName(), 1, nil).Egress()
		if _, err := src.Send(makeBatch(repeat(600, 4)), p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "truncation drops", func() bool { return p.Stats().Drops[dataplane.DropTruncated] == 5 })
		if _, err := s.WriteToUDPAddrPort(packet(make([]byte, 512), 0), p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a datagram that fits", func() bool { return c.got.Load() == 1 })
		c.check(t)
	})
}

// TestOverflowDrops fills a tiny socket buffer while the sink blocks and
// checks that the kernel's drops show in Stats.
func TestOverflowDrops(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, func(c *dataplane.Config) { c.SockBuf = 1 })
		p := openPort(t, dp)
		if p.Stats().Features&dataplane.FeatureRxqOvfl == 0 {
			t.Skip("no kernel drop counter here")
		}
		release := make(chan struct{})
		var once sync.Once
		entered := make(chan struct{})
		p.SetSink(dataplane.SinkFunc(func([]dataplane.Packet) {
			once.Do(func() { close(entered) })
			<-release
		}))
		s := sender(t)
		b := packet(make([]byte, 1000), 0)
		if _, err := s.WriteToUDPAddrPort(b, p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		<-entered
		for range 500 {
			_, _ = s.WriteToUDPAddrPort(b, p.LocalAddr())
		}
		close(release)
		waitFor(t, "overflow drops", func() bool { return p.Stats().Drops[dataplane.DropOverflow] > 0 })
		t.Logf("drops %v", p.Stats().Drops)
	})
}

// TestCloseFromSink lets a sink close its own port.
func TestCloseFromSink(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a sink closing its port needs the worker's thread id")
	}
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 1, nil)
		p := openPort(t, dp)
		errc := make(chan error, 1)
		var calls atomic.Int32
		p.SetSink(dataplane.SinkFunc(func([]dataplane.Packet) {
			if calls.Add(1) == 1 {
				errc <- p.Close()
			}
		}))
		s := sender(t)
		for range 10 {
			_, _ = s.WriteToUDPAddrPort([]byte("x"), p.LocalAddr())
		}
		if err := <-errc; err != nil {
			t.Errorf("Close from sink: %v", err)
		}
		p.Close() // waits for the worker
		if n := calls.Load(); n != 1 {
			t.Errorf("sink called %d times, want 1", n)
		}
	})
}

// TestDataplaneClose closes the whole dataplane with ports open.
func TestDataplaneClose(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		dp := newDP(t, name, 3, nil)
		var ps []dataplane.Port
		for range 3 {
			ps = append(ps, openPort(t, dp))
		}
		if err := dp.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := dp.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := dp.Open(); err == nil {
			t.Error("Open after Close succeeded")
		}
		for _, p := range append(ps, dp.Egress()) {
			if err := p.WriteTo([]byte{1}, netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
				t.Errorf("%v still sends after the dataplane closed", p.LocalAddr())
			}
		}
	})
}

// TestDualStack binds the IPv6 unspecified address and talks IPv4 to it:
// sources arrive as plain IPv4 and replies go back.
func TestDualStack(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skip("no IPv6:", err)
	} else {
		c.Close()
	}
	forEachImpl(t, func(t *testing.T, name string) {
		lo, hi := freeRange(t, 1)
		dp, err := dataplane.New(name, dataplane.Config{Addr: netip.IPv6Unspecified(), PortMin: lo, PortMax: hi})
		if err != nil {
			t.Fatal(err)
		}
		defer dp.Close()
		p := openPort(t, dp)
		s := sender(t)
		c := &checker{wantSrc: addrOf(s)}
		p.SetSink(c)
		dst := netip.AddrPortFrom(loopback, p.LocalAddr().Port())
		if _, err := s.WriteToUDPAddrPort(packet(make([]byte, 40), 0), dst); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a datagram", func() bool { return c.got.Load() == 1 })
		c.check(t)
		pkts := makeBatch(repeat(300, 5))
		if _, err := p.Send(pkts, addrOf(s)); err != nil {
			t.Fatal(err)
		}
		recvAll(t, s, pkts, dst) // the reply comes from the port, as IPv4
	})
}
