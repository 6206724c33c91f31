package devicebench

import "testing"

// rtpPacket is the start of an RTP packet with sequence number seq and,
// if marker, the marker bit.
func rtpPacket(seq uint16, marker bool) []byte {
	p := make([]byte, 12)
	p[0] = 2 << 6
	if marker {
		p[1] = 0x80 | 96
	} else {
		p[1] = 96
	}
	p[2], p[3] = byte(seq>>8), byte(seq)
	return p
}

func TestSeqCounter(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		seqs                  []uint16
		markers               []bool // nil: none
		packets, frames, lost int64
	}{
		{name: "in order", seqs: []uint16{10, 11, 12, 13}, markers: []bool{false, true, false, true}, packets: 4, frames: 2},
		{name: "gap", seqs: []uint16{10, 11, 15, 16}, packets: 4, lost: 3},
		// Across the 16-bit wrap nothing is lost.
		{name: "wrap", seqs: []uint16{65534, 65535, 0, 1}, packets: 4},
		{name: "gap across the wrap", seqs: []uint16{65535, 2}, packets: 2, lost: 2},
		// A late packet is counted and does not count as a gap, nor does
		// its successor count the packets after it again.
		{name: "reordered", seqs: []uint16{10, 12, 11, 13}, packets: 4, lost: 1},
		{name: "repeated", seqs: []uint16{10, 11, 11, 12}, packets: 4},
		// A frame's last packet lost, then resent after a later one came:
		// the gap stays counted, and the late packet counts no frame.
		{name: "resent marker", seqs: []uint16{10, 12, 11}, markers: []bool{false, false, true}, packets: 3, lost: 1},
		{name: "repeated marker", seqs: []uint16{10, 11, 11}, markers: []bool{false, true, true}, packets: 3, frames: 1},
	} {
		var c seqCounter
		for i, s := range tc.seqs {
			c.add(rtpPacket(s, tc.markers != nil && tc.markers[i]))
		}
		p, f, l := c.load()
		if p != tc.packets || f != tc.frames || l != tc.lost {
			t.Errorf("%s: packets %d, frames %d, lost %d; want %d, %d, %d", tc.name, p, f, l, tc.packets, tc.frames, tc.lost)
		}
	}
	var c seqCounter
	c.add([]byte{0x80, 0, 0}) // shorter than an RTP header
	c.add(make([]byte, 12))   // version 0
	if p, _, _ := c.load(); p != 0 {
		t.Errorf("counted %d packets that are not RTP", p)
	}
}
