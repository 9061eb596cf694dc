package gwtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium, which .ci/run installs.
const ChromiumPath = "/usr/bin/chromium"

// Browser is a real headless Chromium driven over the DevTools protocol,
// with a fake camera and microphone.
type Browser struct {
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	console []string
}

// StartBrowser launches Chromium for the test; it is closed when the test
// ends. A missing Chromium fails the test (these tests must run).
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	path := ChromiumPath
	if p := os.Getenv("GW_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("Chromium not found at %s (apt-get install chromium; .ci/run does): %v", path, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			b.mu.Lock()
			b.console = append(b.console, string(e.Type)+": "+strings.Join(parts, " "))
			b.mu.Unlock()
		}
	}))
	b.ctx = ctx
	b.cancel = func() { cancel(); acancel() }
	// Start the browser now, so a failure to launch shows here.
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.cancel()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser console:\n%s", b.Console())
		}
		b.cancel()
	})
	return b
}

// Console is what the page logged so far.
func (b *Browser) Console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.console, "\n")
}

// Navigate loads url and waits for it.
func (b *Browser) Navigate(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its value into T.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.200s: %v", expr, err)
	}
	return v
}

// WaitJS polls a JavaScript expression until it is truthy, failing the
// test after timeout with what describe (another expression) says. A
// promise is awaited, and its value tested.
func (b *Browser) WaitJS(t testing.TB, expr string, timeout time.Duration, describe string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := Eval[bool](t, b, "Promise.resolve("+expr+").then((v) => !!v)")
		if ok {
			return
		}
		if time.Now().After(deadline) {
			detail := ""
			if describe != "" {
				detail = fmt.Sprint(Eval[any](t, b, describe))
			}
			t.Fatalf("waited %s for %s: %s", timeout, expr, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Run performs chromedp actions (clicks, typing: real input events, which
// count as user gestures) within a hang guard of a minute.
func (b *Browser) Run(t testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser actions: %v", err)
	}
}
