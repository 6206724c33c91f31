// The ersmesh player: joins an ERS room through a bridge and plays the
// device's WebRTC stream in a <video>. It follows the flow of EvoStream's
// HTML5 player (ERS-PROTOCOL.md §4): the device offers, the browser
// answers, candidates trickle both ways as ERS "message" events. Media comes
// as fragmented MP4 over data channels (transport "fmp4", the EMS default,
// H.264 and AAC) or as WebRTC tracks (transport "srtp").
import { Socket } from './socketio.js';
import { Demuxer, MsePlayer } from './fmp4.js';
import { TrustUnavailable, newNonce, normalizeFingerprint, roomProof, sdpFingerprint, verifyOffer } from './trust.js';

export const TRANSPORTS = ['fmp4', 'srtp'];

// Stages, in the order a successful session passes them; "waiting" (no
// device in the room) and "error" are off the happy path.
export const STAGES = ['connecting', 'joined', 'negotiating', 'connected', 'playing', 'waiting', 'error'];

// EvoStream players delete this line from every offer: it declares a
// payload type 0 (PCMU) as H.264, which browsers reject.
const badFmtp = /^a=fmtp:0 profile-level-id=0x42e00c;packetization-mode=1\r?\n/gm;

const maxBackoff = 10000;     // ms
const joinTimeout = 20000;    // ms: the bridge may need a DHT lookup and the device's answer
const offerTimeout = 15000;   // ms from the join ack to the device's offer
const connectTimeout = 30000; // ms from the offer to a connected ICE/DTLS transport
const disconnectGrace = 8000; // ms a disconnected transport may take to come back before a fresh session

function log(...args) {
  console.log('[ersmesh]', ...args);
}

// stripBadFmtp removes the fmtp line EvoStream players remove (see badFmtp).
export function stripBadFmtp(sdp) {
  return sdp.replace(badFmtp, '');
}

// iceServersFrom turns stunservers/turnservers entries into RTCIceServers;
// legacy ERS servers send "url" where current ones send "urls".
// sessionInfo returns the offer's session-level "i=" line (RFC 8866 §5.4),
// where the device explains what it cannot send (AAC audio over srtp).
export function sessionInfo(sdp) {
  const head = sdp.split(/\r?\nm=/)[0];
  const m = /^i=(.*)$/m.exec(head);
  return m ? m[1].trim() : '';
}

// ownerOf returns the peer ID an owned room ("name@<peerID>") names, or "".
export function ownerOf(room) {
  const i = room.lastIndexOf('@');
  return i > 0 ? room.slice(i + 1) : '';
}

function short(id) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

// pins remembers, per room, the first device seen serving an open room
// (trust on first use). localStorage may be unavailable (privacy modes):
// then pins last as long as the page.
const pins = {
  mem: new Map(),
  get(room) {
    try { return localStorage.getItem(`ersmesh.pin.${room}`) ?? ''; } catch { return this.mem.get(room) ?? ''; }
  },
  set(room, id) {
    try { localStorage.setItem(`ersmesh.pin.${room}`, id); } catch { this.mem.set(room, id); }
  },
};

export function iceServersFrom(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const s of list) {
    const urls = s?.urls ?? s?.url;
    if (!urls || (Array.isArray(urls) && urls.length === 0)) continue;
    const server = { urls };
    if (s.username !== undefined) server.username = s.username;
    if (s.credential !== undefined) server.credential = s.credential;
    out.push(server);
  }
  return out;
}

