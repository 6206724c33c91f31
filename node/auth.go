package node

import (
	"errors"
	"fmt"

	"github.com/ersmesh/ersmesh/signalwire"
)

// Errors an Authorize hook returns to refuse a viewer. The device sends them
// to the bridge as a reject with signalwire.CodeUnauthorized or
// signalwire.CodeForbidden, which a WHEP bridge answers with 401 or 403.
var (
	ErrUnauthorized = errors.New("this room needs a token")
	ErrForbidden    = errors.New("the token does not open this room")
)

// authorize runs the device's Authorize hook, if any. Tokens and room
// secrets are checked here, on the device, never only by a bridge: bridges
// are run by strangers and merely pass the viewer's token along.
func (d *Device) authorize(join *signalwire.Message) error {
	if d.cfg.Authorize == nil {
		return nil
	}
	err := d.cfg.Authorize(join.Room, join.Stream, join.Token)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnauthorized):
		return &refusal{code: signalwire.CodeUnauthorized, msg: err.Error()}
	case errors.Is(err, ErrForbidden):
		return &refusal{code: signalwire.CodeForbidden, msg: err.Error()}
	}
	// Any other failure is still a refusal; without a code the bridge
	// reports the reason as is.
	return err
}

// refusal is an error that tells the bridge why, in words (Error) and as a
// signal code (for statuses).
type refusal struct {
	code string
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

// refusalCode is the signal code of err, or "" when it has none.
func refusalCode(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.code
	}
	return ""
}
