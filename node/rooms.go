package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ersmesh/ersmesh/room"
)

// Errors of StartRoom and StopRoom, for callers that branch on them (the
// control API answers FAIL with its own words).
var (
	ErrRoomStarted    = errors.New("room already started")
	ErrRoomNotStarted = errors.New("room not started")
	ErrDeviceClosed   = errors.New("device closed")
)

// errRoomStopped is the cause that ends the sessions of a stopped room.
var errRoomStopped = errors.New("room stopped")

// StartRoom starts serving a room at run time: it publishes the room's
// record and returns once the record is in the DHT (or with the error that
// kept it out; then the room is not served). A room can only be started
// once: ErrRoomStarted when it is served, or being started, already. A
// non-empty secret becomes the room's secret (package trust): viewers must
// prove it, as with Config.Secrets. StopRoom or Close while the record is
// being published cut the start short: it then returns an error and the
// room is not served.
func (d *Device) StartRoom(ctx context.Context, r, secret string) error {
	name, err := d.canonicalRoom(r)
	if err != nil {
		return err
	}
	d.ctl.Lock()
	if d.ctx.Err() != nil {
		d.ctl.Unlock()
		return ErrDeviceClosed
	}
	d.roomsMu.Lock()
	if d.rooms[name] {
		d.roomsMu.Unlock()
		d.ctl.Unlock()
		return fmt.Errorf("%w: %s", ErrRoomStarted, name)
	}
	// Served from now on, so that a bridge that finds the record at once
	// meets a device that answers.
	d.rooms[name] = true
	if secret != "" {
		d.secrets[name] = secret
	}
	d.roomsMu.Unlock()
	if secret != "" {
		d.warnWeakSecret(name, secret)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := &roomStart{cancel: cancel}
	d.starting[name] = start
	d.ctl.Unlock()

	// The publication is a DHT put that may take up to ctx's deadline: it
	// runs without the lock, so that StopRoom, Close and other rooms go on
	// meanwhile. The room is marked as starting; the result is committed
	// below, unless StopRoom or Close took the mark away.
	err = d.publisher.Add(pctx, name)

	d.ctl.Lock()
	defer d.ctl.Unlock()
	if d.starting[name] != start {
		// Stopped or closed while publishing; StopRoom has already
		// taken the room out of d.rooms. Unless a newer start serves it
		// now, the record must not be republished.
		if !d.serves(name) {
			d.publisher.Remove(name)
		}
		if d.ctx.Err() != nil {
			return ErrDeviceClosed
		}
		return fmt.Errorf("start room %s: %w", name, errRoomStopped)
	}
	delete(d.starting, name)
	if err != nil {
		d.roomsMu.Lock()
		delete(d.rooms, name)
		delete(d.secrets, name)
		d.roomsMu.Unlock()
		d.publisher.Remove(name) // an earlier start, cut short, may have added it
		return fmt.Errorf("start room %s: %w", name, err)
	}
	d.emit(Event{Type: EventStarted, Room: name})
	return nil
}

// roomStart marks a room whose record is being published by StartRoom;
// cancel cuts the publication short.
type roomStart struct{ cancel context.CancelFunc }

// StopRoom stops serving a room: the device refuses new viewers of it, ends
// the sessions of its viewers and stops republishing its record, which
// lookups then forget within the record time to live. A room still being
// started is stopped too: its StartRoom returns an error.
func (d *Device) StopRoom(r string) error {
	name, err := room.ParseName(r)
	if err != nil {
		return err
	}
	d.ctl.Lock()
	defer d.ctl.Unlock()
	d.roomsMu.Lock()
	if !d.rooms[name.String()] {
		d.roomsMu.Unlock()
		return fmt.Errorf("%w: %s", ErrRoomNotStarted, name)
	}
	delete(d.rooms, name.String())
	delete(d.secrets, name.String())
	d.roomsMu.Unlock()
	if st := d.starting[name.String()]; st != nil {
		// Never started, so no stopped event; StartRoom unpublishes it.
		st.cancel()
		delete(d.starting, name.String())
	} else {
		d.publisher.Remove(name.String())
		// Before the sessions end, so that a room's events always read
		// stopped, then its viewers' closing.
		d.emit(Event{Type: EventStopped, Room: name.String(), Reason: "stopped"})
	}

	// A session admitted before the delete above either shows its room
	// here or checks again after recording it (session.run).
	d.mu.Lock()
	for s := range d.viewers {
		s.mu.Lock()
		if s.stat.Room == name.String() {
			s.cancel(errRoomStopped)
		}
		s.mu.Unlock()
	}
	d.mu.Unlock()
	return nil
}

// Rooms returns the canonical names of the rooms the device serves, sorted.
func (d *Device) Rooms() []string {
	d.roomsMu.Lock()
	defer d.roomsMu.Unlock()
	return slices.Sorted(maps.Keys(d.rooms))
}

// serves reports whether the device serves room (a canonical name).
func (d *Device) serves(room string) bool {
	d.roomsMu.Lock()
	defer d.roomsMu.Unlock()
	return d.rooms[room]
}

// secret returns the room's secret, "" when it has none.
func (d *Device) secret(room string) string {
	d.roomsMu.Lock()
	defer d.roomsMu.Unlock()
	return d.secrets[room]
}

// canonicalRoom parses r and checks that this device may serve it.
func (d *Device) canonicalRoom(r string) (string, error) {
	name, err := room.ParseName(r)
	if err != nil {
		return "", err
	}
	if owner, ok := name.Owner(); ok && owner != d.cfg.Mesh.ID() {
		return "", fmt.Errorf("room %q is owned by %s, not by this device (%s)", r, owner, d.cfg.Mesh.ID())
	}
	return name.String(), nil
}

// RoomRecord returns a fresh signed record of one of the device's rooms,
// for handing to a bridge directly (see bridge.RegisterPath).
func (d *Device) RoomRecord(room string) ([]byte, error) {
	return d.publisher.Record(room)
}
