package viewer_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
	"github.com/gw-project/gw/signaling"
	"github.com/gw-project/gw/signaling/viewer"
)

// serve runs a signaling server with the viewer mounted, as gw does.
func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := signaling.NewServer(signaling.ServerOptions{
		Index: viewer.Index, Fallback: viewer.Assets,
		ExpireTimeout: 500 * time.Millisecond,
	})
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestBuiltWithPeerJS(t *testing.T) {
	if !viewer.HasPeerJS() {
		t.Fatal("the PeerJS client library is not embedded: run `make web` (make build and make test do)")
	}
}

func TestRoutes(t *testing.T) {
	base := serve(t)
	code, ct, body := get(t, base+"/", "text/html,application/xhtml+xml")
	if code != 200 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "gw viewer") {
		t.Fatalf("page: %d %s", code, ct)
	}
	// Scripts and PeerJS clients still get the official banner.
	if code, _, body := get(t, base+"/", ""); code != 200 || !strings.Contains(body, `"name":"PeerJS Server"`) {
		t.Fatalf("banner: %d %s", code, body)
	}
	for path, want := range map[string]int{
		"/viewer/app.js":               200,
		"/viewer/app.css":              200,
		"/viewer/vendor/peerjs.min.js": 200,
		"/viewer/index.html":           404,
		"/viewer/../viewer.go":         404,
		"/viewer/nothing.js":           404,
	} {
		if code, _, _ := get(t, base+path, ""); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

// In a real browser the page registers at the signaling server through
// PeerJS and says clearly when the gw peer it calls is not there.
func TestPageReportsMissingPeer(t *testing.T) {
	base := serve(t)
	b := gwtest.StartBrowser(t)
	b.Navigate(t, base+"/?peer=nobody")
	b.WaitJS(t, `window.gwViewer && gwViewer.status === "failed"`, 30*time.Second, `window.gwViewer && gwViewer.detail`)
	detail := gwtest.Eval[string](t, b, "gwViewer.detail")
	if !strings.Contains(detail, "nobody") || !strings.Contains(detail, "not connected") {
		t.Fatalf("status detail %q", detail)
	}
	if shown := gwtest.Eval[string](t, b, `document.getElementById("status").textContent`); shown != detail {
		t.Fatalf("page shows %q", shown)
	}
}
