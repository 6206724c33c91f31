// Package ersproto is the ERS browser protocol as Go types: what a player
// and a bridge say to each other over Socket.IO 0.9 (EvoStream's ERS, see
// ERS-PROTOCOL.md and docs/protocol.md), as package signalwire is for the
// bridge and the device.
//
// It names the events (join, message, leave, remove, stunservers,
// turnservers), holds the join arguments (Join), the "message" event
// (Message) and the payloads it carries (SessionDescription, Candidate,
// Challenge, Auth), the room description of the join ack (Room) and the
// ICE server lists, and parses what a browser sends with size limits and
// clear errors (ParseJoin, ParseMessage). The bridge uses it to serve
// players; the Go test clients and load tools use it to play one.
//
// It knows nothing of Socket.IO framing (bridge/socketio,
// internal/sioclient) or of what a device does with a message (node,
// signalwire): only the shapes and names of the ERS events.
package ersproto
