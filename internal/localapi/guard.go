package localapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// FromWebPage returns why r looks like a request a web page made (and so
// must be refused), or "" for a request from a command-line client or
// script.
//
// Browsers mark what a page sends: an Origin header on every cross-origin
// request and on every POST, and Sec-Fetch-Site on every request of a
// current browser. A page cannot remove either. A page can however make
// its own host name resolve to 127.0.0.1 (DNS rebinding) and then read the
// answers as same-origin; its Host header still carries its name, so only
// addresses and "localhost" are taken as Host.
func FromWebPage(r *http.Request) string {
	if r.Header.Get("Origin") != "" {
		return "requests from web pages are refused (Origin header)"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none":
		// none: the operator typed the URL or opened a bookmark.
	case "same-origin":
		// Only reachable by a page this server served itself, and it
		// serves none; a rebinding page is stopped by the Host check.
	default:
		return "requests from web pages are refused (Sec-Fetch-Site)"
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if _, err := netip.ParseAddr(h); err != nil && !strings.EqualFold(h, "localhost") {
		return "the Host header must be an IP address or localhost (DNS rebinding)"
	}
	return ""
}
