package e2e

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/gw-project/gw/internal/gwtest"
)

// seen is how the harness describes a message the browser received.
type seen struct {
	T string `json:"t"` // bin, str or val
	N int    `json:"n"`
	H uint32 `json:"h"`
	J string `json:"j"`
}

func (s seen) String() string {
	if s.T == "val" {
		j := s.J
		if len(j) > 60 {
			j = j[:60] + "…"
		}
		return fmt.Sprintf("value %s (%d bytes of JSON)", j, len(s.J))
	}
	return fmt.Sprintf("%s of %d bytes, FNV-1a %08x", s.T, s.N, s.H)
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

func bin(b []byte) seen    { return seen{T: "bin", N: len(b), H: fnv32a(b)} }
func str(s string) seen    { return seen{T: "str", N: len(s), H: fnv32a([]byte(s))} }
func val(json string) seen { return seen{T: "val", J: json} }

// dataCase is one serialization: what the browser sends (JavaScript
// expressions) and the datagrams the app must get for them, and the
// datagrams the app sends and what the browser must get.
type dataCase struct {
	browser, api string // serialization as PeerJS and the API name it
	// api is what gw reports when the browser opens the connection.
	fromBrowser []string
	toApp       [][]byte
	fromApp     [][]byte
	toBrowser   []seen
}

// Messages over 16300 bytes are in every case: binary ones go as PeerJS
// chunks, the others as single large SCTP messages.
func dataCases() []dataCase {
	big, big2 := pattern(60000, 1), pattern(40000, 2)
	long := strings.Repeat("ünï ", 5000) // 35000 bytes of UTF-8
	jsonBig := `{"k":"` + strings.Repeat("j", 30000) + `"}`
	// PeerJS refuses to send a JSON message of 16300 bytes or more ("Message
	// too big for JSON channel"), so the browser's longest is below that;
	// gw's way, over 16300 bytes still go, as single SCTP messages.
	mid := strings.Repeat("ünï ", 2000) // 14000 bytes of UTF-8
	return []dataCase{
		{"binary", "BINARY",
			[]string{"e2e.bytes(3, 5)", `"héllo"`, `({a: 1, b: [true, null]})`, "e2e.bytes(60000, 1)"},
			[][]byte{pattern(3, 5), []byte("héllo"), []byte(`{"a":1,"b":[true,null]}`), big},
			[][]byte{{0, 1, 255}, big2, []byte("text")},
			[]seen{bin([]byte{0, 1, 255}), bin(big2), bin([]byte("text"))}},
		// PeerJS 1.5 makes binary-utf8 connections with its binary
		// serializer, whose offer says "binary".
		{"binary-utf8", "BINARY",
			[]string{`"ünïcode"`, "e2e.bytes(40000, 2)", jsString(long)},
			[][]byte{[]byte("ünïcode"), big2, []byte(long)},
			[][]byte{big, []byte(long)},
			[]seen{bin(big), bin([]byte(long))}},
		{"json", "JSON",
			[]string{`({x: [1, 2], y: "z"})`, `"héllo"`, "42", jsString(mid)},
			[][]byte{[]byte(`{"x":[1,2],"y":"z"}`), []byte("héllo"), []byte("42"), []byte(mid)},
			[][]byte{[]byte(`{"k":[1,2]}`), []byte("plain text"), []byte(jsonBig), []byte(long)},
			[]seen{val(`{"k":[1,2]}`), str("plain text"), val(jsonBig), str(long)}},
		{"raw", "NONE",
			[]string{"e2e.bytes(3, 9)", `"text frame"`, "e2e.bytes(60000, 1)"},
			[][]byte{pattern(3, 9), []byte("text frame"), big},
			[][]byte{{5, 6}, big2},
			[]seen{bin([]byte{5, 6}), bin(big2)}},
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

// apiName is the API's name of a PeerJS serialization, as gw offers it.
var apiName = map[string]string{"binary": "BINARY", "binary-utf8": "BINARY_UTF8", "json": "JSON", "raw": "NONE"}

// browserName is the serialization a PeerJS 1.5 connection reports for
// the one offered: binary-utf8 connections are made by its binary
// serializer, which says "binary".
func browserName(offered string) string {
	if offered == "binary-utf8" {
		return "binary"
	}
	return offered
}

// The third test (and, under official-peerjs, its fourth): data
// between a PeerJS browser and a gw peer's app, both ways, with each
// serialization, messages over 16300 bytes included; once with the browser
// opening the connection and once with gw opening it. Each side's close
// reaches the other.
func TestDataBrowser(t *testing.T) {
	eachSignaling(t, func(t *testing.T, e *env) {
		c := e.gw.Client
		g := c.CreatePeer("e2egw")
		b := e.browser(t, "e2ebrowser")
		for _, tc := range dataCases() {
			for _, opener := range []string{"browser", "gw"} {
				t.Run(tc.browser+"/"+opener+"-connects", func(t *testing.T) {
					app := newUDPApp(t)
					d := c.Expect(201, "POST", "/data", map[string]any{}).Map(t)
					dataID, dataPort := d["data_id"].(string), int(d["port"].(float64))
					var conn, sel string
					if opener == "browser" {
						pj := gwtest.Eval[string](t, b, fmt.Sprintf("e2e.connect(%q, %q)", "e2egw", tc.browser))
						ev := c.WaitEvent(c.PeerEvents(g), "CONNECTION", 30*time.Second)
						conn = ev["data_params"].(map[string]any)["data_connection_id"].(string)
						st := c.Expect(200, "GET", "/data/connections/"+conn+"/status", nil).Map(t)
						if st["serialization"] != tc.api || st["remote_id"] != "e2ebrowser" || st["label"] != pj {
							t.Fatalf("gw's status of the browser's connection %s: %v", pj, st)
						}
						c.Expect(200, "PUT", "/data/connections/"+conn, map[string]any{
							"feed_params": map[string]any{"data_id": dataID}, "redirect_params": app.redirect(),
						})
						sel = fmt.Sprintf("e2e.data[%q]", pj)
					} else {
						gwtest.Eval[bool](t, b, "(e2e.incoming = null, true)")
						r := c.Expect(202, "POST", "/data/connections", map[string]any{
							"peer_id": g.ID, "token": g.Token, "target_id": "e2ebrowser",
							"options":         map[string]any{"serialization": apiName[tc.browser], "dcInit": map[string]any{"ordered": true}},
							"params":          map[string]any{"data_id": dataID},
							"redirect_params": app.redirect(),
						}).Map(t)
						conn = r["params"].(map[string]any)["data_connection_id"].(string)
						b.WaitJS(t, "e2e.incoming", 30*time.Second, "JSON.stringify(e2e.log)")
						sel = "e2e.data[e2e.incoming]"
						if ser := gwtest.Eval[string](t, b, sel+".conn.serialization"); ser != browserName(tc.browser) {
							t.Fatalf("browser sees serialization %q, want %q", ser, browserName(tc.browser))
						}
					}
					events := "/data/connections/" + conn + "/events"
					c.WaitEvent(events, "OPEN", 30*time.Second)
					b.WaitJS(t, sel+".open", 30*time.Second, "JSON.stringify(e2e.log)")

					for _, js := range tc.fromBrowser {
						gwtest.Eval[bool](t, b, sel+".conn.send("+js+"), true")
					}
					got := app.wait(t, len(tc.toApp), 30*time.Second)
					for i, want := range tc.toApp {
						if !bytes.Equal(got[i], want) {
							t.Errorf("browser sent %.40s: app got %d bytes %.40q, want %d bytes %.40q", tc.fromBrowser[i], len(got[i]), got[i], len(want), want)
						}
					}

					for _, m := range tc.fromApp {
						app.send(t, dataPort, m)
					}
					b.WaitJS(t, fmt.Sprintf("%s.got.length >= %d", sel, len(tc.toBrowser)), 30*time.Second, sel+".got.length")
					saw := gwtest.Eval[[]seen](t, b, sel+".got")
					for i, want := range tc.toBrowser {
						if saw[i] != want {
							t.Errorf("app sent %d bytes %.40q: browser got %s, want %s", len(tc.fromApp[i]), tc.fromApp[i], saw[i], want)
						}
					}

					if opener == "browser" {
						gwtest.Eval[bool](t, b, sel+".conn.close(), true")
						c.WaitEvent(events, "CLOSE", 30*time.Second)
						c.Expect(204, "DELETE", "/data/connections/"+conn, nil)
					} else {
						c.Expect(204, "DELETE", "/data/connections/"+conn, nil)
						b.WaitJS(t, sel+".closed", 30*time.Second, "JSON.stringify(e2e.log)")
					}
				})
			}
		}
	})
}
