// Package datarelay turns the datagrams of a local UDP port into the
// messages of a PeerJS data connection and back, for each PeerJS
// serialization, and decides per datagram whether to wait for a full data
// channel or to drop. It knows nothing of pion or sockets, so it is tested
// on its own; the control plane wires it between a dataplane port and a
// pion DataChannel.
//
// # Framing
//
// One datagram becomes one message, one message one datagram:
//
//	serialization  datagram → message                    message → datagram
//	binary,        the bytes as one js-binarypack binary  binary value: its bytes; string: its
//	binary-utf8    value; packed values over 16300 bytes  UTF-8; any other value: its JSON text.
//	               go as PeerJS chunk messages            Chunks are joined first.
//	json           a JSON text other than a string or     a JSON string: its UTF-8 (unquoted,
//	               null goes as it is; anything else as   unescaped); any other JSON text as it
//	               a JSON string holding the datagram's   is
//	               text (invalid UTF-8 becomes U+FFFD)
//	raw            the bytes as they are                  the bytes as they are
//
// Every message gw sends is a binary frame (PeerJS's json receiver throws on
// text frames); both frame kinds are accepted on receive. So a datagram
// survives a trip between two gw peers byte for byte in every
// serialization, provided it is valid UTF-8 for json.
//
// PeerJS's close request ({__peerData: {type: "close"}}, packed for binary,
// JSON text for json) is reported by Decode rather than delivered.
package datarelay
