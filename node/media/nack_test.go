package media

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
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
	waitAgain(again1 + 300)
	time.Sleep(200 * time.Millisecond)
	_, again2, _ := conn.counts()
	windows := int(time.Since(start)/time.Second) + 2 // the budget's seconds the flood touched
	if got := again2 - again1; got < 100 || got > windows*nackBudget {
		t.Fatalf("a NACK flood brought %d packets again, want between 100 and %d", got, windows*nackBudget)
	}
	t.Logf("the flood of %d NACKed packets brought %d again", 20*len(all), again2-again1)
}
