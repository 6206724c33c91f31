// Package ems is the record framing EvoStream's HTML5 player reads from the
// emsStreamChannel data channel of the fmp4 transport (ERS-PROTOCOL.md §5):
// one type byte, a 24-bit big-endian payload length, the payload. A
// fragmented-MP4 media segment travels as BEGIN, MOOF, MDAT, VIDEO, AUDIO,
// END; the initialization segment as one MOOV record whose first four bytes
// name the tracks and the H.264 profile.
//
// It owns the wire format only, both directions: the device appends records
// (Append*), a test client or tool parses them (Parser). It knows nothing
// of MP4 boxes, data channels or streams.
package ems
