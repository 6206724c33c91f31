package web_test

import (
	"bytes"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/web"
)

func TestMain(m *testing.M) {
	// TestFaultBridgeHelper is a bridge process the fault tests kill, not
	// a test: a normal run leaves it out.
	if os.Getenv(bridgeHelperEnv) == "" {
		flag.Set("test.skip", "^TestFaultBridgeHelper$")
	}
	goleak.VerifyTestMain(m)
}

// serve serves the player with no bridge behind it: /socket.io/ is a 404.
func serve(t *testing.T) string {
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPlayerWithoutBridge(t *testing.T) {
	url := serve(t)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, url+"/?room=x"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(ctx, t, 5*time.Second, `typeof window.ersPlayer === 'object' && window.ersPlayer.room === 'x'`)
	browsertest.WaitFor(ctx, t, 10*time.Second, `document.body.dataset.stage === 'error' && document.body.dataset.reason === 'bridge-unreachable'`)
	msg, err := browsertest.Eval[string](ctx, `document.getElementById('message').textContent`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "404") || !strings.Contains(msg, "retrying") {
		t.Errorf("#message = %q, want an explanation with the HTTP status and the retry", msg)
	}
	video, err := browsertest.Eval[bool](ctx, `(() => { const v = document.getElementById('video');
		return v instanceof HTMLVideoElement && v.autoplay && v.muted && v.playsInline })()`)
	if err != nil || !video {
		t.Errorf("no autoplaying, muted, inline #video (%v)", err)
	}
	if c := strings.Join(browsertest.Console(ctx), "\n"); !strings.Contains(c, "[ersmesh]") {
		t.Errorf("console has no [ersmesh] lines:\n%s", c)
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	if err := browsertest.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("screenshot is not a PNG (%v)", err)
	}
}

func TestRoomForm(t *testing.T) {
	url := serve(t)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, url+"/"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(ctx, t, 5*time.Second, `!document.getElementById('room-form').hidden`)
	state, err := browsertest.Eval[map[string]any](ctx, `({player: typeof window.ersPlayer, stage: document.body.dataset.stage ?? null})`)
	if err != nil {
		t.Fatal(err)
	}
	if state["player"] != "undefined" || state["stage"] != nil {
		t.Errorf("without a room: %v, want no player and no stage", state)
	}
	// Submitting the form opens the player for that room.
	if _, err := browsertest.Eval[any](ctx, `(() => { const f = document.getElementById('room-form');
		f.elements.room.value = 'frontdoor'; f.requestSubmit(); })()`); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(ctx, t, 5*time.Second, `location.search.includes('room=frontdoor') && window.ersPlayer?.room === 'frontdoor' && window.ersPlayer.stream === 'sample'`)
}

// TestSocketIOParser runs web/static/socketio.js's parser in the browser.
func TestSocketIOParser(t *testing.T) {
	url := serve(t)
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, url+"/"); err != nil {
		t.Fatal(err)
	}
	got, err := browsertest.Eval[string](ctx, `(async () => {
		const sio = await import(new URL('/socketio.js', location.href));
		const out = {};
		const parse = (name, text) => {
			try { out[name] = sio.parsePacket(text); } catch (e) { out[name] = 'throws: ' + e.message; }
		};
		parse('connect', '1::');
		parse('heartbeat', '2::');
		parse('event', '5:::{"name":"stunservers","args":[[{"urls":"stun:a:3478"}]]}');
		parse('eventAck', '5:7+::{"name":"join","args":["room",{"token":""}]}');
		parse('ack', '6:::1+[null,{"clients":{"dev":{"video":true}}}]');
		parse('ackNoData', '6:::3');
		parse('error', '7:::1+0');
		parse('errorText', '7:::unknown event "x+y"');
		parse('colonInData', '5:::{"name":"message","args":[{"sdp":"a=x:1:2"}]}');
		parse('bad', 'nonsense');
		parse('badType', '9::');
		out.framed = sio.decodePayload('\ufffd3\ufffd2::\ufffd58\ufffd5:::{"name":"remove","args":[{"id":"dev","type":"video"}]}')
			.map((p) => sio.parsePacket(p));
		out.plain = sio.decodePayload('2::');
		out.encoded = [sio.encodeEvent('join', ['r', {}], '4'), sio.encodeEvent('leave', [])];
		return JSON.stringify(out);
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{` +
		`"connect":{"type":1,"id":"","ack":false,"endpoint":"","data":""},` +
		`"heartbeat":{"type":2,"id":"","ack":false,"endpoint":"","data":""},` +
		`"event":{"type":5,"id":"","ack":false,"endpoint":"","data":"{\"name\":\"stunservers\",\"args\":[[{\"urls\":\"stun:a:3478\"}]]}","name":"stunservers","args":[[{"urls":"stun:a:3478"}]]},` +
		`"eventAck":{"type":5,"id":"7","ack":true,"endpoint":"","data":"{\"name\":\"join\",\"args\":[\"room\",{\"token\":\"\"}]}","name":"join","args":["room",{"token":""}]},` +
		`"ack":{"type":6,"id":"","ack":false,"endpoint":"","data":"1+[null,{\"clients\":{\"dev\":{\"video\":true}}}]","ackId":"1","args":[null,{"clients":{"dev":{"video":true}}}]},` +
		`"ackNoData":{"type":6,"id":"","ack":false,"endpoint":"","data":"3","ackId":"3","args":[]},` +
		`"error":{"type":7,"id":"","ack":false,"endpoint":"","data":"1+0","reason":"client not handshaken","advice":"0"},` +
		`"errorText":{"type":7,"id":"","ack":false,"endpoint":"","data":"unknown event \"x+y\"","reason":"unknown event \"x+y\"","advice":""},` +
		`"colonInData":{"type":5,"id":"","ack":false,"endpoint":"","data":"{\"name\":\"message\",\"args\":[{\"sdp\":\"a=x:1:2\"}]}","name":"message","args":[{"sdp":"a=x:1:2"}]},` +
		`"bad":"throws: socket.io: malformed packet \"nonsense\"",` +
		`"badType":"throws: socket.io: unknown packet type \"9\"",` +
		`"framed":[{"type":2,"id":"","ack":false,"endpoint":"","data":""},{"type":5,"id":"","ack":false,"endpoint":"","data":"{\"name\":\"remove\",\"args\":[{\"id\":\"dev\",\"type\":\"video\"}]}","name":"remove","args":[{"id":"dev","type":"video"}]}],` +
		`"plain":["2::"],` +
		`"encoded":["5:4+::{\"name\":\"join\",\"args\":[\"r\",{}]}","5:::{\"name\":\"leave\",\"args\":[]}"]` +
		`}`
	if got != want {
		t.Errorf("parsed packets:\n got %s\nwant %s", got, want)
	}
}
