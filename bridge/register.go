package bridge

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// RegisterPath is where a device hands a bridge its room record directly,
// as an EMS registers with the ERS it was told of (startWebRTC's
// ersip/ersport): POST, the signed record as the body.
const RegisterPath = "/ersmesh/register"

// maxRegisterBody bounds the body: a room record is well under this.
const maxRegisterBody = 8 << 10

// learner is a Resolver that can take records handed over directly
// (mesh.Resolver is one).
type learner interface {
	Learn(record []byte) (string, error)
}

// serveRegister checks a record as any DHT node would and, if it is good,
// answers lookups of its room from it: the bridge then reaches the device
// without a DHT lookup. It trusts the record, not the sender: the record
// is signed by the device, and an owned room's record by its owner only.
func (b *Bridge) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "register a room with POST and its signed record as the body", http.StatusMethodNotAllowed)
		return
	}
	l, ok := b.cfg.Resolver.(learner)
	if !ok {
		http.Error(w, "this bridge finds rooms only in the mesh", http.StatusNotImplemented)
		return
	}
	if !b.gate.Handshake(r) { // the same per-address rate as Socket.IO handshakes
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests from your address; retry in a second", http.StatusTooManyRequests)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegisterBody))
	if err != nil {
		http.Error(w, fmt.Sprintf("cannot read the record (at most %d bytes): %v", maxRegisterBody, err), http.StatusBadRequest)
		return
	}
	name, err := l.Learn(body)
	if err != nil {
		b.log.Info("refused a directly registered room record", "addr", r.RemoteAddr, "err", err)
		http.Error(w, "record refused: "+err.Error(), http.StatusBadRequest)
		return
	}
	b.log.Debug("room registered directly", "room", name, "addr", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}
