package media

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestNACKResendsFromHistory: a NACKed packet is sent again (on the RTX
// SSRC, which the viewer negotiated); a viewer that
// NACKs the whole history over and over gets at most nackBudget packets a
// second again, not its history each time. Packets are counted as they
// arrive at the viewer's socket.
func TestNACKResendsFromHistory(t *testing.T) {
	s := newTestStream(t)
	v, err := s.SubscribeRTP()
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnsubscribeRTP(v)
	conn, viewer := connectViewer(t, v)
	ssrc := v.video.b.Load().ssrc
	conn.mu.Lock()
	conn.media = ssrc
	conn.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if total, _, _ := conn.counts(); total >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the viewer got too few packets in 20 s")
		}
		feed(s, i, 1)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the last packets arrive
	_, again0, last := conn.counts()
	nack := func(seqs []uint16) {
		if err := viewer.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}}); err != nil {
			t.Fatal(err)
		}
	}
	waitAgain := func(want int) int {
		for {
			_, again, _ := conn.counts()
			if again >= want || time.Now().After(deadline) {
				return again
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// One lost packet.
	nack([]uint16{last - 3})
	if got := waitAgain(again0+1) - again0; got != 1 {
		t.Fatalf("one NACK brought %d packets again, want 1", got)
	}
	time.Sleep(50 * time.Millisecond)
	_, again1, _ := conn.counts()
	if again1 != again0+1 {
		t.Fatalf("one NACK brought %d packets again, want 1", again1-again0)
	}

	// The attacker: the last 300 packets, 20 times in half a second.
	all := make([]uint16, 300)
	for i := range all {
		all[i] = last - 299 + uint16(i)
	}
	start := time.Now()
	for range 20 {
		nack(all)
		time.Sleep(25 * time.Millisecond)
	}
	// The resends have all come when their count stops growing (the
	// receiving socket may drop some of a burst: waiting for a number
	// could wait for ever).
	again2 := -1
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		_, again, _ := conn.counts()
		if again == again2 {
			break
		}
		again2 = again
	}
	windows := int(time.Since(start)/time.Second) + 2 // the budget's seconds the flood touched
	if got := again2 - again1; got < 100 || got > windows*nackBudget {
		t.Fatalf("a NACK flood brought %d packets again, want between 100 and %d", got, windows*nackBudget)
	}
	t.Logf("the flood of %d NACKed packets brought %d again", 20*len(all), again2-again1)
}

// holdCounter is a SendBatch that counts its holds.
type holdCounter struct{ held, holds, flushes int }

func (h *holdCounter) Hold()  { h.held++; h.holds++ }
func (h *holdCounter) Flush() { h.held--; h.flushes++ }

// TestNACKResendsInOneBatch: the packets one NACK asks for are resent
// under one hold of the PeerConnection's sockets, so that they leave in
// one system call, not one each.
func TestNACKResendsInOneBatch(t *testing.T) {
	batch := &holdCounter{}
	i, err := nackFactory{batch: batch}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	n := i.(*nackResponder)
	var held, loose int
	w := n.BindLocalStream(&interceptor.StreamInfo{SSRC: 1, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
		interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
			if batch.held > 0 {
				held++
			} else {
				loose++
			}
			return len(p), nil
		}))
	payload := []byte{1, 2, 3}
	for seq := range uint16(40) {
		w.Write(&rtp.Header{SSRC: 1, SequenceNumber: seq}, payload, nil)
	}
	loose = 0
	n.resend(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{3, 5, 6, 7, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39})})
	if held != 24 || loose != 0 {
		t.Fatalf("%d packets resent under a hold, %d without, want all 24 under one", held, loose)
	}
	if batch.holds != 1 || batch.flushes != 1 {
		t.Fatalf("%d holds and %d flushes for one NACK, want 1 each", batch.holds, batch.flushes)
	}
}

// TestNACKResendKeepsHeaders: a resent packet has the header it was sent
// with, the device's plain ones (kept field by field) and one with CSRCs
// and a header extension (kept whole) alike.
func TestNACKResendKeepsHeaders(t *testing.T) {
	i, err := nackFactory{}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	n := i.(*nackResponder)
	var got []rtp.Header
	w := n.BindLocalStream(&interceptor.StreamInfo{SSRC: 7, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
		interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
			got = append(got, *h)
			return len(p), nil
		}))
	plain := rtp.Header{Version: 2, Marker: true, PayloadType: 102, SequenceNumber: 100, Timestamp: 9000, SSRC: 7}
	rich := rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: 101, Timestamp: 9001, SSRC: 7, CSRC: []uint32{5}}
	if err := rich.SetExtension(1, []byte{0xaa}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []rtp.Header{plain, rich} {
		w.Write(&h, []byte{1}, nil)
	}
	got = nil
	n.resend(&rtcp.TransportLayerNack{MediaSSRC: 7, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{100, 101})})
	if len(got) != 2 {
		t.Fatalf("%d packets resent, want 2", len(got))
	}
	for k, want := range []rtp.Header{plain, rich} {
		a, _ := got[k].Marshal()
		b, _ := want.Marshal()
		if !bytes.Equal(a, b) {
			t.Errorf("resent header %d is %+v, want %+v", k, got[k], want)
		}
	}
}

// TestNACKResendAllocatesNothing: answering a NACK, RTX payloads
// included, allocates nothing per packet resent: a viewer that NACKs its
// whole budget every second makes no garbage.
func TestNACKResendAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items); .ci/run runs this test without it")
	}
	i, err := nackFactory{}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	n := i.(*nackResponder)
	resent := 0
	w := n.BindLocalStream(&interceptor.StreamInfo{SSRC: 1, SSRCRetransmission: 2, PayloadTypeRetransmission: 97,
		RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
		interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
			if h.SSRC == 2 && len(p) == 1202 {
				resent++
			}
			return len(p), nil
		}))
	payload := make([]byte, 1200)
	for seq := range uint16(nackHistory) {
		w.Write(&rtp.Header{SSRC: 1, SequenceNumber: seq}, payload, nil)
	}
	nack := &rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{10, 11, 12, 13, 14, 15, 16, 17})}
	n.mu.Lock()
	st := n.streams[1]
	n.mu.Unlock()
	allocs := testing.AllocsPerRun(20, func() {
		st.mu.Lock()
		for k := range st.sent {
			st.sent[k].resent = 0 // each run may resend them again
		}
		st.resends = 0
		st.mu.Unlock()
		n.resend(nack)
	})
	if resent != 21*8 {
		t.Fatalf("%d RTX packets resent, want %d", resent, 21*8)
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per NACK of 8 packets, want none", allocs)
	}
}
