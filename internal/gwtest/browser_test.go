package gwtest

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The harness itself: Chromium starts, runs script, and hands out the fake
// camera and microphone on a loopback page (a secure context).
func TestBrowserFakeDevices(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><title>t</title>"))
	}))
	defer srv.Close()
	b := StartBrowser(t)
	b.Navigate(t, srv.URL)
	if v := Eval[int](t, b, "1+2"); v != 3 {
		t.Fatalf("1+2 = %d", v)
	}
	n := Eval[int](t, b, "navigator.mediaDevices.getUserMedia({video:true,audio:true}).then(s => s.getTracks().length)")
	if n != 2 {
		t.Fatalf("fake media tracks %d", n)
	}
}
