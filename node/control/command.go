package control

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Limits of a command request: it comes from the network (loopback, but
// any local process), so nothing in it is trusted to be small.
const (
	maxRequest  = 4096 // path and query together
	maxParams   = 16
	maxKeyLen   = 32
	maxValueLen = 512
)

// Command names, as EMS spells them. Names match case-insensitively.
const (
	CmdStartWebRTC = "startWebRTC"
	CmdStopWebRTC  = "stopWebRTC"
	CmdListConfig  = "listConfig"
)

var commandNames = []string{CmdStartWebRTC, CmdStopWebRTC, CmdListConfig}

// ErrBadRequest wraps every parse failure.
var ErrBadRequest = errors.New("bad command")

// Command is one parsed request: a known command name and its parameters,
// keyed by lower-cased name (roomid, token, ersip, ersport, keepalive,
// configid).
type Command struct {
	Name   string
	Params map[string]string
}

// ParseRequest reads a command from a request's path and raw query:
//
//	/startWebRTC?params=<base64("roomid=x token=y")>   (EMS)
//	/startWebRTC?roomid=x&token=y
//	/?c=startWebRTC&roomid=x&token=y                   (ERS admin style)
func ParseRequest(path, rawQuery string) (Command, error) {
	if len(path)+len(rawQuery) > maxRequest {
		return Command{}, fmt.Errorf("%w: request longer than %d bytes", ErrBadRequest, maxRequest)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Command{}, fmt.Errorf("%w: query: %v", ErrBadRequest, err)
	}
	name := strings.TrimPrefix(path, "/")
	if name == "" {
		name = q.Get("c")
		if len(q["c"]) != 1 {
			return Command{}, fmt.Errorf("%w: no command: use /<command> or ?c=<command>", ErrBadRequest)
		}
		delete(q, "c")
		delete(q, "i") // ERS's request id: nothing to do with it
	}
	cmd := Command{Params: map[string]string{}}
	for _, n := range commandNames {
		if strings.EqualFold(n, name) {
			cmd.Name = n
		}
	}
	if cmd.Name == "" {
		if len(name) > maxKeyLen {
			name = name[:maxKeyLen] + "…"
		}
		return Command{}, fmt.Errorf("%w: unknown command %q; the device knows %s", ErrBadRequest, name, strings.Join(commandNames, ", "))
	}
	if enc, ok := q["params"]; ok {
		if len(enc) != 1 {
			return Command{}, fmt.Errorf("%w: params given twice", ErrBadRequest)
		}
		delete(q, "params")
		raw, err := decodeBase64(enc[0])
		if err != nil {
			return Command{}, fmt.Errorf("%w: params is not base64: %v", ErrBadRequest, err)
		}
		for _, kv := range strings.Fields(string(raw)) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return Command{}, fmt.Errorf("%w: parameter %q is not key=value", ErrBadRequest, clip(kv))
			}
			if err := cmd.set(k, v); err != nil {
				return Command{}, err
			}
		}
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return Command{}, fmt.Errorf("%w: parameter %q given %d times", ErrBadRequest, clip(k), len(vs))
		}
		if err := cmd.set(k, vs[0]); err != nil {
			return Command{}, err
		}
	}
	return cmd, nil
}

func (c *Command) set(k, v string) error {
	if k == "" || len(k) > maxKeyLen || !printable(k) || strings.ContainsAny(k, " =") {
		return fmt.Errorf("%w: bad parameter name %q", ErrBadRequest, clip(k))
	}
	if len(v) > maxValueLen || !printable(v) {
		return fmt.Errorf("%w: parameter %s: value longer than %d bytes or with control characters", ErrBadRequest, k, maxValueLen)
	}
	k = strings.ToLower(k)
	if _, dup := c.Params[k]; dup {
		return fmt.Errorf("%w: parameter %s given twice", ErrBadRequest, k)
	}
	if len(c.Params) == maxParams {
		return fmt.Errorf("%w: more than %d parameters", ErrBadRequest, maxParams)
	}
	c.Params[k] = v
	return nil
}

// decodeBase64 takes standard or URL-safe base64, padded or not, as EMS
// clients produce both.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > maxKeyLen {
		return s[:maxKeyLen] + "…"
	}
	return s
}
