// The lifecycle both players share: the ERS player (ersmesh.js) and the
// WHEP player (whep.js) differ in how they find the device and exchange
// SDP, not in how they start, stop, report stages, keep the stage timeline,
// time their retries, show tracks or measure statistics. Those live here,
// once, so that a page can treat either player the same way.

import { StatsSampler } from './stats.js';
import { checkSupport, chooseTransport } from './support.js';

// Stages, in the order a successful session passes them; "waiting" (no
// device in the room) and "error" are off the happy path.
export const STAGES = ['connecting', 'joined', 'negotiating', 'connected', 'playing', 'waiting', 'error'];

// Reasons: why the player is waiting or has stopped, as the "reason" of
// stage events and player.reason, so that a page can react to a kind of
// failure without parsing the words of the message.
export const REASONS = [
  'unsupported',        // the browser lacks WebRTC, MSE or H.264
  'bridge-unreachable', // no bridge answers
  'bridge-lost',        // the connection to the bridge dropped
  'no-device',          // no device serves the room
  'device-unreachable', // a device serves the room but cannot be reached
  'device-left',        // the device ended the session
  'token',              // the bridge wants a (valid) token
  'room-not-allowed',   // the bridge does not serve this room
  'secret-missing',     // the room needs a secret
  'secret-wrong',       // the device refused the secret
  'refused',            // the bridge or device refused for another reason
  'untrusted',          // the offer is not from the room's device
  'no-path',            // no network path to the device
  'stream',             // the device cannot send this stream, or sent a broken one
  'full',               // the camera's uplink and its relaying viewers serve as many as they can
];

const maxBackoff = 10000; // ms
const maxTimeline = 16;   // stage entries kept

// Stages on the way to playing: they carry no reason.
const progressing = new Set(['joined', 'negotiating', 'connected', 'playing']);

// backoff is the wait before the (n+1)th retry in a row: 1 s doubling up to
// 10 s.
export function backoff(n) {
  return Math.min(1000 * 2 ** n, maxBackoff);
}

// bridgeList turns the bridges option (an array, or a comma-separated
// string as in ?bridges=) into distinct origins.
export function bridgeList(bridges) {
  const items = Array.isArray(bridges) ? bridges : String(bridges ?? '').split(',');
  const out = [];
  for (const raw of items) {
    const b = String(raw ?? '').trim();
    if (!b) continue;
    let origin;
    try {
      origin = new URL(b, location.href).origin;
    } catch {
      throw new Error(`ersmesh: bridge "${b}" is not a URL`);
    }
    if (origin === 'null' || !/^https?:$/.test(new URL(origin).protocol)) throw new Error(`ersmesh: bridge "${b}" is not an http(s) URL`);
    if (!out.includes(origin)) out.push(origin);
  }
  return out;
}

// PlayerBase is what a player is to a page: start(), close(), getStats(),
// the fields stage, message, reason, timeline and peerConnection, and the
// events "stage" ({detail: {stage, message, reason, timeline}}) and
// playerstarted. A subclass implements _connect() (begin a session) and
// _stop() (end it on close()), and calls _setStage as it goes.
export class PlayerBase extends EventTarget {
  constructor({ room, stream = 'sample', token = '', transport, video, logPrefix = '[ersmesh]' } = {}) {
    super();
    if (!room) throw new Error('ersmesh: a room name is needed');
    if (!(video instanceof HTMLVideoElement)) throw new Error('ersmesh: a <video> element is needed');
    this.room = room;
    this.stream = stream || 'sample';
    this.token = token || '';
    // "auto" (or none given): start() chooses from what the browser can
    // do, and the ERS player falls back to the other transport when the
    // first fails to start. transportChoice says which and why.
    this.auto = !transport || transport === 'auto';
    this.transport = this.auto ? '' : transport;
    this.transportChoice = { transport: this.transport, auto: this.auto, reason: '', fallback: '' };
    this.video = video;
    this._logPrefix = logPrefix;

    this.stage = '';
    this.message = '';
    this.reason = '';         // one of REASONS while waiting or stopped, else ""
    // The stages of the current attempt: {stage, message, start, ms}, start
    // in ms since the attempt began and ms how long the stage lasted (null
    // for the current one).
    this.timeline = [];
    this._timelineStart = 0;
    this.peerConnection = null;
    this.note = '';           // what the device said it cannot send (shown while playing)
    // Re-attaching a playing session through another bridge, and ICE
    // restarts: what the viewer sees while the picture goes on.
    // failover.state is "" (nothing to report), reattaching, reattached,
    // restarting-ice, restarted or fresh (re-attaching failed: a new
    // session replaces the old one).
    this.failover = { state: '', bridge: '', message: '' };

    this._running = false;
    this._timer = null;       // the one pending retry or watchdog
    this._started = false;    // playerstarted fired for this peer
    this._sampler = new StatsSampler();
    this._onPlaying = () => {
      if (this.peerConnection) this._played();
    };
  }

