package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// dataBrowserPage serves a page with the PeerJS client registered at gw's
// signaling server as id. Each data connection it sees or makes is in
// window.conns, with what it received described in got: bytes as
// {t:"bin", n, h} (length and FNV-1a), strings {t:"str", v}, other values
// {t:"val", v}.
func dataBrowserPage(t *testing.T, e *testEnv, id string) *gwtest.Browser {
	t.Helper()
	lib, err := os.ReadFile(filepath.Join(gwtest.NPMDir(t), "node_modules", "peerjs", "dist", "peerjs.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	_, sigPort, _ := net.SplitHostPort(e.sigAddr)
	page := fmt.Sprintf(`<!doctype html><title>gw data test</title><script src="/peerjs.min.js"></script>
<script>
window.log = [];
window.conns = {};
const fnv = (u8) => { let h = 0x811c9dc5; for (const b of u8) { h ^= b; h = Math.imul(h, 0x01000193) >>> 0; } return h; };
const describe = (d) => {
  if (d instanceof ArrayBuffer) d = new Uint8Array(d);
  if (ArrayBuffer.isView(d)) { const u8 = new Uint8Array(d.buffer, d.byteOffset, d.byteLength); return {t: "bin", n: u8.length, h: fnv(u8)}; }
  if (typeof d === "string") return {t: "str", v: d};
  return {t: "val", v: d};
};
window.track = (c) => {
  const s = {conn: c, got: [], open: false, closed: false};
  window.conns[c.connectionId] = s;
  c.on("open", () => { s.open = true; });
  c.on("data", (d) => s.got.push(describe(d)));
  c.on("close", () => { s.closed = true; });
  c.on("error", (e) => log.push("conn error: " + e.type + " " + e));
  return c.connectionId;
};
window.bytes = (n) => { const u8 = new Uint8Array(n); for (let i = 0; i < n; i++) u8[i] = (i * 31 + 7) & 255; return u8; };
window.peer = new Peer(%q, {host: "127.0.0.1", port: %s, path: "/", key: "peerjs", config: {iceServers: []}, debug: 1});
peer.on("open", () => { window.opened = true; });
peer.on("error", (e) => log.push("peer error: " + e.type + " " + e));
peer.on("connection", (c) => { window.incoming = track(c); });
</script>`, id, sigPort)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/peerjs.min.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(lib)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	b := gwtest.StartBrowser(t)
	b.Navigate(t, srv.URL)
	b.WaitJS(t, "window.opened", 30*time.Second, "JSON.stringify(window.log)")
	return b
}

// pattern is the bytes window.bytes(n) makes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

type browserValue struct {
	T string          `json:"t"`
	N int             `json:"n"`
	H uint32          `json:"h"`
	V json.RawMessage `json:"v"`
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// A PeerJS browser connects to a gw peer with each serialization: gw
// answers, and messages go both ways as the framing says, chunked ones
// included; the browser's close closes gw's side.
func TestDataBrowserConnectsToGW(t *testing.T) {
	e := newTestEnv(t, withDataPlane())
	g := e.c.CreatePeer("gwdata")
	b := dataBrowserPage(t, e, "browserdata")
	big := pattern(60000)
	cases := []struct {
		ser, api string
		// JavaScript values the browser sends, and the datagrams they become.
		send []string
		want [][]byte
		// Datagrams the app sends, and what the browser must get.
		out     [][]byte
		outWant []browserValue
	}{
		{"binary", "BINARY",
			[]string{"new Uint8Array([1,2,3])", `"héllo"`, `({a: 1, b: [true, null]})`, "bytes(60000)"},
			[][]byte{{1, 2, 3}, []byte("héllo"), []byte(`{"a":1,"b":[true,null]}`), big},
			[][]byte{{0, 1, 255}, big, []byte("text")},
			[]browserValue{{T: "bin", N: 3, H: fnv32a([]byte{0, 1, 255})}, {T: "bin", N: 60000, H: fnv32a(big)}, {T: "bin", N: 4, H: fnv32a([]byte("text"))}}},
		// PeerJS 1.5 serves binary-utf8 with its binary class, which offers
		// "binary".
		{"binary-utf8", "BINARY",
			[]string{`"ünïcode"`, "bytes(20000)"},
			[][]byte{[]byte("ünïcode"), pattern(20000)},
			[][]byte{pattern(40000)},
			[]browserValue{{T: "bin", N: 40000, H: fnv32a(pattern(40000))}}},
		{"json", "JSON",
			[]string{`({x: [1, 2], y: "z"})`, `"héllo"`, "42"},
			[][]byte{[]byte(`{"x":[1,2],"y":"z"}`), []byte("héllo"), []byte("42")},
			[][]byte{[]byte(`{"x":[1,2]}`), []byte("plain text"), []byte(`"quoted"`), bytes.Repeat([]byte("j"), 50000)},
			[]browserValue{{T: "val", V: json.RawMessage(`{"x":[1,2]}`)}, {T: "str", V: json.RawMessage(`"plain text"`)},
				{T: "str", V: json.RawMessage(`"\"quoted\""`)}, {T: "str", V: json.RawMessage(`"` + string(bytes.Repeat([]byte("j"), 50000)) + `"`)}}},
		{"raw", "NONE",
			[]string{"new Uint8Array([9,8,7])", `"text frame"`, "bytes(60000)"},
			[][]byte{{9, 8, 7}, []byte("text frame"), big},
			[][]byte{{5, 6}, big},
			[]browserValue{{T: "bin", N: 2, H: fnv32a([]byte{5, 6})}, {T: "bin", N: 60000, H: fnv32a(big)}}},
	}
	for _, c := range cases {
		t.Run(c.ser, func(t *testing.T) {
			app := newDataApp(t)
			dataID, port := openData(t, e.c)
			pj := gwtest.Eval[string](t, b, fmt.Sprintf(`track(peer.connect("gwdata", {serialization: %q, reliable: true, metadata: {from: "browser"}}))`, c.ser))
			ev := e.c.WaitEvent(e.c.PeerEvents(g), "CONNECTION", 20*time.Second)
			conn := ev["data_params"].(map[string]any)["data_connection_id"].(string)
			st := e.c.Expect(200, "GET", "/data/connections/"+conn+"/status", nil).Map(t)
			if st["serialization"] != c.api || st["label"] != pj || st["remote_id"] != "browserdata" || st["reliable"] != true ||
				st["metadata"].(map[string]any)["from"] != "browser" {
				t.Fatalf("status %v", st)
			}
			e.c.Expect(200, "PUT", "/data/connections/"+conn, map[string]any{
				"feed_params": map[string]any{"data_id": dataID}, "redirect_params": app.redirect(),
			})
			e.c.WaitEvent("/data/connections/"+conn+"/events", "OPEN", 20*time.Second)
			sel := fmt.Sprintf("conns[%q]", pj)
			b.WaitJS(t, sel+".open", 20*time.Second, "JSON.stringify(log)")

			for _, js := range c.send {
				gwtest.Eval[any](t, b, sel+".conn.send("+js+"), null")
			}
			app.waitN(len(c.want), 20*time.Second)
			for i, got := range app.received() {
				if !bytes.Equal(got, c.want[i]) {
					t.Errorf("browser sent %s; app got %s, want %s", c.send[i], trunc(got), trunc(c.want[i]))
				}
			}

			for _, d := range c.out {
				app.send(port, d)
			}
			b.WaitJS(t, fmt.Sprintf("%s.got.length >= %d", sel, len(c.outWant)), 20*time.Second, sel+".got.length")
			got := gwtest.Eval[[]browserValue](t, b, sel+".got")
			for i, w := range c.outWant {
				g := got[i]
				if g.T != w.T || g.N != w.N || g.H != w.H || (w.V != nil && !jsonEqual(g.V, w.V)) {
					t.Errorf("app sent %s; browser got %+v, want %+v", trunc(c.out[i]), g, w)
				}
			}

			gwtest.Eval[any](t, b, sel+".conn.close(), null")
			e.c.WaitEvent("/data/connections/"+conn+"/events", "CLOSE", 30*time.Second)
			e.c.Expect(204, "DELETE", "/data/connections/"+conn, nil)
		})
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// A gw peer connects to a PeerJS browser: the browser accepts with the
// serialization and metadata gw offered; data flows; gw's DELETE closes
// the browser's connection, and PeerJS's close request from the browser
// closes gw's.
func TestDataGWConnectsToBrowser(t *testing.T) {
	e := newTestEnv(t, withDataPlane())
	g := e.c.CreatePeer("gwcaller")
	b := dataBrowserPage(t, e, "browsercallee")
	for _, closeBy := range []string{"gw", "browser"} {
		t.Run("closed by "+closeBy, func(t *testing.T) {
			app := newDataApp(t)
			dataID, port := openData(t, e.c)
			gwtest.Eval[any](t, b, "window.incoming = null")
			r := e.c.Expect(202, "POST", "/data/connections", map[string]any{
				"peer_id": g.ID, "token": g.Token, "target_id": "browsercallee",
				"options":         map[string]any{"serialization": "BINARY", "metadata": "hello browser"},
				"params":          map[string]any{"data_id": dataID},
				"redirect_params": app.redirect(),
			}).Map(t)
			conn := r["params"].(map[string]any)["data_connection_id"].(string)
			e.c.WaitEvent("/data/connections/"+conn+"/events", "OPEN", 30*time.Second)
			b.WaitJS(t, "window.incoming && conns[window.incoming].open", 20*time.Second, "JSON.stringify(log)")
			meta := gwtest.Eval[[]any](t, b, "[conns[incoming].conn.serialization, conns[incoming].conn.metadata, conns[incoming].conn.label.startsWith('dc_')]")
			if meta[0] != "binary" || meta[1] != "hello browser" || meta[2] != true {
				t.Fatalf("browser sees %v", meta)
			}
			app.send(port, []byte("to browser"))
			b.WaitJS(t, "conns[incoming].got.length >= 1", 20*time.Second, "")
			if got := gwtest.Eval[browserValue](t, b, "conns[incoming].got[0]"); got.N != 10 || got.H != fnv32a([]byte("to browser")) {
				t.Fatalf("browser got %+v", got)
			}
			gwtest.Eval[any](t, b, `conns[incoming].conn.send("to gw"), null`)
			app.waitN(1, 20*time.Second)
			if got := app.received()[0]; string(got) != "to gw" {
				t.Fatalf("app got %q", got)
			}
			if closeBy == "gw" {
				e.c.Expect(204, "DELETE", "/data/connections/"+conn, nil)
				b.WaitJS(t, "conns[incoming].closed", 30*time.Second, "JSON.stringify(log)")
				return
			}
			// close({flush: true}) sends PeerJS's close request over the channel.
			gwtest.Eval[any](t, b, "conns[incoming].conn.close({flush: true}), null")
			e.c.WaitEvent("/data/connections/"+conn+"/events", "CLOSE", 30*time.Second)
			e.c.Expect(204, "DELETE", "/data/connections/"+conn, nil)
		})
	}
}
