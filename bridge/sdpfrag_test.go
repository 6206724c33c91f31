package bridge

import (
	"strings"
	"testing"

	"github.com/ersmesh/ersmesh/signalwire"
)

const chromeFrag = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n" +
	"a=end-of-candidates\r\n"

func TestParseSDPFrag(t *testing.T) {
	f, err := parseSDPFrag(chromeFrag)
	if err != nil {
		t.Fatal(err)
	}
	if f.ufrag != "EsAw" || f.pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || !f.endOfCandidates || len(f.candidates) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	if c := f.candidates[1]; c.mid != "0" || !strings.HasPrefix(c.line, "candidate:3471623853 1 udp") {
		t.Errorf("second candidate %+v", c)
	}
	// LF line ends, and a fragment with no media section.
	f, err = parseSDPFrag("a=candidate:1 1 udp 1 10.0.0.1 9 typ host\n")
	if err != nil || len(f.candidates) != 1 || f.candidates[0].mid != "" {
		t.Fatalf("LF fragment: %+v %v", f, err)
	}
	for name, bad := range map[string]string{
		"short candidate": "a=candidate:1 1 udp 1 10.0.0.1 9\r\n",
		"not sdp":         "hello world\r\n",
		"control char":    "a=candidate:1 1 udp 1 10.0.0.1 9 typ host\x00\r\n",
		"mid outside m":   "a=mid:0\r\n",
		"empty ufrag":     "a=ice-ufrag:\r\n",
		"long line":       "a=x:" + strings.Repeat("y", maxSDPLine) + "\r\n",
		"too large":       strings.Repeat("a=x\r\n", maxFragSize/5+1),
		"too many":        strings.Repeat("a=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\n", maxFragCandidates+1),
		"invalid utf-8":   "a=candidate:1 1 udp 1 10.0.0.1 9 typ host \xff\r\n",
	} {
		if _, err := parseSDPFrag(bad); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

func FuzzParseSDPFrag(f *testing.F) {
	f.Add(chromeFrag)
	f.Add("a=candidate:1 1 udp 1 10.0.0.1 9 typ host\n")
	f.Add("m=audio 9 RTP/AVP 0\na=mid:a\na=end-of-candidates")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := parseSDPFrag(s)
		if err != nil {
			return
		}
		if len(s) > maxFragSize || len(fr.candidates) > maxFragCandidates {
			t.Fatalf("accepted oversize input: %d bytes, %d candidates", len(s), len(fr.candidates))
		}
		for _, c := range fr.candidates {
			if !strings.HasPrefix(c.line, "candidate:") || strings.ContainsAny(c.line, "\r\n\x00") {
				t.Fatalf("bad candidate line %q", c.line)
			}
			if checkCandidate(strings.TrimPrefix(c.line, "candidate:")) != nil {
				t.Fatalf("candidate %q passed but fails the check", c.line)
			}
		}
	})
}

func TestParseOffer(t *testing.T) {
	o, err := parseOffer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if o.ufrag != "abcd" || len(o.mids) != 2 || o.mLineIndex("a") != 1 || o.mLineIndex("v") != 0 || o.mLineIndex("?") != 0 {
		t.Fatalf("parsed %+v", o)
	}
	for _, bad := range []string{"", "hello", "v=0\r\ns=-\r\n", "v=0\r\nm=video 9 x\x01\r\n"} {
		if _, err := parseOffer(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add("v=0\r\na=ice-ufrag:abcd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n")
	f.Add("v=0\nm=audio")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOffer(s)
		if err != nil {
			return
		}
		if len(s) > maxOfferSize || len(o.mids) == 0 {
			t.Fatalf("accepted %d bytes with %d media sections", len(s), len(o.mids))
		}
		for _, m := range o.mids {
			if int(o.mLineIndex(m)) >= len(o.mids) {
				t.Fatalf("mLineIndex(%q) out of range", m)
			}
		}
	})
}

func TestIceServerLinks(t *testing.T) {
	got := iceServerLinks([]signalwire.ICEServer{
		{URLs: []string{"stun:stun.example.org:3478"}},
		{URLs: []string{"turn:turn.example.org:3478?transport=udp", "turn:bad>url"}, Username: `u"1`, Credential: `p\w`},
	})
	want := []string{
		`<stun:stun.example.org:3478>; rel="ice-server"`,
		`<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="u\"1"; credential="p\\w"; credential-type="password"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
