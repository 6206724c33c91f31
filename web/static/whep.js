// WHEP for the ersmesh player: the standard way to pull a WebRTC stream
// over plain HTTP (draft-ietf-wish-whep; its twin WHIP is RFC 9725). The
// browser POSTs its offer to the bridge's /whep/<room>/<stream>, the device
// answers through the bridge, and candidates found later are sent with
// PATCH as RFC 8840 SDP fragments. An alternative to the ERS protocol
// (ersmesh.js) for `?protocol=whep`; it fires the same "stage" events.

import { PlayerBase, backoff } from './playerbase.js';
import { TrustUnavailable, ownerOf, verifyAnswer } from './trust.js';

const postTimeout = 25000;   // ms: the bridge may need a DHT lookup and the device's answer
const connectTimeout = 30000; // ms from the answer to a connected peer

function log(...args) {
  console.log('[ersmesh whep]', ...args);
}

// iceServersFromLinks reads RFC 9725 Link headers:
// <stun:host:port>; rel="ice-server"[; username="u"; credential="c"; ...].
export function iceServersFromLinks(header) {
  const out = [];
  if (!header) return out;
  // Split on the commas between links, not those inside quotes.
  for (const link of header.match(/<[^>]*>(?:\s*;\s*[^;,=]+(?:=(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*/g) ?? []) {
    const url = link.slice(1, link.indexOf('>'));
    const params = {};
    for (const m of link.matchAll(/;\s*([^;=\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,]*)/g)) {
      let v = m[2].trim();
      if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      params[m[1].toLowerCase()] = v;
    }
    if (params.rel !== 'ice-server') continue;
    const server = { urls: url };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    out.push(server);
  }
  return out;
}

// sdpFragment writes candidates ({candidate, sdpMid}) as an RFC 8840
// application/trickle-ice-sdpfrag body, one media section per mid.
export function sdpFragment(ufrag, pwd, candidates, end) {
  let s = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`;
  const byMid = new Map();
  for (const c of candidates) {
    const mid = c.sdpMid ?? '0';
    if (!byMid.has(mid)) byMid.set(mid, []);
    byMid.get(mid).push(c.candidate);
  }
  if (byMid.size === 0 && end) byMid.set('0', []);
  for (const [mid, lines] of byMid) {
    s += `m=audio 9 RTP/AVP 0\r\na=mid:${mid}\r\n`;
    for (const l of lines) s += `a=${l}\r\n`;
    if (end) s += 'a=end-of-candidates\r\n';
  }
  return s;
}

function sdpAttr(sdp, name) {
  const m = sdp.match(new RegExp(`^a=${name}:(.*)$`, 'm'));
  return m ? m[1].trim() : '';
}

// WHEPPlayer plays one room's stream over WHEP. It is a PlayerBase: the
// same stage events (with their timeline), reasons, playerstarted and
// getStats as Player.
export class WHEPPlayer extends PlayerBase {
  constructor({ bridge = location.origin, room, stream = 'sample', token = '', video } = {}) {
    // WHEP carries media as RTP tracks.
    super({ room, stream, token, transport: 'srtp', video, logPrefix: '[ersmesh whep]' });
    this.bridge = new URL(bridge, location.href).origin;
    this.endpoint = `${this.bridge}/whep/${encodeURIComponent(room)}/${encodeURIComponent(this.stream)}`;
    this.session = null;      // the session's URL (the POST's Location)

    this._failures = 0;       // consecutive, for the backoff
    this._etag = '';
    this._pending = [];       // candidates found before the session existed
    this._ended = false;      // end of candidates seen
    this._patching = Promise.resolve();
  }

  _statsTransport() {
    return 'whep';
  }

  _stop() {
    this._endSession();
  }

  _retry(stage, why, afterMs, reason = '') {
    this._endSession();
    const wait = afterMs ?? backoff(this._failures++);
    this._setStage(stage, `${why} — retrying in ${Math.ceil(wait / 1000)} s…`, reason);
    this._later(wait, () => this._connect());
  }

  // _endSession closes the peer and DELETEs the session, if any.
  _endSession() {
    this._dropPeer();
    const url = this.session;
    this.session = null;
    this._pending = [];
    this._ended = false;
    if (url) {
      // keepalive: the DELETE must go out even when the page is closing.
      fetch(url, { method: 'DELETE', keepalive: true }).catch((err) => log('DELETE failed:', err.message));
    }
  }

  async _connect() {
    if (this.stage !== 'error') this._setStage('connecting', `Asking ${this.bridge} for room "${this.room}"…`);
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.peerConnection = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (e) => this._showTrack(pc, e);
    pc.onicecandidate = (e) => {
      if (pc !== this.peerConnection) return;
      if (e.candidate && e.candidate.candidate) {
        this._pending.push({ candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid });
      } else if (!e.candidate) {
        this._ended = true;
      }
      this._trickle(pc);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.peerConnection) return;
      switch (pc.connectionState) {
        case 'connected':
          clearTimeout(this._timer);
          this._failures = 0;
          if (this.stage !== 'playing') this._setStage('connected', 'Connected to the device; waiting for video…');
          break;
        case 'failed':
          this._retry('waiting', 'The connection to the device failed');
          break;
      }
    };

    let resp, answer, offer;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const headers = { 'Content-Type': 'application/sdp' };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      offer = pc.localDescription.sdp; // the device's signature binds it
      resp = await fetch(this.endpoint, {
        method: 'POST', headers, body: offer, signal: AbortSignal.timeout(postTimeout),
      });
      answer = await resp.text();
    } catch (err) {
      if (pc !== this.peerConnection) return;
      this._retry('connecting', `Cannot reach the bridge: ${err.message}`, undefined, 'bridge-unreachable');
      return;
    }
    if (pc !== this.peerConnection) return;
    const why = answer.trim();
    switch (resp.status) {
      case 201:
        break;
      case 404:
        this._retry('waiting', why || `No device is serving room "${this.room}" right now`, undefined, 'no-device');
        return;
      case 429:
      case 503: {
        const after = Number(resp.headers.get('Retry-After'));
        this._retry('waiting', why || `The bridge is busy (${resp.status})`, after > 0 ? after * 1000 : undefined);
        return;
      }
      default:
        // 400, 401, 403, 415: retrying the same request cannot help.
        this._endSession();
        this._setStage('error', `The bridge refused to play room "${this.room}" (${resp.status}): ${why}`);
        return;
    }
    this.session = new URL(resp.headers.get('Location'), this.endpoint).href;
    this._etag = resp.headers.get('ETag') ?? '';
    if (!(await this._checkAnswer(resp, offer, answer)) || pc !== this.peerConnection) {
      if (pc === this.peerConnection) this._endSession();
      return;
    }
    const iceServers = iceServersFromLinks(resp.headers.get('Link'));
    if (iceServers.length > 0) {
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
      } catch (err) {
        log('cannot use the ICE servers of the Link headers:', err.message);
      }
    }
    this._setStage('negotiating', 'Setting up the peer-to-peer connection with the device…');
    this._later(connectTimeout, () => this._retry('waiting', 'The connection to the device did not come up in time'));
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (err) {
      if (pc === this.peerConnection) this._retry('error', `Cannot use the device's answer: ${err.message}`);
      return;
    }
    this._trickle(pc);
  }

  // _setTrust records what the player knows of the device's identity, as
  // Player does.
  _setTrust(state, message) {
    this.trust = { state, message };
    log(`trust ${state}: ${message}`);
    this._emit('trust', { state, message });
  }

  // _checkAnswer checks the device's signature of its answer, which the
  // bridge passes in the Ersmesh-Signature and Ersmesh-Device headers
  // (other WHEP clients ignore them): bound to the room, the stream and
  // this very offer. An owned room's answer must be signed by its owner;
  // an open room's may be unsigned, and is then reported unverified.
  async _checkAnswer(resp, offer, answer) {
    const owner = ownerOf(this.room);
    const sig = resp.headers.get('Ersmesh-Signature') ?? '';
    const device = owner || (resp.headers.get('Ersmesh-Device') ?? '');
    let verdict = 'unsigned';
    if (sig && device) {
      try {
        verdict = (await verifyAnswer(device, this.room, this.stream, offer, answer, sig)) ? 'good' : 'bad';
      } catch (err) {
        verdict = err instanceof TrustUnavailable ? 'unavailable' : 'bad';
      }
    }
    if (verdict === 'bad') {
      this._fail("Refused: the device's answer does not match its signature (another device, stream or request, or altered on the way). A bridge may be tampering with this session.");
      return false;
    }
    if (owner) {
      if (verdict !== 'good') {
        this._fail(verdict === 'unavailable'
          ? 'Cannot verify the owner of this room: open the player over HTTPS (or on localhost) so the browser can check signatures.'
          : `Refused: the answer for owned room "${this.room}" is not signed by its owner (the bridge passed no valid Ersmesh-Signature).`);
        return false;
      }
      this._setTrust('verified', `Verified: the video comes from the device that owns this room (${owner.slice(0, 8)}…).`);
      return true;
    }
    this._setTrust('unverified', verdict === 'good'
      ? `Open room: device ${device.slice(0, 8)}… signed the answer, but anyone may serve an open room.`
      : 'Open room: the answer is not signed; anyone may serve an open room.');
    return true;
  }

  _fail(why) {
    clearTimeout(this._timer);
    this._setStage('error', why, 'untrusted');
  }

  // _trickle sends the candidates found so far in one PATCH, once the
  // session exists; PATCHes go out one at a time, in order.
  _trickle(pc) {
    if (!this.session || pc !== this.peerConnection) return;
    if (this._pending.length === 0 && !this._ended) return;
    const cands = this._pending.splice(0);
    const end = this._ended;
    this._ended = false;
    const url = this.session;
    const sdp = pc.localDescription.sdp;
    const body = sdpFragment(sdpAttr(sdp, 'ice-ufrag'), sdpAttr(sdp, 'ice-pwd'), cands, end);
    const headers = { 'Content-Type': 'application/trickle-ice-sdpfrag' };
    if (this._etag) headers['If-Match'] = this._etag;
    this._patching = this._patching.then(async () => {
      try {
        const r = await fetch(url, { method: 'PATCH', headers, body });
        if (!r.ok) log('PATCH refused:', r.status, (await r.text()).trim());
      } catch (err) {
        log('PATCH failed:', err.message);
      }
    });
  }
}
