// Package tlsmux shares one TLS port (443) between HTTPS and TURN over
// TLS, so that a viewer behind a firewall that lets only 443 out can
// still relay media through the bridge's TURN server.
//
// The Mux terminates TLS itself, then tells the two apart: a client that
// negotiated an HTTP protocol by ALPN (browsers always offer h2 and
// http/1.1) or ACME's acme-tls/1 goes to HTTP; one that negotiated
// nothing is told by its first byte, since every STUN message starts with
// two zero bits (RFC 8489 §5) and every HTTP/1 request with a letter.
// Both sides get connections whose handshake is done.
package tlsmux
