// WHEP for the ersmesh player: the standard way to pull a WebRTC stream
// over plain HTTP (draft-ietf-wish-whep; its twin WHIP is RFC 9725). The
// browser POSTs its offer to the bridge's /whep/<room>/<stream>, the device
// answers through the bridge, and candidates found later are sent with
// PATCH as RFC 8840 SDP fragments. An alternative to the ERS protocol
// (ersmesh.js) for `?protocol=whep`; it fires the same "stage" events.
//
// The session belongs to the browser and the device, not to the bridge:
// the offer carries a resume key (resume.js, bound by the device's signed
// answer), and while playing the player asks its bridge every second
// whether the session lives (GET). When the bridge is gone it re-attaches
// the same session through the next of its bridges (?bridges=A,B), proving
// the key to the device, without touching the media (docs/protocol.md,
// "WHEP resume").

import { PlayerBase, backoff, bridgeList } from './playerbase.js';
import { TrustUnavailable, ownerOf, sdpFingerprint, verifyAnswer, whepProof } from './trust.js';
import { Talkback } from './talkback.js';
import { newResumeKey, resumeAvailable, resumeSignature } from './resume.js';

const postTimeout = 25000;   // ms: the bridge may need a DHT lookup and the device's answer
const connectTimeout = 30000; // ms from the answer to a connected peer
const probeEvery = 1000;      // ms between the GETs that check the bridge still relays the session
const probeTimeout = 2000;    // ms a GET may take before the bridge counts as gone
const resumeTimeout = 10000;  // ms for each request of a resume or ICE restart
const restartDelay = 1500;    // ms a transport may stay disconnected before the player restarts ICE
const restartEvery = 5000;    // ms between ICE restarts while it stays down
const restartGrace = 25000;   // ms of ICE restarts before a fresh session
const gatherWait = 2000;      // ms an ICE restart waits for the browser's candidates
const busyRetry = 5000;       // ms before asking a busy bridge (429, 503) again for a resume

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

