// Package localapi holds the rules an operator's local HTTP API (the
// device's control API, the bridge's admin endpoint) applies so that no web
// page the operator happens to visit can drive it: the browser would
// otherwise send the page's requests to loopback with the operator's
// network position.
package localapi
