package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/mdns/v2"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// localNames resolves the mDNS names ("<uuid>.local",
// draft-ietf-mmusic-mdns-ice-candidates) behind which browsers hide their
// host candidates, for all the device's PeerConnections with one mDNS
// socket per address family. pion's ICE agent would open a resolver per
// PeerConnection, each joined to the multicast group, so that every mDNS
// packet on the device's network would be read once per viewer, and its
// buffers kept per viewer (docs/media-benchmarks.md); the device turns
// pion's off and resolves here before it hands a candidate to pion.
//
// The sockets are opened at the first name asked, so a device whose viewers
// never send one opens none.
type localNames struct {
	includeLoopback bool

	mu     sync.Mutex
	conn   *mdns.Conn // nil until first use, or when it could not be opened
	err    error      // why it could not be opened
	closed bool
}

// localNameTimeout bounds one name's resolution, as pion's own (its STUN
// gathering timeout).
const localNameTimeout = 5 * time.Second

// errLocalNamesClosed is what resolve returns after Close.
var errLocalNamesClosed = errors.New("mDNS resolver closed")

// isLocalName reports whether a candidate's address is an mDNS name.
func isLocalName(addr string) bool { return strings.HasSuffix(addr, ".local") }

// open returns the resolver's mDNS connection, opening it the first time.
func (r *localNames) open() (*mdns.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errLocalNamesClosed
	}
	if r.conn != nil || r.err != nil {
		return r.conn, r.err
	}
	r.conn, r.err = openMDNS(r.includeLoopback)
	return r.conn, r.err
}

func openMDNS(includeLoopback bool) (*mdns.Conn, error) {
	addr4, err := net.ResolveUDPAddr("udp4", mdns.DefaultAddressIPv4)
	if err != nil {
		return nil, err
	}
	l4, err := net.ListenUDP("udp4", addr4)
	if err != nil {
		return nil, fmt.Errorf("mDNS over IPv4: %w", err)
	}
	// IPv6 is optional: a device without it still resolves over IPv4.
	var p6 *ipv6.PacketConn
	if addr6, err := net.ResolveUDPAddr("udp6", mdns.DefaultAddressIPv6); err == nil {
		if l6, err := net.ListenUDP("udp6", addr6); err == nil {
			p6 = ipv6.NewPacketConn(l6)
		}
	}
	opts := []mdns.ServerOption{
		// Only addresses, as pion's ICE agent asks; no service discovery,
		// no cache refreshes, and no names of our own to answer for.
		mdns.WithRecordTypes(dnsmessage.TypeA, dnsmessage.TypeAAAA),
		mdns.WithCacheRefresh(false),
	}
	if includeLoopback {
		opts = append(opts, mdns.WithIncludeLoopback(true))
	}
	c, err := mdns.NewServer(ipv4.NewPacketConn(l4), p6, opts...)
	if err != nil {
		l4.Close()
		if p6 != nil {
			p6.Close()
		}
		return nil, err
	}
	return c, nil
}

// resolve returns the address an mDNS name stands for, asking the local
// link until ctx ends or localNameTimeout passes.
func (r *localNames) resolve(ctx context.Context, name string) (netip.Addr, error) {
	c, err := r.open()
	if err != nil {
		return netip.Addr{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, localNameTimeout)
	defer cancel()
	_, a, err := c.QueryAddr(ctx, name)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap().WithZone(""), nil
}

// Close closes the mDNS sockets; later resolves fail.
func (r *localNames) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.conn == nil {
		return nil
	}
	err := r.conn.Close()
	r.conn = nil
	return err
}

// withAddress returns the candidate line (with or without "a=") with its
// connection address replaced by a.
func withAddress(line string, a netip.Addr) (string, error) {
	f := strings.Fields(line)
	if len(f) < 8 {
		return "", errors.New("candidate line too short")
	}
	f[4] = a.String()
	return strings.Join(f, " "), nil
}

// candidateAddress is a candidate line's connection address ("" when the
// line is not a candidate).
func candidateAddress(line string) string {
	f := strings.Fields(strings.TrimPrefix(line, "a="))
	if len(f) < 8 {
		return ""
	}
	return f[4]
}

// takeLocalCandidates removes from an SDP the candidate lines whose address
// is an mDNS name and returns them (without "a=").
func takeLocalCandidates(sdp string) (string, []string) {
	if !strings.Contains(sdp, ".local ") {
		return sdp, nil
	}
	var b strings.Builder
	var local []string
	for line := range strings.Lines(sdp) {
		l := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(l, "a=candidate:") && isLocalName(candidateAddress(l)) {
			local = append(local, strings.TrimPrefix(l, "a="))
			continue
		}
		b.WriteString(line)
	}
	return b.String(), local
}
