// Package viewer is gw's built-in web page: a browser opens gw's signaling
// server, names a gw peer, and watches and hears its media, sends its own
// camera and microphone, and exchanges data messages. The page uses the
// PeerJS client library, which gw serves itself (no CDN): `make` copies it
// from the pinned npm package into static/vendor before building.
package viewer

import (
	"embed"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed static
var static embed.FS

// Prefix is where the page's assets are served.
const Prefix = "/viewer/"

// peerJSFile is the PeerJS client library, present when gw was built with make.
const peerJSFile = "static/vendor/peerjs.min.js"

// HasPeerJS reports whether this build carries the PeerJS client library.
func HasPeerJS() bool {
	_, err := fs.Stat(static, peerJSFile)
	return err == nil
}

// Index serves the page itself.
func Index(ctx *fasthttp.RequestCtx) {
	serveFile(ctx, "static/index.html")
}

// Assets serves Prefix/...: the page's script, style and the vendored
// library; anything else is 404.
func Assets(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if !strings.HasPrefix(p, Prefix) || (!ctx.IsGet() && !ctx.IsHead()) {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	name := path.Clean("static/" + strings.TrimPrefix(p, Prefix))
	if !strings.HasPrefix(name, "static/") || name == "static/index.html" {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	serveFile(ctx, name)
}

func serveFile(ctx *fasthttp.RequestCtx, name string) {
	b, err := static.ReadFile(name)
	if err != nil {
		ctx.Error("not found", fasthttp.StatusNotFound)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	// The page is small and changes with gw; no caching surprises after an
	// upgrade.
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(b)
}
