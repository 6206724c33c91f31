package ersproto

// Events of the ERS protocol. A player emits Join, Message and Leave; the
// bridge emits STUNServers and TURNServers on connect, Message with the
// device's signalling and Remove when the device leaves.
const (
	// EventJoin is join(room, Join) with an ack (error, Room).
	EventJoin = "join"
	// EventResume is ersmesh's resume(room, Join with SID) with the ack of
	// a join: re-attach session SID, which came through another bridge
	// (or an earlier socket), instead of starting one.
	EventResume = "resume"
	// EventMessage carries one Message, both ways.
	EventMessage = "message"
	// EventLeave ends the player's session in the room.
	EventLeave = "leave"
	// EventRemove says a client (the device) left the room: Remove.
	EventRemove = "remove"
	// EventSTUNServers and EventTURNServers hand the player its ICE
	// servers, as []ICEServer, before any offer.
	EventSTUNServers = "stunservers"
	EventTURNServers = "turnservers"
)

// Quiet reports whether an event is one of signalmaster's that a viewer of
// a device has no use for but ERS players may still send (create,
// shareScreen, unshareScreen, trace): a bridge accepts them and does
// nothing.
func Quiet(event string) bool {
	switch event {
	case "create", "shareScreen", "unshareScreen", "trace":
		return true
	}
	return false
}

// Message types (Message.Type).
const (
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypeConnectivityError = "connectivityError"
	// TypeChallenge and TypeAuth prove a room secret (package trust): the
	// device's challenge, the player's proof.
	TypeChallenge = "challenge"
	TypeAuth      = "auth"
	// TypeResumeChallenge and TypeResumeProof re-attach a session
	// (EventResume): the device's challenge, the player's proof of its
	// resume key. TypeRestart asks the device for an ICE restart.
	TypeResumeChallenge = "resumeChallenge"
	TypeResumeProof     = "resumeProof"
	TypeRestart         = "restart"
	// TypeRelaySignal carries a relay link's negotiation between two
	// viewers through the device (docs/relay.md; package relay has the
	// other relay types).
	TypeRelaySignal = "relaySignal"
)

// Values an ERS player puts in every message it sends.
const (
	RoomTypeVideo = "video"
	PrefixWebkit  = "webkit"
)

// Transports a player may ask for in Join.Transport.
const (
	TransportSRTP = "srtp" // WebRTC media tracks
	TransportFMP4 = "fmp4" // fragmented MP4 over data channels (the EMS default)
)