// Player plays one room. Its events: "stage" ({detail: {stage, message}}),
// and EvoStream's joinedRoom, createdPeer, checkingPeer, connectedPeer,
// disconnectedPeer, connectfailedPeer, closePeer, channelOpen,
// channelClose, playerstarted; and "trust" ({detail: {state, message}}),
// state one of verified (owned room, signature checked), pinned (open
// room, same device as first seen), unverified, changed (open room, another
// device than first seen).
export class Player extends EventTarget {
  constructor({ bridge = location.origin, room, stream = 'sample', token = '', secret = '', transport = 'fmp4', video } = {}) {
    super();
    if (!room) throw new Error('ersmesh: a room name is needed');
    transport = transport || 'fmp4';
    if (!TRANSPORTS.includes(transport)) throw new Error(`ersmesh: transport "${transport}" is not supported (use fmp4 or srtp)`);
    if (!(video instanceof HTMLVideoElement)) throw new Error('ersmesh: a <video> element is needed');
    this.bridge = new URL(bridge, location.href).origin;
    this.room = room;
    this.stream = stream || 'sample';
    this.token = token || '';
    // The room secret is for the device only: it never goes to a bridge,
    // only a proof bound to this browser's DTLS certificate does.
    this._secret = secret || '';
    this._cert = null;        // our DTLS certificate when a secret is proven
    this._nonce = '';         // this join's nonce, which the offer must be signed for
    this.trust = { state: '', message: '' };
    this.transport = transport;
    this.video = video;

    this.stage = '';
    this.message = '';
    this.deviceId = '';       // the device's id in the room (the key of the join ack's clients)
    this.peerConnection = null;
    this.note = '';           // what the device said it cannot send, from its offer
    // performance.now() of the last join and of the first frame shown after
    // it: join-to-first-frame is what a viewer waits (docs/benchmarks.md).
    this.timing = { join: 0, firstFrame: 0 };
    this._mse = null;         // the fmp4 transport's MSE player

    this._socket = null;
    this._stun = [];
    this._turn = [];
    this._running = false;
    this._socketFailures = 0; // consecutive, for the reconnect backoff
    this._joinFailures = 0;   // consecutive empty rooms, for the join backoff
    this._joinGen = 0;        // tells a current join ack from a stale one
    this._timer = null;       // the one pending retry or watchdog
    this._session = null;     // the offer's {from, sid} while a peer exists
    this._pending = [];       // candidates that arrived before the offer was applied
    this._remoteSet = false;
    this._started = false;    // playerstarted fired for this peer
    this._peerUp = false;     // connectedPeer fired, disconnectedPeer not since

    this._onPlaying = () => {
      if (!this.peerConnection) return;
      this._setStage('playing', this.note);
      if (!this._started) {
        this._started = true;
        this._emit('playerstarted');
      }
    };
  }

  start() {
    if (this._running) return;
    this._running = true;
    this.video.addEventListener('playing', this._onPlaying);
    this._connect();
  }

  close() {
    if (!this._running) return;
    this._running = false;
    clearTimeout(this._timer);
    this.video.removeEventListener('playing', this._onPlaying);
    this._closePeer();
    const s = this._socket;
    this._socket = null;
    if (s) {
      if (s.connected) s.emit('leave');
      s.close();
    }
    log('closed');
  }

  // --- stage and events ---

  _setStage(stage, message = '') {
    if (stage === this.stage && message === this.message) return;
    this.stage = stage;
    this.message = message;
    log(`stage ${stage}${message ? ': ' + message : ''}`);
    this.dispatchEvent(new CustomEvent('stage', { detail: { stage, message } }));
  }

