package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxReply bounds a reply the client reads.
const maxReply = 1 << 20

// DefaultAPI is where a device serves its ops endpoints and the commands.
const DefaultAPI = "127.0.0.1:7777"

// Call sends command with args ("key=value" each, as on EMS's command
// line) to the device API at api (host:port) and returns its reply. A
// reply with status FAIL is returned with a nil error: the caller decides;
// the error is for requests that got no EMS-shaped reply at all.
func Call(ctx context.Context, api, command string, args []string) (*Reply, error) {
	q := url.Values{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q: want key=value", a)
		}
		if q.Has(k) {
			return nil, fmt.Errorf("argument %q given twice", k)
		}
		q.Set(k, v)
	}
	u := url.URL{Scheme: "http", Host: api, Path: "/" + command, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device API at %s: %w (is the device running with --ops %s?)", api, err, api)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("device API at %s: %w", api, err)
	}
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil || r.Status == "" {
		return nil, fmt.Errorf("device API at %s answered %s, not a command reply: %.200q", api, resp.Status, b)
	}
	return &r, nil
}
