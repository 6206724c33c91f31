package web_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/node/media/ems"
)

// TestPlayerDemuxer feeds the player's EMS record parser (web/static/fmp4.js)
// the device's framing (package ems) split at every chunk size from 1 byte
// up: it must give back the init segment and each media segment exactly,
// and refuse a broken stream.
func TestPlayerDemuxer(t *testing.T) {
	hdr, err := ems.MoovHeader(ems.MaskVideo|ems.MaskAudio, []byte{0x67, 0x42, 0xc0, 0x1f})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := ems.AppendMoov(nil, hdr, []byte("ftypmoov-init"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		moof := []byte(fmt.Sprintf("moof-%d-header", i))
		mdat := []byte{0, 0, 0, 20, 'm', 'd', 'a', 't'}
		video := []byte(fmt.Sprintf("video-%d-bytes", i))
		audio := []byte(fmt.Sprintf("aac%d", i))
		seg := append(append(append(append([]byte{}, moof...), mdat...), video...), audio...)
		if stream, err = ems.AppendSegment(stream, seg, len(moof), len(video)); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(seg))
	}
	bytesJSON, _ := json.Marshal(stream)
	wantJSON, _ := json.Marshal(want)

	fb := newFakeBridge(t, time.Minute)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, fb.url+"/"); err != nil {
		t.Fatal(err)
	}
	got, err := browsertest.Eval[string](ctx, `(async () => {
		const m = await import(new URL('/fmp4.js', location.href));
		const bytes = Uint8Array.from(atob(`+string(bytesJSON)+`), (c) => c.charCodeAt(0));
		const want = `+string(wantJSON)+`;
		const text = (u8) => new TextDecoder().decode(u8);
		for (const chunk of [1, 2, 3, 4, 5, 7, 11, 64, bytes.length]) {
			const inits = [], segs = [];
			const d = new m.Demuxer({ onInit: (i) => inits.push(i), onSegment: (s) => segs.push(text(s)) });
			for (let off = 0; off < bytes.length; off += chunk) d.feed(bytes.slice(off, off + chunk).buffer);
			if (inits.length !== 1 || inits[0].codecs !== 'avc1.42c01f,mp4a.40.2' || text(inits[0].init) !== 'ftypmoov-init') {
				return 'chunk ' + chunk + ': init ' + JSON.stringify(inits.map((i) => i.codecs));
			}
			if (JSON.stringify(segs) !== JSON.stringify(want)) return 'chunk ' + chunk + ': segments ' + JSON.stringify(segs);
		}
		try {
			new m.Demuxer({ onInit() {}, onSegment() {} }).feed(new Uint8Array([7, 0, 0, 0]).buffer);
			return 'a record of type 7 was accepted';
		} catch (e) {}
		const e = await import(new URL('/ersmesh.js', location.href));
		const note = e.sessionInfo('v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\ni=audio is AAC\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\ni=media title\r\n');
		if (note !== 'audio is AAC') return 'sessionInfo = ' + JSON.stringify(note);
		if (e.sessionInfo('v=0\r\ns=-\r\nm=video 9 X 96\r\ni=media title\r\n') !== '') return 'sessionInfo took a media-level i=';
		return 'ok';
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	if got != "ok" {
		t.Fatal(got)
	}
}
