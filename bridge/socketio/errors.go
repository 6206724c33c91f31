package socketio

import "errors"

// Sentinel errors. The reasons passed to Handler.Disconnect wrap one of them,
// so callers can branch with errors.Is.
var (
	// ErrMalformed marks a packet or payload that does not follow the
	// Socket.IO 0.9 wire format.
	ErrMalformed = errors.New("socketio: malformed packet")

	// ErrClosed is returned by Emit and AckFunc once the socket is closing,
	// and is the Disconnect reason after Socket.Close.
	ErrClosed = errors.New("socketio: socket closed")

	// ErrSlowClient is returned by Emit, and is the Disconnect reason, when
	// the socket's send queue was full: the client does not read fast
	// enough, so it is dropped rather than buffered without bound.
	ErrSlowClient = errors.New("socketio: slow client dropped: send queue full")

	// ErrServerClosed is the Disconnect reason after Server.Close.
	ErrServerClosed = errors.New("socketio: server closed")

	// ErrClientDisconnect is the Disconnect reason when the client sent a
	// disconnect packet or closed the WebSocket.
	ErrClientDisconnect = errors.New("socketio: client disconnected")

	// ErrIdleTimeout is the Disconnect reason when the client sent nothing
	// for Config.HeartbeatTimeout.
	ErrIdleTimeout = errors.New("socketio: client silent for the heartbeat timeout")

	// ErrFrameTooBig is the Disconnect reason when the client sent a
	// WebSocket message larger than Config.MaxFrame.
	ErrFrameTooBig = errors.New("socketio: WebSocket message too big")

	// ErrAckUsed is returned by an AckFunc called a second time.
	ErrAckUsed = errors.New("socketio: ack already sent")
)
