// Package turnserver is ersmesh's TURN server (RFC 8656) and the
// short-lived credentials that go with it. It runs pion/turn on UDP and TCP
// (and TLS when the operator gives a certificate), and adds what a server
// open to the internet needs and pion leaves to its users:
//
//   - time-limited credentials in the TURN REST scheme
//     (draft-uberti-behave-turn-rest-00): the username is "expiry:id" and the
//     password base64(HMAC-SHA1(secret, username)), so every bridge that
//     knows the shared secret can hand out credentials for a whole fleet of
//     TURN servers, and no static password ever reaches a web page;
//   - a relay policy that refuses to relay to loopback, private (RFC 1918),
//     link-local, CGNAT (RFC 6598), unique-local (RFC 4193) and cloud
//     metadata addresses unless the operator allows private peers, so that
//     the server cannot be used to reach the network it runs in;
//   - per-user quotas on allocations and relayed bandwidth.
//
// Issuer is the part bridges use: it mints credentials and the ICE server
// URLs that carry them. Server is the TURN server itself. The package knows
// nothing of the mesh, signalling or browsers.
package turnserver