// withResumeKey puts the resume key into an offer at session level (before
// the first media section), where the device reads it.
export function withResumeKey(sdp, key) {
  const i = sdp.search(/^m=/m);
  return i < 0 ? sdp : `${sdp.slice(0, i)}a=ersmesh-resume-key:${key}\r\n${sdp.slice(i)}`;
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

// restartAnswer is the device's answer after an ICE restart: the answer
// as before, with the credentials and candidates of the bridge's 200
// fragment (RFC 9725 section 4.3).
export function restartAnswer(answer, frag) {
  const ufrag = sdpAttr(frag, 'ice-ufrag');
  const pwd = sdpAttr(frag, 'ice-pwd');
  const cands = [...frag.matchAll(/^a=(candidate:.*?)\r?$/gm)].map((m) => `a=${m[1]}\r\n`).join('');
  let out = '';
  let first = true;
  for (const line of answer.split(/\r?\n/)) {
    if (line === '') continue;
    if (line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('a=ice-ufrag:')) out += `a=ice-ufrag:${ufrag}\r\n`;
    else if (line.startsWith('a=ice-pwd:')) out += `a=ice-pwd:${pwd}\r\n`;
    else out += `${line}\r\n`;
    if (first && line.startsWith('a=mid:')) {
      first = false;
      out += cands;
    }
  }
  return out;
}

function sdpAttr(sdp, name) {
  const m = sdp.match(new RegExp(`^a=${name}:(.*)$`, 'm'));
  return m ? m[1].trim() : '';
}

// WHEPPlayer plays one room's stream over WHEP. It is a PlayerBase: the
// same stage events (with their timeline), reasons, playerstarted and
// getStats as Player.
export class WHEPPlayer extends PlayerBase {
  constructor({ bridges, bridge = location.origin, room, stream = 'sample', token = '', secret = '', talkSecret = '', video } = {}) {
    // WHEP carries media as RTP tracks.
    super({ room, stream, token, transport: 'srtp', video, logPrefix: '[ersmesh whep]' });
    // bridges (several: the first plays, the others take over a playing
    // session whose bridge is gone) or bridge (one), as Player.
    const given = bridges !== undefined && bridges !== null && String(bridges) !== '' ? bridges : bridge;
    this.bridges = bridgeList(given);
    if (this.bridges.length === 0) throw new Error('ersmesh: no bridge given');
    this._bridgeIndex = 0;
    this.bridge = this.bridges[0];
    this.endpoint = this._endpointOf(this.bridge);
    this.session = null;      // the session's URL (the POST's Location)
    this.sid = '';            // the device's id of the session (Ersmesh-Session), for resumes
    this._key = null;         // the resume key the offer carried
    // The room and talk secrets are for the device only: proven in the
    // POST's Ersmesh-Secret-Proof, bound to our DTLS certificate's
    // fingerprint (trust.js whepProof), never sent as they are.
    this._secret = secret || '';
    this._talkSecret = talkSecret || '';
    this._cert = null;        // our DTLS certificate, when a secret is proven
    this.talkback = null;     // talk back (talkback.js), when the device takes our audio
    this._probeTimer = null;
    this._restartTimer = null;
    this._restarting = false; // an ICE restart's PATCH is under way
    this._resumeGen = 0;      // tells the current resume from a stale one
    this._resuming = false;
    this._bridgesDown = 0;    // bridges found unreachable in a row while resuming
    this._rounds = 0;         // rounds of all bridges unreachable, for the backoff

    this._failures = 0;       // consecutive, for the backoff
    this._etag = '';
    this._pending = [];       // candidates found before the session existed
    this._ended = false;      // end of candidates seen
    this._patching = Promise.resolve();
  }

  _statsTransport() {
    return 'whep';
  }

  _endpointOf(bridge) {
    return `${bridge}/whep/${encodeURIComponent(this.room)}/${encodeURIComponent(this.stream)}`;
  }

  _played() {
    super._played();
    this._startProbe();
  }

  _stop() {
    this._endSession();
  }

  _retry(stage, why, afterMs, reason = '') {
    this._endSession();
    if (reason === 'bridge-unreachable' && this.bridges.length > 1) this._nextBridge(reason);
    const wait = afterMs ?? backoff(this._failures++);
    this._setStage(stage, `${why} — retrying in ${Math.ceil(wait / 1000)} s…`, reason);
    this._later(wait, () => this._connect());
  }

  // _endSession closes the peer and DELETEs the session, if any.
  _endSession() {
    this._stopProbe();
    clearTimeout(this._restartTimer);
    this._restartTimer = null;
    this._restartDeadline = false;
    this._resuming = false;
    this._resumeGen++;
    this._dropPeer();
    const url = this.session;
    this.session = null;
    this.sid = '';
    this._key = null;
    this._pending = [];
    this._ended = false;
    if (url) {
      // keepalive: the DELETE must go out even when the page is closing.
      fetch(url, { method: 'DELETE', keepalive: true }).catch((err) => log('DELETE failed:', err.message));
    }
  }

  async _connect() {
    if (this.stage !== 'error') this._setStage('connecting', `Asking ${this.bridge} for room "${this.room}"…`);
    const proving = !!(this._secret || this._talkSecret);
    if (proving && !this._cert) {
      // The proof names our certificate: it must exist before the offer.
      try {
        this._cert = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
      } catch (err) {
        this._setStage('error', `Cannot prove the room secret: ${err.message}`, 'refused');
        return;
      }
      if (!this._running) return;
    }
    const pc = new RTCPeerConnection(this._cert ? { bundlePolicy: 'max-bundle', certificates: [this._cert] } : { bundlePolicy: 'max-bundle' });
    this.peerConnection = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    // With a secret the audio section is sendrecv with no track: the
    // microphone goes on it only while the talk button is held, if the
    // device takes it (Ersmesh-Talkback). Without one nobody may talk.
    const audio = pc.addTransceiver('audio', { direction: proving ? 'sendrecv' : 'recvonly' });
    pc.ontrack = (e) => this._showTrack(pc, e);
    pc.onicecandidate = (e) => {
      // An ICE restart sends the candidates gathered by then itself.
      if (pc !== this.peerConnection || this._restarting) return;
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
          clearTimeout(this._restartTimer);
          this._restartTimer = null;
          this._restartDeadline = false;
          this._failures = 0;
          if (this.stage !== 'playing') this._setStage('connected', 'Connected to the device; waiting for video…');
          if (this.failover.state === 'restarting-ice') this._setFailover('restarted', `Reconnected to the device after an ICE restart (through ${this.bridge})`);
          break;
        case 'disconnected':
          // A lost packet burst heals by itself; a changed path needs an
          // ICE restart, through whichever bridge relays the session now.
          if (this._started && !this._restartTimer) this._scheduleRestart(pc, restartDelay);
          break;
        case 'failed':
          if (this._started && this.session) {
            if (!this._restartTimer) this._scheduleRestart(pc, 0);
            if (!this._restartDeadline) {
              this._restartDeadline = true;
              this._later(restartGrace, () => this._retry('waiting', 'The connection to the device was lost', undefined, 'no-path'));
            }
            break;
          }
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
      // A resume key in the offer lets the session outlive its bridge;
      // without WebCrypto (no secure context) the session ends with it.
      let key = null;
      if (resumeAvailable()) {
        try {
          key = await newResumeKey();
          offer = withResumeKey(offer, key.publicKey);
        } catch (err) {
          log('cannot make a resume key:', err.message);
        }
      }
      if (proving) {
        try {
          headers['Ersmesh-Secret-Proof'] = await whepProof(this._secret, this._talkSecret, this.room, this.stream, sdpFingerprint(offer));
        } catch (err) {
          if (pc !== this.peerConnection) return;
          this._endSession();
          this._setStage('error', err instanceof TrustUnavailable
            ? 'Cannot prove the room secret: open the player over HTTPS (or on localhost).'
            : `Cannot prove the room secret: ${err.message}`, err instanceof TrustUnavailable ? 'unsupported' : 'refused');
          return;
        }
      }
      if (pc !== this.peerConnection) return;
      this._key = key;
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
        this._setStage('error', `The bridge refused to play room "${this.room}" (${resp.status}): ${why}`,
          resp.status === 401 && /secret/.test(why) ? (this._secret ? 'secret-wrong' : 'secret-missing') : '');
        return;
    }
    this.session = new URL(resp.headers.get('Location'), this.endpoint).href;
    this._etag = resp.headers.get('ETag') ?? '';
    this.sid = resp.headers.get('Ersmesh-Session') ?? '';
    const talk = resp.headers.get('Ersmesh-Talkback') ?? '';
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
    if (pc !== this.peerConnection) return;
    this.talkback = Talkback.forWHEP(audio, talk, resp.headers.get('Ersmesh-Talkback-Reason') ?? '', (state, message) => this._emit('talkback', { state, message }));
    this._trickle(pc);
  }

  // --- ICE restarts ---

  // _scheduleRestart restarts ICE after ms, and again every restartEvery
  // while the transport stays down.
  _scheduleRestart(pc, ms) {
    clearTimeout(this._restartTimer);
    this._restartTimer = setTimeout(async () => {
      if (!this._running || pc !== this.peerConnection || pc.connectionState === 'connected') {
        this._restartTimer = null;
        return;
      }
      if (!this._resuming) await this._restartICE(pc);
      if (pc === this.peerConnection && pc.connectionState !== 'connected') this._scheduleRestart(pc, restartEvery);
      else this._restartTimer = null;
    }, ms);
  }

  // _restartICE restarts ICE as RFC 9725 section 4.3 says: a new offer's
  // credentials and candidates go to the session in a PATCH with
  // If-Match: *, and the 200's fragment brings the device's.
  async _restartICE(pc) {
    if (pc !== this.peerConnection || !this.session || this._restarting) return;
    this._restarting = true;
    this._setFailover('restarting-ice', `The connection to the device is interrupted — restarting ICE through ${this.bridge}…`);
    try {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      if (pc.iceGatheringState !== 'complete') {
        await new Promise((done) => {
          const t = setTimeout(done, gatherWait);
          pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') {
              clearTimeout(t);
              done();
            }
          });
        });
      }
      if (pc !== this.peerConnection) return;
      const sdp = pc.localDescription.sdp;
      const cands = [...sdp.matchAll(/^a=(candidate:.*?)\r?$/gm)].map((m) => ({ candidate: m[1], sdpMid: sdpAttr(sdp, 'mid') || '0' }));
      const body = sdpFragment(sdpAttr(sdp, 'ice-ufrag'), sdpAttr(sdp, 'ice-pwd'), cands, true);
      const r = await fetch(this.session, {
        method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body,
        signal: AbortSignal.timeout(resumeTimeout),
      });
      const frag = await r.text();
      if (pc !== this.peerConnection) return;
      if (r.status !== 200) {
        log('ICE restart refused:', r.status, frag.trim());
        await pc.setLocalDescription({ type: 'rollback' });
        return;
      }
      await pc.setRemoteDescription({ type: 'answer', sdp: restartAnswer(pc.currentRemoteDescription.sdp, frag) });
      log('ICE restarted');
      if (pc.connectionState === 'connected') this._setFailover('restarted', `Reconnected to the device after an ICE restart (through ${this.bridge})`);
    } catch (err) {
      log('ICE restart failed:', err.message);
      if (pc.signalingState === 'have-local-offer') pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    } finally {
      this._restarting = false;
    }
  }

  // --- the bridge's health, and re-attaching ---

  _nextBridge(reason) {
    const from = this.bridge;
    this._bridgeIndex = (this._bridgeIndex + 1) % this.bridges.length;
    this.bridge = this.bridges[this._bridgeIndex];
    this.endpoint = this._endpointOf(this.bridge);
    if (from !== this.bridge) this._emit('bridgeChanged', { from, to: this.bridge, reason });
  }

  // _startProbe asks the bridge every second whether it still relays the
  // session: WHEP has no connection whose end would say so.
  _startProbe() {
    if (this._probeTimer || !this.session) return;
    this._probeTimer = setInterval(() => this._probe(), probeEvery);
  }

  _stopProbe() {
    clearInterval(this._probeTimer);
    this._probeTimer = null;
  }

  async _probe() {
    const url = this.session;
    if (!url || this._resuming || this._probing) return;
    this._probing = true;
    let why = '';
    try {
      const r = await fetch(url, { method: 'GET', cache: 'no-store', signal: AbortSignal.timeout(probeTimeout) });
      if (r.status === 404) why = `${this.bridge} no longer relays the session`;
      else if (r.status === 405) this._stopProbe(); // a bridge from before GET: nothing to learn
    } catch (err) {
      why = `Lost the bridge ${this.bridge} (${err.message})`;
    } finally {
      this._probing = false;
    }
    if (!why || url !== this.session || !this._running) return;
    log(why);
    if (this._canReattach()) {
      this._reattach(why);
    } else {
      // The session cannot be resumed, but the picture may go on: the
      // device keeps it while the peer connection lives. Stop asking; a
      // failed connection starts a fresh session through the next bridge.
      this._stopProbe();
      if (this.bridges.length > 1) this._nextBridge('bridge-lost');
    }
  }

  // _canReattach reports whether the session can outlive its bridge: its
  // offer carried a resume key, the bridge named the session, and the
  // peer connection played and is not dead.
  _canReattach() {
    const pc = this.peerConnection;
    return !!(this._key && this.sid && pc && this._started && pc.connectionState !== 'failed' && pc.connectionState !== 'closed');
  }

  // _reattach moves to the next bridge (the same one when there is only
  // one) and re-attaches the playing session there.
  _reattach(why, wait = 0) {
    this._stopProbe();
    this._resuming = true;
    const gen = ++this._resumeGen;
    if (this.bridges.length > 1) this._nextBridge('bridge-lost');
    this._setFailover('reattaching', `${why} — re-attaching the session through ${this.bridge}${wait ? ` in ${Math.ceil(wait / 1000)} s` : ''}; the picture goes on`);
    setTimeout(() => this._resume(gen), wait);
  }

  // _resume asks the bridge to re-attach the session: a POST naming it
  // (Ersmesh-Resume) brings the device's challenge, a PATCH with the
  // signature (Ersmesh-Resume-Proof) completes it.
  async _resume(gen) {
    const current = () => gen === this._resumeGen && this._running && this._resuming;
    if (!current()) return;
    if (!this._canReattach()) {
      this._resumeFailed(gen, 'The session can no longer be re-attached');
      return;
    }
    const bridge = this.bridge;
    const headers = { 'Ersmesh-Resume': this.sid };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let step = 'POST';
    try {
      const r = await fetch(this._endpointOf(bridge), { method: 'POST', headers, signal: AbortSignal.timeout(resumeTimeout) });
      if (!current()) return;
      if (r.status !== 202) {
        this._resumeRefused(gen, bridge, r.status, (await r.text()).trim());
        return;
      }
      const challenge = r.headers.get('Ersmesh-Resume-Challenge') ?? '';
      const location = new URL(r.headers.get('Location') ?? '', bridge).href;
      const signature = await resumeSignature(this._key.privateKey, this.room, this.sid, challenge);
      if (!current()) return;
      step = 'PATCH';
      const p = await fetch(location, { method: 'PATCH', headers: { 'Ersmesh-Resume-Proof': signature }, signal: AbortSignal.timeout(resumeTimeout) });
      if (!current()) return;
      if (p.status !== 204) {
        this._resumeRefused(gen, bridge, p.status, (await p.text()).trim());
        return;
      }
      this.session = location;
      this._etag = p.headers.get('ETag') ?? r.headers.get('ETag') ?? '';
    } catch (err) {
      if (!current()) return;
      // This bridge cannot be reached either: the next one, with a
      // backoff once every bridge failed in a row.
      let wait = 0;
      if (++this._bridgesDown >= this.bridges.length) {
        this._bridgesDown = 0;
        wait = backoff(this._rounds++);
      }
      this._reattach(`Cannot reach the bridge ${bridge} (${step}: ${err.message})`, wait);
      return;
    }
    this._resuming = false;
    this._bridgesDown = 0;
    this._rounds = 0;
    this._setFailover('reattached', `Re-attached to the device through ${this.bridge}`);
    this._startProbe();
  }

  // _resumeRefused handles a bridge's or device's no: the device no
  // longer knows the session (it restarted: 404) or refused the proof
  // (403) — a fresh session, through this bridge; a busy bridge (429,
  // 503) — the next bridge, or this one again in a while: the picture
  // still plays.
  _resumeRefused(gen, bridge, status, text) {
    const why = `${bridge} could not re-attach the session (${status}${text ? ': ' + text.slice(0, 200) : ''})`;
    if (status === 429 || status === 503) {
      let wait = 0;
      if (++this._bridgesDown >= this.bridges.length) {
        this._bridgesDown = 0;
        wait = Math.max(busyRetry, backoff(this._rounds++));
      }
      this._reattach(why, wait);
      return;
    }
    this._resumeFailed(gen, why);
  }

  // _resumeFailed starts a fresh session through the current bridge.
  _resumeFailed(gen, why) {
    if (gen !== this._resumeGen) return;
    this._setFailover('fresh', `${why} — starting a new session`);
    this._endSession();
    this._later(0, () => this._connect());
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
