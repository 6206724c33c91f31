package web_test

import (
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// TestManagedMediaSource: an iPhone's Safari has no MediaSource but a
// ManagedMediaSource (iOS 17.1+). No Safari runs here, so Chromium stands
// in: MediaSource hidden, a subclass of it exposed as ManagedMediaSource.
// The player must choose fmp4 through it, set disableRemotePlayback
// (without which Safari never opens it), play, and survive the browser
// evicting buffered media (bufferedchange with removed ranges).
func TestManagedMediaSource(t *testing.T) {
	d := startTestDemo(t, demo.Config{})

	b := browsertest.New(t)
	if err := browsertest.BeforeLoad(b, `{
		const Real = MediaSource;
		window.managedMade = 0;
		class ManagedMediaSource extends Real {
			constructor() { super(); window.managedMade++; }
			addSourceBuffer(type) { const sb = super.addSourceBuffer(type); window.managedBuffer = sb; return sb; }
		}
		delete window.MediaSource;
		window.ManagedMediaSource = ManagedMediaSource;
	}`); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.Navigate(b, d.URL+"&stats=1"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === "playing" && (() => {
		const v = document.getElementById("video");
		return v.getVideoPlaybackQuality().totalVideoFrames > 10 && v.currentTime > 0.5;
	})()`)
	browsertest.WaitFor(b, t, 5*time.Second, `typeof MediaSource === "undefined" && window.managedMade === 1 &&
		window.ersPlayer.transport === "fmp4" && /ManagedMediaSource plays H\.264/.test(window.ersPlayer.transportChoice.reason) &&
		window.ersPlayer._mse.managed && document.getElementById("video").disableRemotePlayback === true`)

	// The browser evicts media under the playhead: the player counts it,
	// moves playback into what is left and keeps playing.
	browsertest.WaitFor(b, t, 15*time.Second, `(() => {
		const v = document.getElementById("video"), sb = window.managedBuffer;
		if (sb.updating || sb.buffered.length === 0) return false;
		window.evictedAt = v.currentTime;
		const removed = { length: 1, start: () => 0, end: () => v.currentTime };
		const e = new Event("bufferedchange");
		e.removedRanges = removed;
		e.addedRanges = { length: 0 };
		sb.remove(0, v.currentTime + 0.05);
		sb.addEventListener("updateend", () => sb.dispatchEvent(e), { once: true });
		return true;
	})()`)
	browsertest.WaitFor(b, t, 15*time.Second, `window.ersPlayer._mse.evictions === 1 && (() => {
		const v = document.getElementById("video");
		return v.currentTime > window.evictedAt + 1 && !v.paused;
	})()`)
}

// TestNoEd25519: a browser whose WebCrypto lacks Ed25519 (Safari before
// 17, Firefox before 129, Chrome before 137) cannot check the device's
// signature. That is not tampering: the open room plays, marked
// unverified with the reason, instead of being refused as altered.
func TestNoEd25519(t *testing.T) {
	d := startTestDemo(t, demo.Config{})

	b := browsertest.New(t)
	if err := browsertest.BeforeLoad(b, `{
		const real = crypto.subtle.importKey.bind(crypto.subtle);
		window.ed25519Asked = 0;
		crypto.subtle.importKey = (format, key, alg, ...rest) => {
			if ((alg?.name ?? alg) === 'Ed25519') {
				window.ed25519Asked++;
				return Promise.reject(new DOMException('Unrecognized name', 'NotSupportedError'));
			}
			return real(format, key, alg, ...rest);
		};
	}`); err != nil {
		t.Fatal(err)
	}
	if err := browsertest.Navigate(b, d.URL); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 30*time.Second, `document.body.dataset.stage === "playing" && window.ed25519Asked > 0 &&
		window.ersPlayer.trust.state === "unverified" && /no Ed25519/.test(window.ersPlayer.trust.message)`)
}
