package localapi

import (
	"net/http/httptest"
	"testing"
)

func TestFromWebPage(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		header     map[string]string
		refused    bool
	}{
		{"curl", "127.0.0.1:3030", nil, false},
		{"curl to localhost", "localhost:3030", nil, false},
		{"IPv6 host", "[::1]:3030", nil, false},
		{"typed into the address bar", "127.0.0.1:3030", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"cross-site page", "127.0.0.1:3030", map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{"same-site page", "127.0.0.1:3030", map[string]string{"Sec-Fetch-Site": "same-site"}, true},
		{"page with Origin", "127.0.0.1:3030", map[string]string{"Origin": "http://evil.example"}, true},
		{"rebinding", "evil.example:3030", nil, true},
		{"rebinding same-origin", "evil.example:3030", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = tc.host
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		if got := FromWebPage(r); (got != "") != tc.refused {
			t.Errorf("%s: FromWebPage = %q, refused want %v", tc.name, got, tc.refused)
		}
	}
}
