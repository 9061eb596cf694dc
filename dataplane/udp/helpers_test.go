package udp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gw-project/gw/dataplane"
)

func TestMain(m *testing.M) {
	if port := os.Getenv("GW_TEST_HOLD_PORT"); port != "" {
		holdPort(port)
		return
	}
	goleak.VerifyTestMain(m)
}

// holdPort is the body of the helper process that plays "another program
// holding a port": it binds the port on all addresses, says so, and keeps it
// until its stdin closes.
func holdPort(port string) {
	c, err := net.ListenPacket("udp4", "0.0.0.0:"+port)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	c.Close()
}

// holdInOtherProcess makes a child process hold port until the test ends.
func holdInOtherProcess(t *testing.T, port int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("GW_TEST_HOLD_PORT=%d", port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper process: %q %v", line, err)
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")

// hangGuard bounds every wait in these tests. It is not a timing
// assertion: a healthy run finishes far sooner.
const hangGuard = 60 * time.Second

// forEachImpl runs f as a subtest for every registered implementation.
func forEachImpl(t *testing.T, f func(t *testing.T, name string)) {
	t.Helper()
	names := dataplane.Names()
	if len(names) == 0 {
		t.Fatal("no implementation registered")
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) { f(t, n) })
	}
}

// freeRange finds n consecutive ports that nothing holds right now, below
// the kernel's ephemeral range so that other sockets are unlikely to take
// them meanwhile.
func freeRange(t *testing.T, n int) (int, int) {
	t.Helper()
	for range 200 {
		lo := 20000 + rand.IntN(12000-n)
		ok := true
		var held []*net.UDPConn
		for p := lo; p < lo+n; p++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return lo, lo + n - 1
		}
	}
	t.Fatal("no free port range")
	return 0, 0
}

// newDP builds implementation name over a fresh range of n ports.
func newDP(t *testing.T, name string, n int, mod func(*dataplane.Config)) dataplane.Dataplane {
	dp, _ := newDPCfg(t, name, n, mod)
	return dp
}

func newDPCfg(t *testing.T, name string, n int, mod func(*dataplane.Config)) (dataplane.Dataplane, dataplane.Config) {
	t.Helper()
	lo, hi := freeRange(t, n)
	cfg := dataplane.Config{Addr: loopback, PortMin: lo, PortMax: hi}
	if mod != nil {
		mod(&cfg)
	}
	dp, err := dataplane.New(name, cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { dp.Close() })
	return dp, cfg
}

func openPort(t *testing.T, dp dataplane.Dataplane) dataplane.Port {
	t.Helper()
	p, err := dp.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return p
}

// packet fills b with datagram seq: its number, then bytes derived from it.
func packet(b []byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq*7 + uint64(i))
	}
	return b
}

// checkPacket returns the sequence number of b or an error if its bytes
// are not what packet wrote.
func checkPacket(b []byte) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("short datagram of %d bytes", len(b))
	}
	seq := binary.BigEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq*7+uint64(i)) {
			return seq, fmt.Errorf("seq %d: byte %d is %#x", seq, i, b[i])
		}
	}
	return seq, nil
}

// sizeOf gives datagram seq a size between 8 and 1407 bytes; runs of
// equal sizes (with a shorter last one) exercise GSO coalescing.
func sizeOf(seq uint64) int {
	run := seq / 16
	size := 8 + int(run*97%1400)
	if seq%16 == 15 {
		size = 8 + size/2
	}
	return size
}

// checker is a sink that verifies order and content of numbered datagrams.
type checker struct {
	next    uint64 // worker only
	got     atomic.Uint64
	sizes   func(uint64) int
	wantSrc netip.AddrPort

	mu   sync.Mutex
	errs []error
}

func (c *checker) Receive(batch []dataplane.Packet) {
	for _, p := range batch {
		seq, err := checkPacket(p.Data)
		switch {
		case err != nil:
			c.fail(err)
		case seq != c.next:
			c.fail(fmt.Errorf("got seq %d, want %d", seq, c.next))
		case c.sizes != nil && len(p.Data) != c.sizes(seq):
			c.fail(fmt.Errorf("seq %d: %d bytes, want %d", seq, len(p.Data), c.sizes(seq)))
		case c.wantSrc.IsValid() && p.Addr != c.wantSrc:
			c.fail(fmt.Errorf("seq %d from %v, want %v", seq, p.Addr, c.wantSrc))
		}
		c.next = seq + 1
	}
	c.got.Add(uint64(len(batch)))
}

func (c *checker) fail(err error) {
	c.mu.Lock()
	if len(c.errs) < 10 {
		c.errs = append(c.errs, err)
	}
	c.mu.Unlock()
}

func (c *checker) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
}

// waitFor polls cond until it holds or the hang guard expires.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sender is a plain socket apps would use.
func sender(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receiver is a plain socket with a large buffer, for what ports send.
func receiver(t *testing.T) *net.UDPConn {
	t.Helper()
	c := sender(t)
	_ = c.SetReadBuffer(8 << 20)
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}
