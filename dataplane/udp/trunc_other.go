//go:build !unix

package udp

// msgTrunc is not reported here: an overlong datagram arrives cut short.
const msgTrunc = 0
