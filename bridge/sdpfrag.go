package bridge

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of what a WHEP client may send: an offer is a few KiB, a trickle
// fragment a few hundred bytes per candidate.
const (
	maxOfferSize      = 32 << 10
	maxFragSize       = 16 << 10
	maxFragCandidates = 64
	maxSDPLine        = 1024
)

// errBadSDP is wrapped by every complaint about a client's SDP.
var errBadSDP = errors.New("malformed SDP")

// sdpFrag is an SDP fragment of content type application/trickle-ice-sdpfrag
// (RFC 8840 section 9.1): the ICE credentials and the candidates a client
// trickles after its offer.
type sdpFrag struct {
	ufrag, pwd      string
	candidates      []fragCandidate
	endOfCandidates bool
}

// fragCandidate is one a=candidate line and the media section it is in.
type fragCandidate struct {
	mid  string // "" when the fragment names no mid
	line string // "candidate:..." (the attribute without "a=")
}

// parseSDPFrag reads an RFC 8840 fragment. It accepts what the RFC's
// grammar produces (session-level ice-ufrag, ice-pwd, ice-options; m= lines,
// each with a=mid and its candidates and end-of-candidates) in LF or CRLF
// lines, ignores other attributes, and refuses anything else, oversize
// input and malformed candidates.
func parseSDPFrag(body string) (*sdpFrag, error) {
	if len(body) > maxFragSize {
		return nil, fmt.Errorf("%w: fragment longer than %d bytes", errBadSDP, maxFragSize)
	}
	f := &sdpFrag{}
	mid := ""
	inMedia := false
	for n, line := range lines(body) {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: line %d: %s", errBadSDP, n+1, fmt.Sprintf(format, args...))
		}
		if line == "" {
			continue
		}
		if len(line) > maxSDPLine {
			return nil, bad("longer than %d bytes", maxSDPLine)
		}
		if err := checkSDPText(line); err != nil {
			return nil, bad("%v", err)
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return nil, bad("not an SDP line (<letter>=<value>)")
		}
		key, val := line[0], line[2:]
		switch key {
		case 'm':
			inMedia, mid = true, ""
			continue
		case 'a':
		default:
			continue // other lines carry nothing for trickling
		}
		name, value, _ := strings.Cut(val, ":")
		switch name {
		case "ice-ufrag":
			if value == "" {
				return nil, bad("empty ice-ufrag")
			}
			f.ufrag = value
		case "ice-pwd":
			f.pwd = value
		case "mid":
			if !inMedia {
				return nil, bad("a=mid outside a media section")
			}
			mid = value
		case "candidate":
			if len(f.candidates) == maxFragCandidates {
				return nil, bad("more than %d candidates", maxFragCandidates)
			}
			if err := checkCandidate(value); err != nil {
				return nil, bad("%v", err)
			}
			f.candidates = append(f.candidates, fragCandidate{mid: mid, line: val})
		case "end-of-candidates":
			f.endOfCandidates = true
		}
	}
	return f, nil
}

// checkCandidate checks the shape of a candidate attribute's value (RFC 8839
// section 5.1): foundation, component, transport, priority, address, port,
// "typ" and a type, then extensions.
func checkCandidate(v string) error {
	fields := strings.Fields(v)
	if len(fields) < 8 || fields[6] != "typ" {
		return errors.New("candidate is not \"foundation component transport priority address port typ type ...\"")
	}
	return nil
}

// sdpOffer is what the bridge needs of a client's offer: it stays a router
// and hands the SDP to the device untouched, but it checks that it is SDP at
// all (a clear 400 instead of a device error), and keeps the ICE ufrag and
// the media section ids to route trickled candidates.
type sdpOffer struct {
	ufrag string
	mids  []string
}

// parseOffer checks a client's offer.
func parseOffer(sdp string) (*sdpOffer, error) {
	if len(sdp) > maxOfferSize {
		return nil, fmt.Errorf("%w: offer longer than %d bytes", errBadSDP, maxOfferSize)
	}
	if !strings.HasPrefix(sdp, "v=0\r\n") && !strings.HasPrefix(sdp, "v=0\n") {
		return nil, fmt.Errorf("%w: an offer starts with v=0", errBadSDP)
	}
	o := &sdpOffer{}
	media := 0
	for n, line := range lines(sdp) {
		if len(line) > 4*maxSDPLine {
			return nil, fmt.Errorf("%w: line %d is longer than %d bytes", errBadSDP, n+1, 4*maxSDPLine)
		}
		if err := checkSDPText(line); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", errBadSDP, n+1, err)
		}
		switch {
		case strings.HasPrefix(line, "m="):
			media++
			o.mids = append(o.mids, "")
		case strings.HasPrefix(line, "a=mid:") && media > 0:
			o.mids[media-1] = line[len("a=mid:"):]
		case strings.HasPrefix(line, "a=ice-ufrag:") && o.ufrag == "":
			o.ufrag = line[len("a=ice-ufrag:"):]
		}
	}
	if media == 0 {
		return nil, fmt.Errorf("%w: the offer has no media section", errBadSDP)
	}
	return o, nil
}

// mLineIndex is the index of the media section with id mid, or 0 (the
// first, which carries every candidate under BUNDLE).
func (o *sdpOffer) mLineIndex(mid string) uint16 {
	for i, m := range o.mids {
		if m == mid && mid != "" {
			return uint16(i)
		}
	}
	return 0
}

// lines splits SDP text on LF, dropping a CR before it.
func lines(s string) []string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	return ls
}

// checkSDPText refuses control characters and invalid UTF-8: SDP is text,
// and a stray NUL or escape must not reach a device's parser or a log.
func checkSDPText(line string) error {
	for _, r := range line {
		if r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return fmt.Errorf("control character or invalid UTF-8 (%U)", r)
		}
	}
	return nil
}
