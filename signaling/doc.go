// Package signaling speaks the PeerJS signaling protocol: a Server that a
// PeerJS client cannot tell from the official PeerJS server (npm `peer`), and
// the Client each gw peer uses to register at either of them.
//
// The wire protocol is the one of PeerJS server 1.0.2: a WebSocket at
// `{path}peerjs?key=&id=&token=&version=` carrying JSON frames
// `{type, src, dst, payload}`, plus three plain HTTP endpoints (the banner at
// `{path}`, `{path}{key}/id` and `{path}{key}/peers`). See
// ../shared/PEERJS.md for the facts the behaviour here is checked against.
//
// gw adds two things the official server does not have, both invisible to a
// PeerJS client that does not use them:
//
//   - keys from a file (KeyStore), each optionally restricted to the domains
//     of the WebSocket request's Origin header;
//   - SkyWay-style peer authentication for keys that have a secret: the
//     client presents a Credential in the WebSocket URL, receives EXPIRESIN
//     before it lapses and can renew it over the socket with a CREDENTIAL
//     message (the official server drops unknown types, so a gw client
//     stays compatible with it).
package signaling
