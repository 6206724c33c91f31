// Package tlscert provides the certificate a server speaks TLS with, from
// one of three sources:
//
//   - certificate and key files, read again whenever they change, so that an
//     external renewer (certbot, an operator's script) needs no restart;
//   - an ACME CA (Let's Encrypt by default), through certmagic: HTTP-01 on
//     the plain-HTTP port and TLS-ALPN-01 on the TLS port, the account key
//     and certificates kept in a directory, renewal before expiry in the
//     background, and a failure logged with the domain and the CA's answer
//     while whatever certificate is held keeps being served;
//   - a certificate generated in memory for local names (the demo).
//
// A Manager hands out a tls.Config for HTTPS (HTTP/2 included), one for TURN
// over TLS (the same certificate), and an HTTP handler for the plain port
// that answers ACME challenges and sends everything else to HTTPS.
package tlscert
