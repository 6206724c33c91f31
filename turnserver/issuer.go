package turnserver

import (
	"net"
	"strconv"
	"time"
)

// DefaultCredentialTTL is how long credentials an Issuer mints stay valid:
// long enough for a viewer to connect, short enough that a credential
// copied out of a page is soon worth nothing. Our server keeps an
// allocation made in time alive after its credentials expire (see
// Server.authenticate); a TURN server that checks the expiry on every
// Refresh (coturn does) needs a TTL as long as the longest viewing.
const DefaultCredentialTTL = 10 * time.Minute

// Issuer mints credentials for a fleet of TURN servers that share Secret.
// A bridge calls Issue once per viewer; the same credentials go to the
// browser and to the device serving it. Issuer holds no state.
type Issuer struct {
	Secret string
	// URLs are the TURN URIs (RFC 7065) handed out with each credential,
	// e.g. "turn:turn.example.org:3478?transport=udp".
	URLs []string
	// TTL is how long each credential lives (DefaultCredentialTTL).
	TTL time.Duration
}

// Issue returns fresh credentials for user id. Ids are meant to be
// per-viewer (a Socket.IO session id): quotas are counted per id.
func (is *Issuer) Issue(id string) (Credentials, error) {
	ttl := is.TTL
	if ttl <= 0 {
		ttl = DefaultCredentialTTL
	}
	return NewCredentials(is.Secret, id, ttl, time.Now())
}

// STUNURL returns the STUN URI (RFC 7064) of this server's UDP listener,
// reachable at host (PublicIP when empty), or "" without one: a TURN
// server answers STUN Binding requests too, so viewers and devices learn
// their server-reflexive addresses from it.
func (s *Server) STUNURL(host string) string {
	a, ok := s.UDPAddr().(*net.UDPAddr)
	if !ok {
		return ""
	}
	if host == "" {
		host = s.cfg.PublicIP
	}
	return "stun:" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// URLs returns the URIs of this server, reachable at host (its public name
// or PublicIP when empty).
func (s *Server) URLs(host string) []string {
	if host == "" {
		host = s.cfg.PublicIP
	}
	port := func(a net.Addr) int {
		switch a := a.(type) {
		case *net.UDPAddr:
			return a.Port
		case *net.TCPAddr:
			return a.Port
		}
		return 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	// The UDP and TCP entries carry ?transport= (RFC 7065 §3.1) so that
	// browsers behind UDP-blocking firewalls try TCP.
	var out []string
	if p := port(s.UDPAddr()); p > 0 {
		out = append(out, "turn:"+host+":"+strconv.Itoa(p)+"?transport=udp")
	}
	if p := port(s.TCPAddr()); p > 0 {
		out = append(out, "turn:"+host+":"+strconv.Itoa(p)+"?transport=tcp")
	}
	if p := port(s.TLSAddr()); p > 0 {
		out = append(out, "turns:"+host+":"+strconv.Itoa(p)+"?transport=tcp")
	}
	if p := port(s.SharedTLSAddr()); p > 0 {
		out = append(out, "turns:"+host+":"+strconv.Itoa(p)+"?transport=tcp")
	}
	return out
}
