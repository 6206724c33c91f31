// Package socketio is the Socket.IO 0.9 (protocol revision 1) server
// transport that ERS browser players speak, written for this project: the
// handshake, the WebSocket transport, heartbeats, the packet codec, acks,
// and one bounded send queue per socket.
//
// It owns sockets and packets only. It knows nothing of ERS: rooms, joins,
// viewers and devices belong to package bridge, which implements Handler.
// It must not grow ERS events, and it offers no polling transports, no
// broadcast and no rooms.
//
// # Wire format
//
// Handshake: GET /socket.io/1/?t=<ms> answers 200 text/plain
// "<sid>:<heartbeat secs>:<close secs>:websocket" (sid: 20 random URL-safe
// characters, usable once, for Config.HandshakeTimeout). With ?jsonp=<n> the
// answer is the script `io.j[<n>]("<handshake>");`. A request with an Origin
// gets that origin echoed in Access-Control-Allow-Origin, with
// Access-Control-Allow-Credentials: true; OPTIONS preflights get 204.
//
// Transport: a WebSocket at /socket.io/1/websocket/<sid>, from any origin.
// The server sends "1::" first. An unknown, expired or used sid gets
// "7:::1+0" (client not handshaken, advice reconnect) and a close.
//
// Packet: "type:id[+]:endpoint[:data]", one per WebSocket text message, or
// several framed as "\ufffd<len>\ufffd<packet>..." where len counts UTF-16
// code units (the polling framing; accepted, never sent). Types:
//
//	0 disconnect  "0::" ends the socket (sent by the server on Close)
//	1 connect     "1::" opens the socket; "1::/ns" is confirmed, but the
//	              server has no handlers on endpoints other than ""
//	2 heartbeat   "2::" sent every HeartbeatInterval; any frame from the
//	              client resets its idle deadline (HeartbeatTimeout)
//	3 message     "3:::text"  → Event("message", ["\"text\""])
//	4 json        "4:::{...}" → Event("message", [{...}])
//	5 event       "5:::{"name":"join","args":[...]}" → Event("join", args)
//	6 ack         "6:::<id>+[args]" answers "5:<id>+::..." (AckFunc);
//	              "5:<id>::..." (no '+') is acked "6:::<id>" at once
//	7 error       "7:::<reason>+<advice>"; handler errors and malformed
//	              packets are answered "7:::<text>" ('+' replaced by '＋':
//	              the 0.9 client maps only the numeric reasons, so its
//	              "error" event gets "" and the text is for people)
//	8 noop
//
// Limits: a WebSocket message over Config.MaxFrame closes that socket with
// status 1009; a full send queue drops the socket as a slow client;
// 20 malformed packets drop it; a client silent for HeartbeatTimeout is
// dropped. Each socket has one read goroutine (which calls the Handler) and
// one write goroutine (the only writer of its connection); Server.Close
// waits for all of them.
//
// References: https://github.com/LearnBoost/socket.io-spec and the ERS
// notes in docs/protocol.md.
package socketio
