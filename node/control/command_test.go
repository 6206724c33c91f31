package control

import (
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("ersip=192.0.2.1 ersport=4545 roomid=frontdoor token=t0k"))
	want := map[string]string{"ersip": "192.0.2.1", "ersport": "4545", "roomid": "frontdoor", "token": "t0k"}
	for _, tc := range []struct{ path, query string }{
		{"/startWebRTC", "params=" + b64},
		{"/startWebRTC", "params=" + strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("ersip=192.0.2.1 ersport=4545 roomid=frontdoor token=t0k")), "=")},
		{"/startwebrtc", "ersip=192.0.2.1&ersport=4545&roomid=frontdoor&token=t0k"},
		{"/", "c=startWebRTC&i=7&ersip=192.0.2.1&ersport=4545&roomId=frontdoor&token=t0k"},
		{"/startWebRTC", "params=" + base64.StdEncoding.EncodeToString([]byte("ersip=192.0.2.1 roomid=frontdoor")) + "&ersport=4545&token=t0k"},
	} {
		cmd, err := ParseRequest(tc.path, tc.query)
		if err != nil {
			t.Errorf("%s?%s: %v", tc.path, tc.query, err)
			continue
		}
		if cmd.Name != CmdStartWebRTC || !maps.Equal(cmd.Params, want) {
			t.Errorf("%s?%s: %+v", tc.path, tc.query, cmd)
		}
	}
	for _, tc := range []struct{ path, query, want string }{
		{"/", "", "no command"},
		{"/shutdownServer", "", "unknown command"},
		{"/startWebRTC/x", "", "unknown command"},
		{"/startWebRTC", "params=%%%", "query"},
		{"/startWebRTC", "params=!!!", "not base64"},
		{"/startWebRTC", "params=" + base64.StdEncoding.EncodeToString([]byte("roomid")), "not key=value"},
		{"/startWebRTC", "roomid=a&roomid=b", "given 2 times"},
		{"/startWebRTC", "params=" + base64.StdEncoding.EncodeToString([]byte("roomid=a")) + "&roomid=b", "given twice"},
		{"/startWebRTC", "roomid=a%00b", "control characters"},
		{"/startWebRTC", "roomid=" + strings.Repeat("a", maxValueLen+1), "longer than"},
		{"/startWebRTC", strings.Repeat("k", maxRequest), "longer than"},
	} {
		_, err := ParseRequest(tc.path, tc.query)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s?%.40s: %v, want an error with %q", tc.path, tc.query, err, tc.want)
		}
	}
	var many []string
	for i := range maxParams + 1 {
		many = append(many, "k"+strings.Repeat("x", i)+"=v")
	}
	if _, err := ParseRequest("/listConfig", strings.Join(many, "&")); err == nil {
		t.Error("took more than maxParams parameters")
	}
}

// FuzzParseRequest: any path and query give a known command within the
// limits, or ErrBadRequest; never a panic.
func FuzzParseRequest(f *testing.F) {
	f.Add("/startWebRTC", "params="+base64.StdEncoding.EncodeToString([]byte("roomid=frontdoor token=x keepAlive=1")))
	f.Add("/startWebRTC", "roomid=frontdoor&ersip=192.0.2.1&ersport=4545")
	f.Add("/", "c=listConfig&i=1")
	f.Add("/stopWebRTC", "configId=3")
	f.Add("/startWebRTC", "params=cm9vbWlkPWE=&roomid=b")
	f.Add("/x", "%zz")
	f.Fuzz(func(t *testing.T, path, query string) {
		cmd, err := ParseRequest(path, query)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error not wrapping ErrBadRequest: %v", err)
			}
			return
		}
		if !slices.Contains(commandNames, cmd.Name) {
			t.Fatalf("unknown command %q accepted", cmd.Name)
		}
		if len(cmd.Params) > maxParams {
			t.Fatalf("%d params", len(cmd.Params))
		}
		for k, v := range cmd.Params {
			if k != strings.ToLower(k) || len(k) > maxKeyLen || len(v) > maxValueLen || !printable(k) || !printable(v) {
				t.Fatalf("param %q=%q outside the limits", k, v)
			}
		}
	})
}

func TestRegisterURL(t *testing.T) {
	for _, c := range []struct {
		ip   string
		port int
		want string
	}{
		{"192.0.2.1", 4545, "http://192.0.2.1:4545/ersmesh/register"},
		{"bridge.example.org", 443, "https://bridge.example.org:443/ersmesh/register"},
		{"2001:db8::1", 80, "http://[2001:db8::1]:80/ersmesh/register"},
	} {
		if got := registerURL(c.ip, c.port); got != c.want {
			t.Errorf("registerURL(%q, %d) = %q, want %q", c.ip, c.port, got, c.want)
		}
	}
}
