package controlplane

import (
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/gw-project/gw/api/apitest"
	"github.com/gw-project/gw/internal/gwtest"
)

// FuzzRequestBodies feeds arbitrary bodies to the operations that take one:
// every answer must be one the spec allows, in its envelope, and a failed
// request must leave no peer behind.
func FuzzRequestBodies(f *testing.F) {
	e := newTestEnv(f)
	owner := e.c.CreatePeer("fuzzowner")
	seeds := []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"key":"k","domain":"d"}`,
		`{"key":"k","domain":"d","peer_id":"fz1","turn":true}`,
		`{"key":1}`, `{"key":"k","domain":"d","credential":{"timestamp":1,"ttl":600,"authToken":"YQ=="}}`,
		`{"timestamp":1,"ttl":600,"authToken":"YQ=="}`, `{"ttl":1e400}`, `{"key":"k","domain":"d","peer_id":"a b"}`,
		`{"key":"k"` + "\x00" + `}`, `{"key":"\ud800","domain":"d"}`,
	}
	for _, s := range seeds {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(1), []byte(s))
	}
	ops := []struct{ method, path string }{
		{"POST", "/peers"},
		{"PUT", "/peers/fuzzowner/credential?token=" + owner.Token},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		op := ops[int(which)%len(ops)]
		before := len(e.srv.reg.allPeers())
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(op.method)
		ctx.Request.SetRequestURI(op.path)
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(body)
		e.srv.Handler()(&ctx)
		status := ctx.Response.StatusCode()
		h := http.Header{"Content-Type": {string(ctx.Response.Header.ContentType())}}
		if err := apitest.Check(op.method, op.path, status, h, ctx.Response.Body()); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		switch {
		case status == 201:
			token := extractToken(ctx.Response.Body())
			var id struct {
				Params struct {
					PeerID string `json:"peer_id"`
				} `json:"params"`
			}
			_ = jsonUnmarshal(ctx.Response.Body(), &id)
			gwtest.NewClient(t, e.c.Base).Expect(204, "DELETE", "/peers/"+id.Params.PeerID+"?token="+token, nil)
		case status >= 400:
			if after := len(e.srv.reg.allPeers()); after != before {
				t.Fatalf("failed request (%d) changed the peer count %d → %d", status, before, after)
			}
		}
	})
}