  _emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _later(ms, fn) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._running) fn();
    }, ms);
  }

  // --- the socket ---

  _connect() {
    // After a failure the stage stays "error" during retries, so that the
    // explanation stays on screen instead of flickering.
    if (this.stage !== 'error') this._setStage('connecting', `Connecting to ${this.bridge}…`);
    const s = new Socket(this.bridge, { log: (m) => log('socket.io:', m) });
    this._socket = s;
    this._stun = [];
    this._turn = [];
    s.on('stunservers', (list) => { this._stun = iceServersFrom(list); });
    s.on('turnservers', (list) => { this._turn = iceServersFrom(list); });
    s.on('connect', () => {
      log('connected to', this.bridge);
      this._socketFailures = 0;
      this._joinFailures = 0;
      this._join();
    });
    s.on('message', (msg) => this._onMessage(msg));
    s.on('remove', (info) => this._onRemove(info));
    s.on('error', (reason) => {
      if (!s.closed) {
        log('bridge reported an error:', reason);
        return;
      }
      this._lostSocket(s, `Cannot connect to the bridge: ${reason}`, 'error');
    });
    s.on('disconnect', (reason) => {
      this._lostSocket(s, `Lost the connection to the bridge (${reason})`, 'connecting');
    });
    s.connect();
  }

  _lostSocket(s, why, stage) {
    if (s !== this._socket || !this._running) return;
    this._socket = null;
    this._closePeer();
    this.deviceId = '';
    const wait = Math.min(1000 * 2 ** this._socketFailures++, maxBackoff);
    this._setStage(stage, `${why} — retrying in ${Math.ceil(wait / 1000)} s…`);
    this._later(wait, () => this._connect());
  }

  // --- the room ---

  _join() {
    const s = this._socket;
    if (!s?.connected) {
      if (!s) this._connect(); // else its connect event joins
      return;
    }
    const gen = ++this._joinGen;
    this.timing = { join: performance.now(), firstFrame: 0 };
    log(`joining room "${this.room}" for stream "${this.stream}"`);
    this._nonce = newNonce();
    s.emit('join', this.room, { token: this.token, streamName: this.stream, transport: this.transport, nonce: this._nonce },
      (err, desc) => this._joined(gen, err, desc));
    this._later(joinTimeout, () => {
      log('no answer to join; joining again');
      this._rejoin('The bridge did not answer');
    });
  }

  _joined(gen, err, desc) {
    if (gen !== this._joinGen || !this._running) return; // a newer join is under way
    if (err) {
      clearTimeout(this._timer);
      // A refusal (bad token, unknown stream, invalid room): retrying cannot
      // help, so say why and stop.
      const text = typeof err === 'string' ? err : (err.message ?? JSON.stringify(err));
      this._setStage('error', `The bridge refused to join room "${this.room}": ${text}`);
      this._closePeer();
      const s = this._socket;
      this._socket = null;
      s?.close();
      return;
    }
    const ids = Object.keys(desc?.clients ?? {});
    if (ids.length === 0) {
      this._rejoin(`No device is serving room "${this.room}" right now`);
      return;
    }
    this._joinFailures = 0;
    this.deviceId = ids[0];
    this._emit('joinedRoom', { room: this.room, id: this.deviceId });
    if (this._session) return; // the offer overtook the ack; its watchdog runs
    this._setStage('joined', `Joined room "${this.room}"; waiting for the device's offer…`);
    this._later(offerTimeout, () => this._rejoin('The device sent no offer'));
  }

  // _rejoin closes any peer and joins again after a backoff, in stage
  // "waiting". The bridge ends the previous session on a new join.
  _rejoin(why) {
    this._closePeer();
    this.deviceId = '';
    const wait = Math.min(1000 * 2 ** this._joinFailures++, maxBackoff);
    this._setStage('waiting', `${why} — retrying…`);
    this._later(wait, () => this._join());
  }

  _onRemove(info) {
    const id = info?.id;
    if (!id || (id !== this.deviceId && id !== this._session?.from)) return;
    log('device left the room:', id, info.reason ?? '');
    if (typeof info.reason === 'string' && info.reason.startsWith('unauthorized')) {
      this._fail(`The device refused this viewer (${info.reason}). ${this._secret ? 'Check the room secret.' : 'This room needs a secret: add ?secret=… to the address.'}`);
      return;
    }
    this._joinFailures = 0;
    this._rejoin('The device left the room');
  }

  // --- signalling ---

  _send(type, payload) {
    const { from, sid } = this._session;
    this._socket?.emit('message', {
      to: from, sid, broadcaster: from, roomType: 'video', type, payload, prefix: 'webkit',
    });
  }

  _onMessage(msg) {
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'offer':
        this._onOffer(msg);
        break;
      case 'candidate':
        this._onCandidate(msg);
        break;
      case 'challenge':
        this._onChallenge(msg);
        break;
      default:
        log('ignoring message of type', msg.type);
    }
  }

  async _onOffer(msg) {
    const sdp = msg.payload?.sdp;
    if (typeof sdp !== 'string' || !msg.from) {
      log('ignoring an offer without SDP or sender');
      return;
    }
    if (this.deviceId && msg.from !== this.deviceId) {
      log('ignoring an offer from', msg.from, 'while in session with', this.deviceId);
      return;
    }
    this._closePeer(); // a new offer is a new session
    this.deviceId = msg.from;
    const session = { from: msg.from, sid: msg.sid };
    this._session = session;
    clearTimeout(this._timer);
    this._setStage('negotiating', 'Setting up the peer-to-peer connection with the device…');
    this._later(connectTimeout, () => this._peerFailed('The connection to the device did not come up in time'));
    // Candidates arriving meanwhile wait in _pending.
    if (!(await this._checkOffer(msg, sdp)) || this._session !== session) return;
    this._offerSdp = sdp;

    const iceServers = [...this._stun, ...this._turn];
    const conf = { iceServers };
    if (this._cert) conf.certificates = [this._cert];
    const pc = new RTCPeerConnection(conf);
    this.peerConnection = pc;
    this._emit('createdPeer', { id: msg.from });
    log('offer from', msg.from, 'with', iceServers.length, 'ICE servers');

    pc.onicecandidate = (e) => {
      // A null candidate marks the end of gathering; ERS players send nothing for it.
      if (!e.candidate || pc !== this.peerConnection) return;
      const { candidate, sdpMid, sdpMLineIndex } = e.candidate;
      this._send('candidate', { candidate: { candidate, sdpMid, sdpMLineIndex } });
    };
    const timing = this.timing;
    this.video.requestVideoFrameCallback?.(() => {
      if (!timing.firstFrame) timing.firstFrame = performance.now();
    });
    this.note = sessionInfo(sdp);
    if (this.note) log('device note:', this.note);
    pc.ondatachannel = (e) => {
      if (pc !== this.peerConnection) return;
      if (this.transport !== 'fmp4') {
        log('ignoring data channel', e.channel.label, 'on transport', this.transport);
        return;
      }
      this._onChannel(pc, e.channel);
    };
    pc.ontrack = (e) => {
      if (pc !== this.peerConnection) return;
      // Offers without msid give tracks with no stream: gather them in one.
      let stream = e.streams[0];
      if (!stream) {
        stream = this.video.srcObject instanceof MediaStream ? this.video.srcObject : new MediaStream();
        stream.addTrack(e.track);
      }
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch((err) => log('video.play:', err.message));
    };
    pc.oniceconnectionstatechange = () => this._onPeerState(pc, pc.iceConnectionState);
    pc.onconnectionstatechange = () => this._onPeerState(pc, pc.connectionState);

    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: stripBadFmtp(sdp) });
      if (pc !== this.peerConnection) return;
      this._remoteSet = true;
      for (const c of this._pending.splice(0)) this._addCandidate(pc, c);
      const answer = await pc.createAnswer();
      if (pc !== this.peerConnection) return;
      await pc.setLocalDescription(answer);
      if (pc !== this.peerConnection) return;
      this._send('answer', { type: 'answer', sdp: pc.localDescription.sdp });
      log('answer sent');
    } catch (err) {
      // A newer offer may have closed this pc under us: only the current
      // one's failure counts.
      if (pc === this.peerConnection) this._peerFailed(`Cannot answer the device's offer: ${err.message}`);
    }
  }

  // _setTrust records what the player knows of the device's identity.
  _setTrust(state, message) {
    this.trust = { state, message };
    log(`trust ${state}: ${message}`);
    this._emit('trust', { state, message });
  }

  // _checkOffer decides whether to take an offer: an owned room's offer
  // must come from its owner and carry a valid signature for our nonce; an
  // open room's offer must not carry a bad one, and is pinned on first use.
  async _checkOffer(msg, sdp) {
    const owner = ownerOf(this.room);
    if (owner && msg.from !== owner) {
      this._fail(`Refused: device ${short(msg.from)} answered for room "${this.room}", which belongs to ${short(owner)}. A bridge may be misdirecting this session.`);
      return false;
    }
    let verdict = 'unsigned';
    if (typeof msg.payload?.signature === 'string') {
      try {
        verdict = (await verifyOffer(msg.from, this.room, this._nonce, sdp, msg.payload.signature)) ? 'good' : 'bad';
      } catch (err) {
        verdict = err instanceof TrustUnavailable ? 'unavailable' : 'bad';
        if (verdict === 'bad') log('signature check failed:', err.message);
      }
    }
    if (verdict === 'bad') {
      this._fail("Refused: the device's offer does not match its signature (wrong key, replayed, or altered on the way). A bridge may be tampering with this session.");
      return false;
    }
    if (owner) {
      if (verdict === 'unavailable') {
        this._fail('Cannot verify the owner of this room: open the player over HTTPS (or on localhost) so the browser can check signatures.');
        return false;
      }
      if (verdict !== 'good') {
        this._fail(`Refused: the offer for owned room "${this.room}" is not signed by its owner.`);
        return false;
      }
      this._setTrust('verified', `Verified: the video comes from the device that owns this room (${short(owner)}).`);
      return true;
    }
    const pinned = pins.get(this.room);
    if (!pinned) {
      pins.set(this.room, msg.from);
    } else if (pinned !== msg.from) {
      this._setTrust('changed', `Warning: room "${this.room}" is now served by device ${short(msg.from)}, not ${short(pinned)} seen here before. Anyone may serve an open room; use an owned room (name@peerID) to be sure.`);
      return true;
    }
    if (verdict === 'good') this._setTrust('pinned', `Open room: device ${short(msg.from)}, the same as first seen here.`);
    else this._setTrust('unverified', `Open room: device ${short(msg.from)} could not be verified${verdict === 'unavailable' ? ' (this page is not a secure context)' : ' (unsigned offer)'}.`);
    return true;
  }

  // _onChallenge proves the room secret to the device, bound to the DTLS
  // certificate this player will use, so no bridge can reuse the proof.
  async _onChallenge(msg) {
    const challenge = msg.payload?.challenge;
    if (typeof challenge !== 'string' || !msg.from) return;
    if (!this._secret) {
      this._fail(`Room "${this.room}" is protected by a secret: add ?secret=… to the address.`);
      return;
    }
    try {
      this._cert ??= await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
      const f = this._cert.getFingerprints()[0];
      const fingerprint = normalizeFingerprint(`${f.algorithm} ${f.value}`);
      const proof = await roomProof(this._secret, this.room, challenge, fingerprint);
      this._socket?.emit('message', {
        to: msg.from, sid: msg.sid, broadcaster: msg.from, roomType: 'video', type: 'auth',
        payload: { fingerprint, proof }, prefix: 'webkit',
      });
      log('proved the room secret');
    } catch (err) {
      this._fail(err instanceof TrustUnavailable
        ? 'Cannot prove the room secret: open the player over HTTPS (or on localhost).'
        : `Cannot prove the room secret: ${err.message}`);
    }
  }

  // _checkDtls compares the certificate the connection actually uses with
  // the fingerprint in the (signed) offer.
  async _checkDtls(pc) {
    const want = sdpFingerprint(this._offerSdp ?? '');
    if (!want) return;
    try {
      const stats = await pc.getStats();
      let certId = '';
      stats.forEach((r) => { if (r.type === 'transport' && r.remoteCertificateId) certId = r.remoteCertificateId; });
      const cert = certId && stats.get(certId);
      if (!cert || pc !== this.peerConnection) return;
      const got = normalizeFingerprint(`${cert.fingerprintAlgorithm} ${cert.fingerprint}`);
      if (got.split(' ')[0] === want.split(' ')[0] && got !== want) {
        this._fail('Refused: the connection uses a DTLS certificate other than the one the device offered. Someone is in the middle.');
      }
    } catch (err) {
      log('cannot read the DTLS certificate:', err.message);
    }
  }

  // _onChannel runs the fmp4 transport's two channels: the request on
  // emsCommandChannel, the records on emsStreamChannel.
  _onChannel(pc, ch) {
    ch.onopen = () => this._emit('channelOpen', { label: ch.label });
    ch.onclose = () => this._emit('channelClose', { label: ch.label });
    if (ch.label === 'emsCommandChannel') {
      const request = () => ch.send(JSON.stringify({ type: 'fmp4Request', payload: { name: this.stream } }));
      if (ch.readyState === 'open') request();
      else ch.addEventListener('open', request, { once: true });
      ch.onmessage = (e) => {
        if (pc !== this.peerConnection || typeof e.data !== 'string' || e.data.length > 65536) return;
        let cmd;
        try { cmd = JSON.parse(e.data); } catch { log('bad command from the device'); return; }
        if (cmd?.type === 'fmp4Response') {
          const p = cmd.payload ?? {};
          log('fmp4Response', p.status, p.description ?? '');
          if (p.status !== 'SUCCESS') this._fail(`The device cannot send stream "${this.stream}": ${p.description || 'no reason given'}`);
        } else if (cmd?.type === 'metadata') {
          this._emit('metadata', cmd.payload ?? {});
        }
      };
    } else if (ch.label === 'emsStreamChannel') {
      ch.binaryType = 'arraybuffer';
      const demux = new Demuxer({
        onInit: ({ codecs, init }) => {
          this._mse?.close();
          this._mse = new MsePlayer(this.video, log);
          try {
            this._mse.init(codecs, init);
          } catch (err) {
            this._fail(`Cannot play the stream: ${err.message}`);
          }
        },
        onSegment: (seg) => this._mse?.append(seg),
      });
      ch.onmessage = (e) => {
        if (pc !== this.peerConnection) return;
        try {
          demux.feed(e.data);
        } catch (err) {
          ch.onmessage = null;
          this._peerFailed(`The device sent a broken stream (${err.message})`);
        }
      };
    }
  }

  // _fail stops the player with an explanation: retrying cannot help.
  _fail(why) {
    clearTimeout(this._timer);
    this._closePeer();
    this._setStage('error', why);
  }

  _onCandidate(msg) {
    const c = msg.payload?.candidate;
    if (!c || typeof c.candidate !== 'string') return;
    if (!this._session || msg.from !== this._session.from) {
      log('ignoring a candidate from', msg.from, 'outside a session with it');
      return;
    }
    if (this._remoteSet) this._addCandidate(this.peerConnection, c);
    else this._pending.push(c); // the offer is still being applied
  }

  _addCandidate(pc, c) {
    pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex })
      .catch((err) => log('cannot add candidate', JSON.stringify(c.candidate), ':', err.message));
  }

  // _onPeerState maps ICE and connection states to stages and EvoStream's
  // events; both state machines report, so each step is taken once.
  _onPeerState(pc, state) {
    if (pc !== this.peerConnection) return;
    switch (state) {
      case 'checking':
        this._emit('checkingPeer', { id: this.deviceId });
        break;
      case 'connected':
      case 'completed':
        if (this._peerUp) return;
        this._peerUp = true;
        clearTimeout(this._timer); // the connect watchdog
        this._emit('connectedPeer', { id: this.deviceId });
        this._checkDtls(pc);
        if (this.stage === 'playing') this._setStage('playing', '');
        else this._setStage('connected', 'Connected to the device; waiting for video…');
        break;
      case 'disconnected':
        if (!this._peerUp) return;
        this._peerUp = false;
        this._emit('disconnectedPeer', { id: this.deviceId });
        // ICE may recover on its own (a lost packet burst); a dead path
        // only ends in "failed" after half a minute. Give it a few seconds,
        // then start a fresh session, which gathers new paths (TURN over
        // TCP when the network now drops UDP).
        this._setStage(this.stage, 'The connection to the device is interrupted…');
        this._later(disconnectGrace, () => this._peerFailed('The connection to the device was lost'));
        break;
      case 'failed':
        this._peerFailed('Could not connect to the device (no working network path)');
        break;
    }
  }

  _peerFailed(why) {
    if (!this.peerConnection && !this._session) return;
    log(why);
    this._emit('connectfailedPeer', { id: this.deviceId });
    if (this._session) this._send('connectivityError', {});
    this._rejoin(why);
  }

  _closePeer() {
    const pc = this.peerConnection;
    this._pending = [];
    this._remoteSet = false;
    this._session = null;
    this._started = false;
    this._peerUp = false;
    if (!pc) return;
    this.peerConnection = null;
    pc.onicecandidate = pc.ontrack = pc.ondatachannel = pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
    pc.close();
    this._mse?.close();
    this._mse = null;
    this.video.srcObject = null;
    this._emit('closePeer', { id: this.deviceId });
  }
}
