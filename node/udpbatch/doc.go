// Package udpbatch gives a device's PeerConnections UDP sockets that can
// send many datagrams in one system call. A Net wraps the transport.Net that
// pion's ICE agent opens its sockets with (webrtc.SettingEngine.SetNet):
// while its owner holds it (Hold), what the sockets are asked to send is
// copied into a queue, and Flush sends the queue with one sendmmsg per
// socket, runs of equal-sized datagrams to one address as one UDP GSO send
// (UDP_SEGMENT) where the kernel has it. Without a hold every send goes out
// at once, as on a plain socket.
//
// An srtp viewer's writer holds its PeerConnection's Net while it writes a
// frame's packets and flushes after it: one frame, tens of packets to one
// viewer, costs one system call instead of one per packet. Whatever else
// sends on the sockets meanwhile (RTCP, ICE, DTLS, from pion's goroutines)
// joins the queue and goes out with it, microseconds later.
//
// An fmp4 viewer's frames are written by pion's SCTP, packet by packet from
// its association's goroutine, with nothing that marks the end of a burst:
// once the viewer's stream flows its Net lingers (Linger), every send waits
// up to a millisecond for the others of its burst and a timer sends them
// together.
package udpbatch
