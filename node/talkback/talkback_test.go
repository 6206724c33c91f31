package talkback

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// speak writes n Opus packets (CELT silence, 20 ms) to sink as one spurt.
func speak(t *testing.T, sink Sink, n int) {
	t.Helper()
	sp, err := Start(sink)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i), Timestamp: uint32(960 * i), SSRC: 1}, Payload: []byte{0xf8, 0xff, 0xfe}}
		if err := sp.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkOgg(t *testing.T, b []byte, packets int) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("OggS")) || !bytes.Contains(b, []byte("OpusHead")) || !bytes.Contains(b, []byte("OpusTags")) {
		t.Fatalf("not Ogg Opus: %q", b[:min(len(b), 64)])
	}
	// Two header pages, then a page per packet.
	if got := bytes.Count(b, []byte("OggS")); got != packets+2 {
		t.Fatalf("%d Ogg pages, want %d", got, packets+2)
	}
}

func TestFileSinkWritesAFilePerSpurt(t *testing.T) {
	dir := t.TempDir()
	sink, err := ParseSink("file:" + filepath.Join(dir, "talk", "door.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	speak(t, sink, 10)
	speak(t, sink, 5)
	files, _ := filepath.Glob(filepath.Join(dir, "talk", "door-*.ogg"))
	if len(files) != 2 {
		t.Fatalf("files %q, want two spurts", files)
	}
	var sizes []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, bytes.Count(b, []byte("OggS"))-2)
		checkOgg(t, b, sizes[len(sizes)-1])
	}
	if sizes[0]+sizes[1] != 15 {
		t.Fatalf("packets per file %v, want 10 and 5", sizes)
	}
}

func TestCommandSinkFeedsStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "heard.ogg")
	sink, err := ParseSink("exec:tee " + out)
	if err != nil {
		t.Fatal(err)
	}
	speak(t, sink, 7)
	b, err := os.ReadFile(out) // Close waited for the command
	if err != nil {
		t.Fatal(err)
	}
	checkOgg(t, b, 7)
}

func TestParseSinkRefuses(t *testing.T) {
	for _, s := range []string{"", "file:", "exec:", "exec:   ", "speaker:x", "rtsp:cam", "pcm:44:aplay", "pcm:16000:", "pcm:x:aplay", "/tmp/x.ogg"} {
		if _, err := ParseSink(s); err == nil {
			t.Errorf("ParseSink(%q) accepted", s)
		}
	}
}

func TestFloorFirstHolderKeepsIt(t *testing.T) {
	var f Floor
	a, b := new(int), new(int)
	if ok, _ := f.Take(a, "alice"); !ok {
		t.Fatal("a free floor refused")
	}
	if ok, h := f.Take(b, "bob"); ok || h != "alice" {
		t.Fatalf("bob took a held floor (%v, holder %q)", ok, h)
	}
	f.Release(b) // not the holder: nothing
	if ok, _ := f.Take(a, "alice"); !ok || f.Holder() != "alice" {
		t.Fatal("the holder lost the floor")
	}
	f.Release(a)
	if ok, _ := f.Take(b, "bob"); !ok {
		t.Fatal("a released floor refused")
	}
}

// A command that stops reading its input costs a spurt, not the session:
// the write times out and Close kills the command.
func TestCommandSinkThatDoesNotRead(t *testing.T) {
	sink := &CommandSink{Argv: []string{"sleep", "30"}, WriteTimeout: 200 * time.Millisecond, Wait: 300 * time.Millisecond}
	sp, err := Start(sink)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var werr error
	big := make([]byte, 1000)
	big[0] = 0xf8
	for i := 0; werr == nil && i < 10000; i++ {
		werr = sp.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(960 * i)}, Payload: big})
	}
	if werr == nil {
		t.Fatal("10 MB written to a command that reads nothing")
	}
	if err := sp.Close(); err == nil {
		t.Fatal("Close of a command that never ended reported nothing")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a stuck command held the spurt for %v", d)
	}
}
