// Talk back (issue #16): push-to-talk from the viewer's microphone to the
// camera, on the same PeerConnection. The device's offer carries an audio
// section it receives on (recvonly, or sendrecv when the stream's own audio
// is Opus); the player answers it with no track and puts the microphone's
// track on it only while the talk button is held (replaceTrack), so there
// is no renegotiation. The device says what became of the audio in
// "talkback" messages (docs/protocol.md §5, talkback).

// talkbackMid is the mid of the offer's audio section the device receives
// on, or null when it offers no talkback.
export function talkbackMid(sdp) {
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    if (!section.startsWith('audio ')) continue;
    if (!/\r?\na=(recvonly|sendrecv)\r?$/m.test(section)) continue;
    const mid = /\r?\na=mid:([^\r\n]+)/.exec(section);
    if (mid) return { mid: mid[1], sendrecv: /\r?\na=sendrecv\r?$/m.test(section) };
  }
  return null;
}

// What the viewer reads for each of the device's states.
const words = {
  talking: 'You are talking: the camera plays your voice.',
  busy: (p) => `Someone else is talking${p.holder ? ` (${p.holder})` : ''}; wait for them to finish.`,
  refused: (p) => `The camera refused your voice: ${p.reason || 'only viewers who know the room secret may talk'}.`
    + (/talk secret/.test(p.reason ?? '') ? ' If you were given one, add #talk=… to the address.' : ''),
  released: '',
  failed: (p) => `The camera could not play your voice: ${p.reason || 'its speaker failed'}.`,
};

// Talkback drives one PeerConnection's talk section. onState(state,
// message) hears: available, asking (for the microphone), talking, busy,
// refused, released, failed, unavailable (no microphone for this page).
export class Talkback {
  // prepare readies pc (its remote offer set, its answer not yet made) to
  // send on the talk section; null when the offer has none.
  static prepare(pc, offerSdp, onState) {
    const found = talkbackMid(offerSdp);
    if (!found) return null;
    const tr = pc.getTransceivers().find((t) => t.mid === found.mid);
    if (!tr) return null;
    tr.direction = found.sendrecv ? 'sendrecv' : 'sendonly';
    return new Talkback(tr, onState);
  }

  // forWHEP is for a WHEP player, whose own offer had a sendrecv audio
  // section (transceiver): state is the bridge's Ersmesh-Talkback header
  // ("ready", "refused" with reason, or "" when the stream takes no
  // talkback). WHEP has no channel for the device's later messages, so the
  // player says "talking" itself once the microphone is on the wire; who
  // holds the floor it cannot learn.
  static forWHEP(transceiver, state, reason, onState) {
    if (state === 'refused') onState('refused', words.refused({ reason }));
    if (state !== 'ready' || !transceiver) return null;
    return new Talkback(transceiver, onState, { local: true });
  }

  constructor(transceiver, onState, { local = false } = {}) {
    this._tr = transceiver;
    this._onState = onState;
    this._local = local;
    this._track = null;
    this._pressed = false;
    this._pressedAt = 0;
    this.timing = {}; // pressedAt, sendingAt (performance.now())
    onState('available', 'Hold the Talk button (or the T key) to speak through the camera.');
  }

  // press asks for the microphone (only now, on the viewer's gesture) and
  // sends it until release.
  async press() {
    if (this._pressed) return;
    this._pressed = true;
    this.timing = { pressedAt: performance.now() };
    if (!window.isSecureContext) {
      this._onState('unavailable', 'Talking needs a secure page: open the player over HTTPS (or on localhost) to use the microphone.');
      this._pressed = false;
      return;
    }
    if (!navigator.mediaDevices?.getUserMedia) {
      this._onState('unavailable', 'This browser gives this page no microphone.');
      this._pressed = false;
      return;
    }
    this._onState('asking', 'Asking for the microphone…');
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
    } catch (err) {
      this._pressed = false;
      const denied = err?.name === 'NotAllowedError' || err?.name === 'SecurityError';
      this._onState('unavailable', denied
        ? 'The browser refused the microphone: allow it for this page (the icon in the address bar) to talk.'
        : `No microphone could be opened (${err?.name || err}).`);
      return;
    }
    const track = stream.getAudioTracks()[0];
    if (!this._pressed || !track) { // let go while the browser asked
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    this._track = track;
    try {
      await this._tr.sender.replaceTrack(track);
      this.timing.sendingAt = performance.now();
      if (this._local && this._track === track) this._onState('talking', words.talking);
    } catch (err) {
      this._onState('failed', `Cannot send the microphone: ${err.message}`);
      this.release();
    }
  }

  // release stops sending; the device frees the floor after a short silence.
  release() {
    this._pressed = false;
    const t = this._track;
    this._track = null;
    if (!t) return;
    this._tr.sender.replaceTrack(null).catch(() => {});
    t.stop();
    if (this._local) this._onState('released', words.released);
  }

  // onMessage takes the device's talkback message payload.
  onMessage(payload) {
    const state = payload?.state;
    if (typeof state !== 'string' || !(state in words)) return;
    const w = words[state];
    this._onState(state, typeof w === 'function' ? w(payload) : w);
  }

  close() {
    this.release();
  }
}