  start() {
    if (this._running) return;
    if (this.auto) {
      const c = chooseTransport();
      if (!c.transport) {
        this._setStage('error', c.reason, 'unsupported');
        return;
      }
      this._chooseTransport({ ...c, auto: true });
    } else {
      const unsupported = checkSupport(this.transport);
      if (unsupported) {
        this._setStage('error', unsupported, 'unsupported');
        return;
      }
      this._chooseTransport({ transport: this.transport, auto: false, reason: `${this.transport}: as asked (transport option or ?transport=)`, fallback: '' });
    }
    this._running = true;
    this.video.addEventListener('playing', this._onPlaying);
    this._connect();
  }

  close() {
    if (!this._running) return;
    this._running = false;
    clearTimeout(this._timer);
    this.video.removeEventListener('playing', this._onPlaying);
    this._stop();
    this._log('closed');
  }

  // getStats resolves to what the stats overlay shows, or null without a
  // peer connection: {transport, bridge, width, height, fps, bitrate
  // (bit/s), rtt (ms), packetLoss (% over the last interval, null on the
  // reliable fmp4 channel), candidate and remoteCandidate (host, srflx,
  // prflx, relay udp, relay tcp, relay tls), framesDecoded, framesDropped,
  // buffered (s of video ahead, fmp4), bytesReceived}. Rates are measured
  // between calls: call it about once a second.
  async getStats() {
    const pc = this.peerConnection;
    if (!pc) return null;
    const s = await this._sampler.sample(pc, this.video, this.transport);
    if (pc !== this.peerConnection) return null;
    return { ...s, transport: this._statsTransport(), transportReason: this.transportChoice.reason, bridge: this.bridge };
  }

  // _chooseTransport sets the transport and tells the page (event
  // "transport", {detail: transportChoice}).
  _chooseTransport(choice) {
    this.transport = choice.transport;
    this.transportChoice = choice;
    this._log(`transport ${choice.reason}`);
    this._emit('transport', { ...choice });
  }

  // _statsTransport names the transport in getStats.
  _statsTransport() {
    return this.transport;
  }

  // _connect begins a session; _stop ends the current one for close().
  _connect() {
    throw new Error('ersmesh: _connect is not implemented');
  }

  _stop() {}

  // _played runs when the video starts playing on the current peer.
  _played() {
    this._setStage('playing', this.note);
    if (!this._started) {
      this._started = true;
      this._emit('playerstarted');
    }
  }

  _log(...args) {
    console.log(this._logPrefix, ...args);
  }

  // --- stage and events ---

  _setStage(stage, message = '', reason = '') {
    if (progressing.has(stage)) reason = '';
    else if (!reason && stage === this.stage) reason = this.reason; // a new message for the same state
    if (stage === this.stage && message === this.message && reason === this.reason) return;
    const now = performance.now();
    if (stage !== this.stage) {
      // A new attempt starts its own timeline: "connecting" to a bridge,
      // or whatever follows a session that played.
      if (stage === 'connecting' || this.stage === 'playing' || this.timeline.length === 0) {
        this.timeline = [];
        this._timelineStart = now;
      }
      const last = this.timeline[this.timeline.length - 1];
      if (last && last.ms === null) last.ms = Math.round(now - this._timelineStart - last.start);
      this.timeline.push({ stage, message, start: Math.round(now - this._timelineStart), ms: null });
      if (this.timeline.length > maxTimeline) this.timeline.splice(0, this.timeline.length - maxTimeline);
    } else {
      const last = this.timeline[this.timeline.length - 1];
      if (last) last.message = message;
    }
    this.stage = stage;
    this.message = message;
    this.reason = reason;
    this._log(`stage ${stage}${reason ? ' (' + reason + ')' : ''}${message ? ': ' + message : ''}`);
    const timeline = this.timeline.map((e) => ({ ...e }));
    this.dispatchEvent(new CustomEvent('stage', { detail: { stage, message, reason, timeline } }));
  }

  // _setFailover (both players) reports the state of the session's signalling while its
  // media plays on: the stage stays, its message says what goes on.
  _setFailover(state, message) {
    this.failover = { state, bridge: this.bridge, message };
    this._log(`failover ${state}: ${message}`);
    this._emit('failover', { state, bridge: this.bridge, message });
    if (this.stage) this._setStage(this.stage, message);
  }

  _emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  // _later runs fn after ms, unless the player was closed; it replaces the
  // pending retry or watchdog, of which there is one at a time.
  _later(ms, fn) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._running) fn();
    }, ms);
  }

  // --- the peer ---

  // _showTrack puts a received track on the video. Offers without msid
  // give tracks with no stream: those are gathered in one.
  _showTrack(pc, e) {
    if (pc !== this.peerConnection) return;
    let stream = e.streams[0];
    if (!stream) {
      stream = this.video.srcObject instanceof MediaStream ? this.video.srcObject : new MediaStream();
      stream.addTrack(e.track);
    }
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    this.video.play().catch((err) => this._log('video.play:', err.message));
  }

  // _dropPeer closes the current peer connection, if any, and reports
  // whether there was one. Its talk back (talkback.js) goes with it.
  _dropPeer() {
    const pc = this.peerConnection;
    this._started = false;
    if (this.talkback) {
      this.talkback.close();
      this.talkback = null;
      this._emit('talkback', { state: 'gone', message: '' });
    }
    if (!pc) return false;
    this.peerConnection = null;
    pc.onicecandidate = pc.ontrack = pc.ondatachannel = pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
    pc.close();
    this.video.srcObject = null;
    return true;
  }
}
