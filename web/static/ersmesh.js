// The ersmesh player: joins an ERS room through a bridge and plays the
// device's WebRTC stream in a <video>. It follows the flow of EvoStream's
// HTML5 player (ERS-PROTOCOL.md §4): the device offers, the browser
// answers, candidates trickle both ways as ERS "message" events. Media comes
// as fragmented MP4 over data channels (transport "fmp4", the EMS default,
// H.264 and AAC) or as WebRTC tracks (transport "srtp").
import { Socket } from './socketio.js';
import { Demuxer, MOOV, MsePlayer } from './fmp4.js';
import { TrustUnavailable, newNonce, noEd25519, normalizeFingerprint, ownerOf, roomProof, sdpFingerprint, verifyOffer } from './trust.js';
import { checkSupport } from './support.js';
import { newResumeKey, resumeAvailable, resumeSignature } from './resume.js';
import { PlayerBase, REASONS, STAGES, backoff, bridgeList } from './playerbase.js';
import { Talkback } from './talkback.js';
import { MAX_CHILDREN, Relay, canVerify } from './relay.js';

export { checkSupport, REASONS, STAGES };

export const TRANSPORTS = ['fmp4', 'srtp'];

// The module's own origin: pages that import it from a bridge
// (import {Player} from 'https://bridge.example/ersmesh.js') talk to that
// bridge unless told otherwise.
const moduleOrigin = new URL(import.meta.url).origin;

// EvoStream players delete this line from every offer: it declares a
// payload type 0 (PCMU) as H.264, which browsers reject.
const badFmtp = /^a=fmtp:0 profile-level-id=0x42e00c;packetization-mode=1\r?\n/gm;

const bridgeFaultLimit = 3;   // faults (join timeouts, failed peers, empty rooms) before trying the next bridge
const joinTimeout = 20000;    // ms: the bridge may need a DHT lookup and the device's answer
const offerTimeout = 15000;   // ms from the join ack to the device's offer
const connectTimeout = 30000; // ms from the offer to a connected ICE/DTLS transport
const disconnectGrace = 8000; // ms a disconnected transport may take to come back before a fresh session
const stallChecks = 3;        // seconds without a byte received before a playing transport counts as interrupted
const startWatch = 8000;      // ms a connected session of an automatic transport choice may take to show a picture before the other transport is tried
const restartDelay = 1500;    // ms a transport may stay disconnected before the player asks for an ICE restart
const restartEvery = 5000;    // ms between ICE restart requests while it stays down
const restartGrace = 25000;   // ms of ICE restarts before giving up on the session for a fresh one
const recoverWindow = 60000;  // ms after a playing session ended during which rejoins do not back off
const recoverRetry = 1000;    // ms between those rejoins

function log(...args) {
  console.log('[ersmesh]', ...args);
}

// stripBadFmtp removes the fmtp line EvoStream players remove (see badFmtp).
export function stripBadFmtp(sdp) {
  return sdp.replace(badFmtp, '');
}

// sessionInfo returns the offer's session-level "i=" line (RFC 8866 §5.4),
// where the device explains what it cannot send (AAC audio over srtp).
export function sessionInfo(sdp) {
  const head = sdp.split(/\r?\nm=/)[0];
  const m = /^i=(.*)$/m.exec(head);
  return m ? m[1].trim() : '';
}

export { bridgeList, ownerOf };

// refusalReason sorts a refused join: the token refusals of bridges
// (package bridge/access) and devices (node.ErrUnauthorized,
// node.ErrForbidden) from the others, so the page can say what to fix.
function refusalReason(text) {
  if (/token/i.test(text)) return 'token';
  if (/room not allowed/i.test(text)) return 'room-not-allowed';
  if (/room is full/i.test(text)) return 'full';
  return 'refused';
}

// msidsAre reports whether every msid of an SDP names stream id.
export function msidsAre(sdp, id) {
  return String(sdp).split(/\r?\n/).filter((l) => l.startsWith('a=msid:')).every((l) => l.slice(7).split(' ')[0] === id);
}

function short(id) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

// pins remembers, per room, the first device seen serving an open room
// (trust on first use), and whether it signs its offers: a pinned device
// that signed and now does not is treated as another device (a bridge
// that strips the signature could otherwise serve anything as it). Stored
// as JSON {id, signs}; older pins are a bare id. localStorage may be
// unavailable (privacy modes): then pins last as long as the page.
const pins = {
  mem: new Map(),
  get(room) {
    let v;
    try { v = localStorage.getItem(`ersmesh.pin.${room}`) ?? ''; } catch { v = this.mem.get(room) ?? ''; }
    if (!v) return null;
    try {
      const p = JSON.parse(v);
      if (typeof p?.id === 'string') return { id: p.id, signs: p.signs === true };
    } catch { /* a bare id */ }
    return { id: v, signs: false };
  },
  set(room, pin) {
    const v = JSON.stringify({ id: pin.id, signs: pin.signs === true });
    try { localStorage.setItem(`ersmesh.pin.${room}`, v); } catch { this.mem.set(room, v); }
  },
};

// iceServersFrom turns stunservers/turnservers entries into RTCIceServers;
// legacy ERS servers send "url" where current ones send "urls".
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

// Player plays one room. Its events: "stage" ({detail: {stage, message,
// reason, timeline}}),
// and EvoStream's joinedRoom, createdPeer, checkingPeer, connectedPeer,
// disconnectedPeer, connectfailedPeer, closePeer, channelOpen,
// channelClose, playerstarted; and "trust" ({detail: {state, message}}),
// state one of verified (owned room, signature checked), pinned (open
// room, same device as first seen), unverified, changed (open room, another
// device than first seen).
export class Player extends PlayerBase {
  constructor({ bridges, bridge, room, stream = 'sample', token = '', secret = '', talkSecret = '', transport = 'auto', video, relay = 0 } = {}) {
    transport = transport || 'auto';
    if (transport !== 'auto' && !TRANSPORTS.includes(transport)) throw new Error(`ersmesh: transport "${transport}" is not supported (use fmp4, srtp or auto)`);
    super({ room, stream, token, transport, video });
    // bridges (several, tried in turn) or bridge (one, as before); by
    // default the bridge this module was loaded from.
    const given = bridges !== undefined && bridges !== null && String(bridges) !== '' ? bridges : (bridge || moduleOrigin);
    this.bridges = bridgeList(given);
    if (this.bridges.length === 0) throw new Error('ersmesh: no bridge given');
    this._bridgeIndex = 0;
    this.bridge = this.bridges[0]; // the bridge in use
    // The room secret is for the device only: it never goes to a bridge,
    // only a proof bound to this browser's DTLS certificate does.
    this._secret = secret || '';
    this._talkSecret = talkSecret || ''; // the stream's talk secret, if it has one (#talk=)
    this._cert = null;        // our DTLS certificate: the join's, for relaying (relay.js) and secrets
    this._fingerprint = '';   // its fingerprint, normalized, when the join offered to relay
    // Relaying (relay.js, docs/relay.md): an fmp4 join of a browser that can
    // check Ed25519 asks for the signed stream and may be served by another
    // viewer; relay (a number of children, or true for 3) lets it serve
    // others too, while its own playback is healthy.
    this.relayChildren = relay === true || /^(on|true|yes)$/i.test(String(relay)) ? 3 : Math.max(0, Math.min(MAX_CHILDREN, Math.floor(Number(relay)) || 0));
    this._relay = null;       // this session's part in the tree
    this._signedJoin = false; // the current join asked for the signed stream
    this._demux = null;       // the signed stream's demuxer, which outlives relay links
    this._nonce = '';         // this join's nonce, which the offer must be signed for
    this.trust = { state: '', message: '' };

    this.deviceId = '';       // the device's id in the room (the key of the join ack's clients)
    // performance.now() of the last join and of the first frame shown after
    // it: join-to-first-frame is what a viewer waits (docs/benchmarks.md).
    // marks: milliseconds from the join to each step on the way (offer,
    // checked, remote, answer, ice, dtls, open:<channel>, data, moov,
    // segment, sourceopen, append), each the first since the join.
    this.timing = { join: 0, firstFrame: 0, marks: {} };
    this._mse = null;         // the fmp4 transport's MSE player

    this._socket = null;
    this._stun = [];
    this._turn = [];
    this._socketFailures = 0; // consecutive, for the reconnect backoff
    this._joinFailures = 0;   // consecutive empty rooms, for the join backoff
    this._bridgeFaults = 0;   // faults through the current bridge since it last played
    this._bridgesDown = 0;    // bridges found unreachable in a row
    this._rounds = 0;         // rounds of all bridges unreachable, for the backoff
    this._refusedBy = new Set(); // bridges that refused the join (token, room)
    this._joinGen = 0;        // tells a current join ack from a stale one
    this._session = null;     // the offer's {from, sid} while a peer exists
    this._pending = [];       // candidates that arrived before the offer was applied
    this._remoteSet = false;
    this._peerUp = false;     // connectedPeer fired, disconnectedPeer not since
    // Re-attaching a playing session through another bridge (resume.js):
    // this.failover (playerbase.js) says what goes on.
    this._joinKey = null;     // the resume key of the current join
    this._resuming = false;   // the socket being connected is for a resume, not a join
    this._restartTimer = null;
    this._flowTimer = null;   // samples the bytes received while playing
    this._cut = false;        // the transport is down or brings nothing
    this._recoverUntil = 0;   // performance.now() until which rejoins come fast
  }

  _played() {
    this._playedOnce = true;
    this._bridgeFaults = 0;
    // A relay link is watched by relay.js (stall, 600 ms).
    if (!this._flowTimer && this.peerConnection && !this._session?.relayed) this._watchFlow(this.peerConnection);
    super._played();
  }

  _stop() {
    this._closePeer();
    const s = this._socket;
    this._socket = null;
    if (s) {
      if (s.connected) s.emit('leave');
      s.close();
    }
  }

  // --- the socket ---

  _connect() {
    // After a failure the stage stays "error" during retries, and a
    // failover's "connecting" keeps its words, so that the explanation
    // stays on screen instead of flickering.
    if (!this._resuming && this.stage !== 'error' && !(this.stage === 'connecting' && this.reason)) this._setStage('connecting', `Connecting to ${this.bridge}…`);
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
      this._bridgesDown = 0;
      this._rounds = 0;
      if (this._resuming) this._resume();
      else this._join();
    });
    s.on('message', (msg) => this._onMessage(msg));
    s.on('remove', (info) => this._onRemove(info));
    s.on('error', (reason) => {
      if (!s.closed) {
        log('bridge reported an error:', reason);
        return;
      }
      this._lostSocket(s, `Cannot reach the bridge: ${reason}`, true);
    });
    s.on('disconnect', (reason) => {
      this._lostSocket(s, `Lost the connection to the bridge (${reason})`, false);
    });
    s.connect();
  }

  // _lostSocket handles the end of a socket: a bridge that cannot be
  // reached is left for the next one; one that dropped a working
  // connection is tried again, unless it keeps failing.
  _lostSocket(s, why, unreachable) {
    if (s !== this._socket || !this._running) return;
    this._socket = null;
    if (this._canReattach()) {
      // Media flows device → browser without the bridge: keep playing and
      // re-attach the session through another bridge meanwhile.
      this._reattach(why, unreachable);
      return;
    }
    this._resuming = false;
    this._closePeer();
    this.deviceId = '';
    if (unreachable) {
      this._failover(why, 'bridge-unreachable', true);
      return;
    }
    if (this._bridgeFault()) {
      this._failover(why, 'bridge-lost', false);
      return;
    }
    const wait = backoff(this._socketFailures++);
    this._setStage('connecting', `${why} — retrying in ${Math.ceil(wait / 1000)} s…`, 'bridge-lost');
    this._later(wait, () => this._connect());
  }

  // _bridgeFault counts a fault of the current bridge and reports whether
  // it is time to try another one.
  _bridgeFault() {
    return ++this._bridgeFaults >= bridgeFaultLimit && this.bridges.length > 1;
  }

  // _failover closes the current bridge's socket and moves on to the next
  // bridge: at once while some are untried, with a growing backoff once
  // every bridge was unreachable in a row.
  _failover(why, reason, unreachable) {
    const s = this._socket;
    this._socket = null;
    if (s) {
      if (s.connected) s.emit('leave');
      s.close();
    }
    this._closePeer();
    this.deviceId = '';
    this._bridgeFaults = 0;
    const from = this.bridge;
    this._bridgeIndex = (this._bridgeIndex + 1) % this.bridges.length;
    this.bridge = this.bridges[this._bridgeIndex];
    let wait = 0;
    if (unreachable && ++this._bridgesDown >= this.bridges.length) {
      this._bridgesDown = 0;
      wait = backoff(this._rounds++);
    }
    const several = this.bridges.length > 1;
    if (wait > 0) {
      const which = several ? `None of the ${this.bridges.length} bridges can be reached (the last: ${why.replace(/^Cannot reach the bridge: /, '')})` : why;
      this._setStage('error', `${which} — retrying in ${Math.ceil(wait / 1000)} s…`, reason);
    } else {
      log(`leaving bridge ${from}: ${why}; trying ${this.bridge}`);
      this._setStage('connecting', `${why} — trying the next bridge, ${this.bridge}…`, reason);
    }
    if (from !== this.bridge) this._emit('bridgeChanged', { from, to: this.bridge, reason });
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
    this.timing = { join: performance.now(), firstFrame: 0, marks: {} };
    log(`joining room "${this.room}" for stream "${this.stream}"`);
    // With a resume key, the nonce is its hash, which the device's
    // signed offer then binds (resume.js).
    const send = (key, fingerprint) => {
      if (gen !== this._joinGen || s !== this._socket || !s.connected) return;
      this._joinKey = key;
      this._nonce = key ? key.nonce : newNonce();
      this._earlyChallenge = null; // a challenge of an earlier join
      const data = { token: this.token, streamName: this.stream, transport: this.transport, nonce: this._nonce };
      if (key) data.resumeKey = key.publicKey;
      this._signedJoin = !!fingerprint;
      if (fingerprint) data.relay = fingerprint;
      s.emit('join', this.room, data, (err, desc) => this._joined(gen, err, desc));
    };
    const key = resumeAvailable()
      ? newResumeKey().catch((err) => {
        log('cannot make a resume key:', err.message);
        return null;
      })
      : null;
    Promise.all([key, this._relayFingerprint()]).then(([k, fp]) => send(k, fp));
    this._later(joinTimeout, () => {
      log('no answer to join');
      if (this._bridgeFault()) this._failover('The bridge did not answer the join', 'bridge-lost', false);
      else this._rejoin('The bridge did not answer', 'bridge-lost');
    });
  }

  // _relayFingerprint resolves to the fingerprint of the join's certificate
  // when this join can take part in relaying (fmp4, Ed25519 in WebCrypto),
  // else "".
  async _relayFingerprint() {
    if (this.transport !== 'fmp4' || !(await canVerify())) return '';
    try {
      this._cert ??= await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
      const f = this._cert.getFingerprints()[0];
      this._fingerprint = normalizeFingerprint(`${f.algorithm} ${f.value}`);
      return this._fingerprint;
    } catch (err) {
      log('cannot make a certificate for relaying:', err.message);
      return '';
    }
  }

  _joined(gen, err, desc) {
    if (gen !== this._joinGen || !this._running) return; // a newer join is under way
    if (err) {
      clearTimeout(this._timer);
      // A refusal (bad token, unknown stream, invalid room): retrying cannot
      // help, so say why and stop.
      const text = typeof err === 'string' ? err : (err.message ?? JSON.stringify(err));
      const reason = refusalReason(text);
      if (reason === 'full') {
        // Viewers leave and relays come: try again, slowly.
        this._rejoin(`${String(text).slice(0, 200)}`, 'full');
        return;
      }
      // Bridges differ in the tokens and rooms they accept: with several,
      // each gets its chance before the refusal stands.
      this._refusedBy.add(this.bridge);
      if ((reason === 'token' || reason === 'room-not-allowed') && this.bridges.some((b) => !this._refusedBy.has(b))) {
        this._failover(`The bridge refused room "${this.room}": ${text}`, reason, false);
        return;
      }
      const hint = {
        token: this.token
          ? ' Check the token in the address (?token=…): bridges give tokens that may expire or work only once.'
          : ' This bridge needs a token: add ?token=… to the address (ask the bridge operator).',
        'room-not-allowed': ' This bridge serves only some rooms; try another bridge.',
      }[reason] ?? '';
      this._setStage('error', `The bridge refused to join room "${this.room}": ${text}.${hint}`, reason);
      this._closePeer();
      const s = this._socket;
      this._socket = null;
      s?.close();
      return;
    }
    const ids = Object.keys(desc?.clients ?? {});
    if (ids.length === 0) {
      // Our bridges say when a device was found but could not be reached
      // (ERS bridges do not, and players ignore the key).
      const unreachable = desc?.unreachable === true;
      const why = unreachable
        ? `The device serving room "${this.room}" cannot be reached right now (offline, or its network blocks the bridge)`
        : `No device is serving room "${this.room}" right now`;
      const reason = unreachable ? 'device-unreachable' : 'no-device';
      // Another bridge may see the mesh better.
      if (this._bridgeFault()) this._failover(why, reason, false);
      else this._rejoin(why, reason);
      return;
    }
    this._joinFailures = 0;
    this.deviceId = ids[0];
    this._emit('joinedRoom', { room: this.room, id: this.deviceId });
    const early = this._earlyChallenge;
    this._earlyChallenge = null;
    if (early) this._onChallenge(early);
    if (this._session) return; // the offer overtook the ack; its watchdog runs
    this._setStage('joined', `Joined room "${this.room}"; waiting for the device's offer…`);
    this._later(offerTimeout, () => this._rejoin('The device sent no offer', 'no-path'));
  }

  // _rejoin closes any peer and joins again after a backoff, in stage
  // "waiting". The bridge ends the previous session on a new join.
  _rejoin(why, reason) {
    // Right after a session that played (the device restarted, say) the
    // device is expected back soon: try every second for a while.
    if (this._started) this._recoverUntil = performance.now() + recoverWindow;
    this._closePeer();
    this.deviceId = '';
    // A full room is not a device coming back: back off.
    const wait = reason !== 'full' && performance.now() < this._recoverUntil ? recoverRetry : backoff(this._joinFailures++);
    this._setStage('waiting', `${why} — retrying…`, reason);
    this._later(wait, () => this._join());
  }

  _onRemove(info) {
    const id = info?.id;
    if (!id || (id !== this.deviceId && id !== this._session?.from)) return;
    log('device left the room:', id, info.reason ?? '');
    if (typeof info.reason === 'string' && info.reason.startsWith('unauthorized')) {
      this._fail(`The device refused this viewer (${info.reason}). ${this._secret ? 'Check the room secret.' : 'This room needs a secret: add #secret=… to the address.'}`,
        this._secret ? 'secret-wrong' : 'secret-missing');
      return;
    }
    if (typeof info.reason === 'string' && info.reason.startsWith('unsupported codec')) {
      // The camera's codec (H.265) is not in this browser's WebRTC: a
      // rejoin would end the same way.
      this._fail(checkSupport(this.transport, 'hev1') || info.reason, 'unsupported');
      return;
    }
    if (typeof info.reason === 'string' && refusalReason(info.reason) === 'full') {
      this._rejoin(info.reason.slice(0, 200), 'full');
      return;
    }
    this._joinFailures = 0;
    this._rejoin(info.reason ? `The device left the room (${String(info.reason).slice(0, 200)})` : 'The device left the room', 'device-left');
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
      case 'resumeChallenge':
        this._onResumeChallenge(msg);
        break;
      case 'talkback':
        if (msg.from === this.deviceId) this.talkback?.onMessage(msg.payload);
        break;
      case 'relayAssign': case 'relayChild': case 'relaySignal': case 'relayEnd':
        this._onRelay(msg);
        break;
      default:
        log('ignoring message of type', msg.type);
    }
  }

  // _mark notes the first time a step is reached since the join
  // (timing.marks; docs/benchmarks.md counts them).
  _mark(name) {
    const t = this.timing;
    if (t.join && !(name in t.marks)) t.marks[name] = Math.round(performance.now() - t.join);
  }

  async _onOffer(msg) {
    this._mark('offer');
    const sdp = msg.payload?.sdp;
    if (typeof sdp !== 'string' || !msg.from) {
      log('ignoring an offer without SDP or sender');
      return;
    }
    if (this.deviceId && msg.from !== this.deviceId) {
      log('ignoring an offer from', msg.from, 'while in session with', this.deviceId);
      return;
    }
    if (this._session && !this._session.relayed && this.peerConnection && msg.sid === this._session.sid && msg.from === this._session.from) {
      this._onRestartOffer(msg, sdp); // the same session: an ICE restart
      return;
    }
    this._closePeer(); // a new offer is a new session
    this.deviceId = msg.from;
    // key and nonce: what this session was joined with, for resumes and
    // for checking the signatures of later offers.
    const session = { from: msg.from, sid: msg.sid, key: this._joinKey, nonce: this._nonce, signed: false };
    this._session = session;
    clearTimeout(this._timer);
    this._setStage('negotiating', 'Setting up the peer-to-peer connection with the device…');
    this._later(connectTimeout, () => this._peerFailed('The connection to the device did not come up in time'));
    // Candidates arriving meanwhile wait in _pending.
    if (!(await this._checkOffer(msg, sdp)) || this._session !== session) return;
    this._mark('checked');
    session.signed = typeof msg.payload?.signature === 'string';
    this._offerSdp = sdp;
    if (this._signedJoin && this.transport === 'fmp4') this._startRelay(msg.from);

    const iceServers = [...this._stun, ...this._turn];
    const conf = { iceServers };
    if (this._cert) conf.certificates = [this._cert];
    const pc = new RTCPeerConnection(conf);
    this.peerConnection = pc;
    if (this.transport === 'fmp4') {
      // The MediaSource opens while ICE and DTLS come up, not after the
      // MOOV (docs/benchmarks.md).
      this._mse = new MsePlayer(this.video, log, (name) => this._mark(name));
      this._mse.open();
    }
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
    pc.ontrack = (e) => this._showTrack(pc, e);
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === 'connected') this._mark('ice');
      this._onPeerState(pc, pc.iceConnectionState);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'connected') this._mark('dtls');
      this._onPeerState(pc, pc.connectionState);
    };

    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: stripBadFmtp(sdp) });
      if (pc !== this.peerConnection) return;
      this._mark('remote');
      this._remoteSet = true;
      for (const c of this._pending.splice(0)) this._addCandidate(pc, c);
      // Talk back (talkback.js): answer the device's receiving audio section.
      this.talkback = Talkback.prepare(pc, sdp, (state, message) => this._emit('talkback', { state, message }));
      const answer = await pc.createAnswer();
      if (pc !== this.peerConnection) return;
      await pc.setLocalDescription(answer);
      if (pc !== this.peerConnection) return;
      // fmp4: the request rides with the answer too, so that the device
      // sends the MOOV and the GOP as soon as the stream channel opens, a
      // round trip earlier (docs/media-benchmarks.md); the one on the
      // command channel stays, for devices before that.
      const payload = { type: 'answer', sdp: pc.localDescription.sdp };
      if (this.transport === 'fmp4') payload.fmp4Request = this._fmp4Request();
      this._send('answer', payload);
      this._mark('answer');
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
      this._fail(`Refused: device ${short(msg.from)} answered for room "${this.room}", which belongs to ${short(owner)}. A bridge may be misdirecting this session.`, 'untrusted');
      return false;
    }
    let verdict = 'unsigned';
    let unavailable = ''; // why the browser cannot check, when it cannot
    if (typeof msg.payload?.signature === 'string') {
      try {
        verdict = (await verifyOffer(msg.from, this.room, this.stream, this._nonce, sdp, msg.payload.signature)) ? 'good' : 'bad';
      } catch (err) {
        verdict = err instanceof TrustUnavailable ? 'unavailable' : 'bad';
        if (verdict === 'unavailable') unavailable = err.message;
        if (verdict === 'bad') log('signature check failed:', err.message);
      }
    }
    if (verdict === 'bad') {
      this._fail("Refused: the device's offer does not match its signature (wrong key, replayed, another stream, or altered on the way). A bridge may be tampering with this session.", 'untrusted');
      return false;
    }
    // srtp media tracks name their stream in the (signed) SDP's msid: the
    // device's tracks of stream S are "ersmesh-S".
    if (verdict === 'good' && this.transport === 'srtp' && !msidsAre(sdp, `ersmesh-${this.stream}`)) {
      this._fail(`Refused: the device's offer carries a stream other than "${this.stream}". A bridge may be swapping streams.`, 'untrusted');
      return false;
    }
    if (owner) {
      if (verdict === 'unavailable') {
        this._fail(unavailable === noEd25519
          ? `Cannot verify the owner of this room: ${noEd25519}. Use a newer browser.`
          : 'Cannot verify the owner of this room: open the player over HTTPS (or on localhost) so the browser can check signatures.', 'untrusted');
        return false;
      }
      if (verdict !== 'good') {
        this._fail(`Refused: the offer for owned room "${this.room}" is not signed by its owner.`, 'untrusted');
        return false;
      }
      this._setTrust('verified', `Verified: the video comes from the device that owns this room (${short(owner)}).`);
      return true;
    }
    const pinned = pins.get(this.room);
    if (!pinned) {
      pins.set(this.room, { id: msg.from, signs: verdict === 'good' });
    } else if (pinned.id !== msg.from) {
      this._setTrust('changed', `Warning: room "${this.room}" is now served by device ${short(msg.from)}, not ${short(pinned.id)} seen here before. Anyone may serve an open room; use an owned room (name@peerID) to be sure.`);
      return true;
    } else if (pinned.signs && verdict === 'unsigned') {
      this._setTrust('changed', `Warning: device ${short(msg.from)} signed its offers for room "${this.room}" before, and this one is not signed: it may come from anyone (a bridge can strip a signature). Use an owned room (name@peerID) to be sure.`);
      return true;
    } else if (!pinned.signs && verdict === 'good') {
      pins.set(this.room, { id: msg.from, signs: true });
    }
    if (verdict === 'good') this._setTrust('pinned', `Open room: device ${short(msg.from)}, the same as first seen here.`);
    else this._setTrust('unverified', `Open room: device ${short(msg.from)} could not be verified${verdict === 'unavailable' ? (unavailable === noEd25519 ? ' (this browser has no Ed25519 in WebCrypto)' : ' (this page is not a secure context)') : ' (unsigned offer)'}.`);
    return true;
  }

  // _onChallenge proves the room secret to the device, bound to the DTLS
  // certificate this player will use, so no bridge can reuse the proof.
  async _onChallenge(msg) {
    const challenge = msg.payload?.challenge;
    if (typeof challenge !== 'string' || !msg.from) return;
    // Only the device this join reached (and, in an owned room, its owner)
    // may ask: a proof for anyone else would be a proof handed to a
    // stranger. A challenge that overtook the join's ack waits for it.
    const owner = ownerOf(this.room);
    if (owner && msg.from !== owner) {
      log('ignoring a challenge from', msg.from, 'in a room owned by', owner);
      return;
    }
    if (!this.deviceId) {
      this._earlyChallenge = msg;
      return;
    }
    if (msg.from !== this.deviceId) {
      log('ignoring a challenge from', msg.from, 'which is not the device joined,', this.deviceId);
      return;
    }
    // A room open to watch still challenges when the stream has a talk
    // secret ("secret": false); devices before that always meant the room's.
    const needsSecret = msg.payload?.secret !== false;
    if (needsSecret && !this._secret) {
      this._fail(`Room "${this.room}" is protected by a secret: add #secret=… to the address.`, 'secret-missing');
      return;
    }
    try {
      this._cert ??= await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
      const f = this._cert.getFingerprints()[0];
      const fingerprint = normalizeFingerprint(`${f.algorithm} ${f.value}`);
      const payload = { fingerprint };
      if (needsSecret) payload.proof = await roomProof(this._secret, this.room, challenge, fingerprint);
      // The talk secret is proven the same way, keyed with it.
      if (this._talkSecret && msg.payload?.talk) payload.talkProof = await roomProof(this._talkSecret, this.room, challenge, fingerprint);
      this._socket?.emit('message', {
        to: msg.from, sid: msg.sid, broadcaster: msg.from, roomType: 'video', type: 'auth',
        payload, prefix: 'webkit',
      });
      log(needsSecret ? 'proved the room secret' : 'answered the challenge', payload.talkProof ? 'and the talk secret' : '');
    } catch (err) {
      this._fail(err instanceof TrustUnavailable
        ? 'Cannot prove the room secret: open the player over HTTPS (or on localhost).'
        : `Cannot prove the room secret: ${err.message}`, err instanceof TrustUnavailable ? 'unsupported' : 'refused');
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
        this._fail('Refused: the connection uses a DTLS certificate other than the one the device offered. Someone is in the middle.', 'untrusted');
      }
    } catch (err) {
      log('cannot read the DTLS certificate:', err.message);
    }
  }

  // _fmp4Request is the payload of the fmp4 transport's request. signed
  // (docs/relay.md): a SIG record before every unit, which devices before
  // relay v1 ignore (the stream then comes unsigned).
  _fmp4Request() {
    return this._relay ? { name: this.stream, signed: true } : { name: this.stream };
  }

  // _onChannel runs the fmp4 transport's two channels: the request on
  // emsCommandChannel, the records on emsStreamChannel.
  _onChannel(pc, ch) {
    ch.onopen = () => {
      this._mark(`open:${ch.label}`);
      this._emit('channelOpen', { label: ch.label });
    };
    ch.onclose = () => this._emit('channelClose', { label: ch.label });
    if (ch.label === 'emsCommandChannel') {
      const payload = this._fmp4Request();
      const request = () => ch.send(JSON.stringify({ type: 'fmp4Request', payload }));
      if (ch.readyState === 'open') request();
      else ch.addEventListener('open', request, { once: true });
      ch.onmessage = (e) => {
        if (pc !== this.peerConnection || typeof e.data !== 'string' || e.data.length > 65536) return;
        let cmd;
        try { cmd = JSON.parse(e.data); } catch { log('bad command from the device'); return; }
        if (cmd?.type === 'fmp4Response') {
          const p = cmd.payload ?? {};
          log('fmp4Response', p.status, p.description ?? '');
          if (p.status !== 'SUCCESS') this._fail(`The device cannot send stream "${this.stream}": ${p.description || 'no reason given'}`, 'stream');
        } else if (cmd?.type === 'metadata') {
          this._emit('metadata', cmd.payload ?? {});
        }
      };
    } else if (ch.label === 'emsStreamChannel') {
      ch.binaryType = 'arraybuffer';
      const demux = this._newDemux();
      if (this._relay) {
        this._signedChannel(pc, ch, demux);
        return;
      }
      ch.onmessage = (e) => {
        if (pc !== this.peerConnection) return;
        this._mark('data');
        try {
          demux.feed(e.data);
        } catch (err) {
          ch.onmessage = null;
          this._peerFailed(`The device sent a broken stream (${err.message})`, 'stream');
        }
      };
    }
  }

  // _newDemux makes the session's demuxer, which feeds the MSE player.
  _newDemux() {
    const demux = new Demuxer({
      onInit: ({ codecs, init }) => {
        const unsupported = checkSupport('fmp4', codecs); // H.265 is known only now
        if (unsupported) {
          // An automatic choice tries srtp, which may decode it.
          if (!this._fallBack(unsupported)) this._fail(unsupported, 'unsupported');
          return;
        }
        this._mark('moov');
        if (!this._mse || this._mse.hasInit) {
          this._mse?.close();
          this._mse = new MsePlayer(this.video, log, (name) => this._mark(name));
        }
        try {
          this._mse.init(codecs, init);
        } catch (err) {
          if (!this._fallBack(err.message)) this._fail(`Cannot play the stream: ${err.message}`, 'unsupported');
        }
      },
      onSegment: (seg) => {
        this._mark('segment');
        this._mse?.append(seg);
      },
    });
    this._demux = demux;
    return demux;
  }

  // --- relaying (relay.js, docs/relay.md) ---

  // _startRelay begins this session's part in the tree with the device
  // whose key signs the stream.
  _startRelay(deviceId) {
    this._relay?.close();
    this._relay = null;
    try {
      this._relay = new Relay(this._relayHost(), deviceId, { maxChildren: this.relayChildren });
    } catch (err) {
      log('no relaying with device', deviceId, ':', err.message);
    }
  }

  _relayHost() {
    return {
      room: this.room,
      stream: this.stream,
      nonce: this._nonce,
      fingerprint: this._fingerprint,
      certificate: this._cert,
      iceServers: () => [...this._stun, ...this._turn],
      send: (type, payload) => {
        if (this._session) this._send(type, payload);
      },
      deliver: (u, verdict) => this._deliver(u, verdict),
      healthy: () => this.stage === 'playing' && !this._cut && this._running,
      onParent: (state, why, pc) => this._onParent(state, why, pc),
      onChange: () => this._emit('relay', this._relay?.stats() ?? null),
      log,
    };
  }

  // _signedChannel plays the device's channel of a signed stream: each
  // unit verified before it is played or forwarded. A device older than
  // relay v1 sends the stream unsigned: over its own DTLS channel that is
  // as before, without relaying.
  _signedChannel(pc, ch, demux) {
    const relay = this._relay;
    let plain = null; // decided by the channel's first record
    const link = relay.direct((p) => {
      if (pc !== this.peerConnection || relay !== this._relay) return;
      ch.onmessage = null;
      this._peerFailed(`The device sent a unit that does not verify (${p.message})`, 'stream');
    });
    ch.onmessage = (e) => {
      if (pc !== this.peerConnection) return;
      if (plain === null) {
        // The channel starts with a record: a SIG, or, from a device older
        // than relay v1 (which ignores "signed"), the MOOV itself.
        const first = new Uint8Array(e.data instanceof ArrayBuffer ? e.data : e.data.buffer)[0];
        plain = first === MOOV;
        if (plain) {
          log('the device does not sign its stream (older than relay v1): playing it unsigned, no relaying');
          relay.close();
          this._relay = null;
          this._emit('relay', null);
        }
      }
      if (!plain) {
        link.feed(e.data);
        return;
      }
      try {
        demux.feed(e.data);
      } catch (err) {
        ch.onmessage = null;
        this._peerFailed(`The device sent a broken stream (${err.message})`, 'stream');
      }
    };
  }

  // _deliver plays a verified unit: a MOOV the player does not use yet, or
  // a group it has not appended (a new parent repeats its GOP).
  _deliver(u, verdict) {
    if (!verdict.init && !verdict.append) return;
    try {
      (this._demux ?? this._newDemux()).feed(u.covered);
    } catch (err) {
      this._peerFailed(`Cannot play a verified unit (${err.message})`, 'stream');
    }
  }

  // _onRelay takes the relay messages of the device: a relayed session
  // starts with relayAssign instead of an offer.
  _onRelay(msg) {
    const owner = ownerOf(this.room);
    if (!msg.from || msg.from !== this.deviceId || (owner && msg.from !== owner)) {
      log('ignoring', msg.type, 'from', msg.from, 'which is not the device joined');
      return;
    }
    if (this._session && msg.sid !== this._session.sid) {
      log('ignoring', msg.type, 'of another session');
      return;
    }
    if (!this._session) {
      if (msg.type !== 'relayAssign' || !this._signedJoin) return;
      const session = { from: msg.from, sid: msg.sid, key: null, nonce: this._nonce, signed: false, relayed: true };
      this._session = session;
      clearTimeout(this._timer);
      this._setTrust(owner ? 'verified' : 'pinned', owner
        ? `Verified: every unit of the video is signed by the device that owns this room (${short(owner)}), whoever relays it.`
        : `Open room: every unit of the video is signed by device ${short(msg.from)}, whoever relays it.`);
      this._startRelay(msg.from);
      if (!this._relay) {
        this._fail('Cannot check the stream the device signs', 'untrusted');
        return;
      }
      this._setStage('negotiating', 'The device assigned a relay: another viewer will pass its video on…');
    }
    this._relay?.onMessage(msg);
  }

  // _onParent follows the link to the parent of a relayed session: its
  // PeerConnection is the player's while it lasts (stats, "playing").
  _onParent(state, why, pc) {
    if (!this._session?.relayed) return;
    const r = this._relay;
    switch (state) {
      case 'linking':
        this.peerConnection = pc;
        this._emit('createdPeer', { id: this.deviceId });
        if (this.stage === 'playing') this._setStage('playing', why);
        else this._setStage('negotiating', why);
        this._later(offerTimeout, () => this._rejoin('The relay did not bring the video', 'no-path'));
        break;
      case 'playing':
        clearTimeout(this._timer);
        this.note = `Via relay ${r.parent} (depth ${r.depth}).`;
        if (this.stage === 'playing') this._setStage('playing', this.note);
        else if (this.stage !== 'connected') this._setStage('connected', `Connected to relay ${r.parent}; waiting for video…`);
        break;
      case 'exhausted':
        this._rejoin(`${why}; starting over`, 'no-path');
        break;
      case 'lost':
        if (this.peerConnection && !pc && !r.parentPc) this.peerConnection = null;
        this._setStage(this.stage === 'playing' ? 'playing' : 'negotiating', why);
        // The device answers a report at once; without an answer, start over.
        this._later(offerTimeout, () => this._rejoin('No new relay was assigned', 'no-path'));
        break;
    }
  }

  // relayStats is relaying's part of the overlay, or null when the session
  // does not relay (srtp, a browser without Ed25519, an older device).
  relayStats() {
    return this._relay?.stats() ?? null;
  }

  // getStats adds relaying to the overlay's numbers: relay {depth, parent,
  // children, verified, rejected, reports, reattaches, relayed}.
  async getStats() {
    const s = await super.getStats();
    if (s && this._relay) s.relay = this._relay.stats();
    return s;
  }

  // _fail stops the player with an explanation: retrying cannot help.
  _fail(why, reason = 'refused') {
    clearTimeout(this._timer);
    this._joinGen++; // an ack still on its way (an offer may overtake it) must not undo this
    this._resuming = false;
    this._closePeer();
    this._setStage('error', why, reason);
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
        else {
          this._setStage('connected', 'Connected to the device; waiting for video…');
          this._watchStart(pc);
        }
        this._recovered(pc);
        break;
      case 'disconnected':
        if (!this._peerUp) return;
        this._peerUp = false;
        this._emit('disconnectedPeer', { id: this.deviceId });
        this._interrupted(pc);
        break;
      case 'failed':
        if (this._cut) break; // ICE restarts under way; their grace decides
        this._peerFailed('Could not connect to the device (no working network path)');
        break;
    }
  }

  // --- the automatic transport's fallback ---

  // _watchStart gives a connected session of an automatic choice
  // startWatch to show a picture; then it falls back to the other
  // transport (a browser whose decoder refuses what its capabilities
  // promised, a stream its MSE cannot take).
  _watchStart(pc) {
    if (!this.transportChoice.fallback || this._playedOnce) return;
    clearTimeout(this._startTimer);
    this._startTimer = setTimeout(() => {
      if (!this._running || pc !== this.peerConnection || this._playedOnce) return;
      this._fallBack(`no picture ${startWatch / 1000} s after connecting`);
    }, startWatch);
  }

  // _fallBack moves an automatic choice that failed to start (no picture
  // yet) to the other transport, with a fresh join, and reports whether it
  // did. Once per player: two broken paths do not take turns.
  _fallBack(why) {
    const c = this.transportChoice;
    if (!c.auto || !c.fallback || this._playedOnce || !this._running) return false;
    clearTimeout(this._startTimer);
    const from = this.transport;
    this._chooseTransport({ transport: c.fallback, auto: true, fallback: '', reason: `${c.fallback}: ${from} failed to start here (${why})` });
    this._closePeer();
    this.deviceId = '';
    this._setStage('joined', `${from} failed to start; trying ${c.fallback}…`);
    this._later(0, () => this._join());
    return true;
  }

  _peerFailed(why, reason = 'no-path') {
    if (!this.peerConnection && !this._session) return;
    log(why);
    this._emit('connectfailedPeer', { id: this.deviceId });
    if (this._session) this._send('connectivityError', {});
    // Another bridge may hand out TURN servers that work from here.
    if (this._bridgeFault()) this._failover(why, reason, false);
    else this._rejoin(why, reason);
  }

  // --- re-attaching and ICE restarts ---

  // _canReattach reports whether the session can outlive its bridge: it
  // has a resume key and a peer connection that played and is not dead.
  _canReattach() {
    const pc = this.peerConnection;
    return !!(this._session?.key && !this._session.relayed && pc && this._started && pc.connectionState !== 'failed' && pc.connectionState !== 'closed');
  }

  // _reattach moves to the next bridge (the same one when there is only
  // one) to re-attach the playing session there.
  _reattach(why, unreachable) {
    const from = this.bridge;
    if (this.bridges.length > 1) {
      this._bridgeIndex = (this._bridgeIndex + 1) % this.bridges.length;
      this.bridge = this.bridges[this._bridgeIndex];
    }
    let wait = 0;
    if ((unreachable || this.bridges.length === 1) && ++this._bridgesDown >= this.bridges.length) {
      this._bridgesDown = 0;
      wait = backoff(this._rounds++);
    }
    this._resuming = true;
    this._setFailover('reattaching', `${why} — re-attaching the session through ${this.bridge}${wait ? ` in ${Math.ceil(wait / 1000)} s` : ''}; the picture goes on`);
    if (from !== this.bridge) this._emit('bridgeChanged', { from, to: this.bridge, reason: 'bridge-lost' });
    this._later(wait, () => this._connect());
  }

  // _resume asks the bridge just connected to re-attach the session; the
  // device challenges us through it (_onResumeChallenge).
  _resume() {
    const s = this._socket;
    const session = this._session;
    if (!s?.connected) return;
    if (!session?.key || !this.peerConnection) {
      this._resuming = false;
      this._join();
      return;
    }
    const gen = ++this._joinGen;
    log(`re-attaching session ${session.sid} through ${this.bridge}`);
    s.emit('resume', this.room, { sid: session.sid, token: this.token }, (err, desc) => this._resumed(gen, err, desc));
    this._later(joinTimeout, () => this._resumeFailed('The bridge did not answer the resume'));
  }

  _resumed(gen, err, desc) {
    if (gen !== this._joinGen || !this._running || !this._resuming) return;
    clearTimeout(this._timer);
    if (err || Object.keys(desc?.clients ?? {}).length === 0) {
      const text = err ? (typeof err === 'string' ? err : (err.message ?? JSON.stringify(err))) : 'the device cannot be reached through it';
      this._resumeFailed(`${this.bridge} could not re-attach the session (${String(text).slice(0, 200)})`);
      return;
    }
    this._resuming = false;
    this._bridgeFaults = 0;
    this._bridgesDown = 0;
    this._rounds = 0;
    this._setFailover('reattached', `Re-attached to the device through ${this.bridge}`);
    // The path may have gone down while no bridge could carry a restart.
    const pc = this.peerConnection;
    if (pc && this._cut) this._scheduleRestart(pc, 0);
  }

  // _resumeFailed starts a fresh session through this bridge when the
  // device no longer knows ours (it restarted) or refused; the old picture
  // plays until the new offer replaces it.
  _resumeFailed(why) {
    this._resuming = false;
    this._setFailover('fresh', `${why} — starting a new session`);
    this._join();
  }

  async _onResumeChallenge(msg) {
    const session = this._session;
    const challenge = msg.payload?.challenge;
    const s = this._socket;
    if (!this._resuming || !session?.key || typeof challenge !== 'string' || msg.sid !== session.sid || msg.from !== session.from) return;
    try {
      const signature = await resumeSignature(session.key.privateKey, this.room, session.sid, challenge);
      if (s !== this._socket) return;
      s.emit('message', {
        to: msg.from, sid: session.sid, broadcaster: msg.from, roomType: 'video', type: 'resumeProof',
        payload: { signature }, prefix: 'webkit',
      });
    } catch (err) {
      log('cannot sign the resume:', err.message);
    }
  }

  // _interrupted handles a transport that went down (ICE disconnected) or
  // stopped bringing media while it claims to be up (no bytes for
  // stallChecks seconds: browsers may take half a minute to notice a
  // dead path). ICE may recover on its own (a lost packet burst); else
  // the player asks the device for ICE restarts through whichever bridge
  // is up, and starts a fresh session only if that does not help. A device
  // that signs its offers is ours and restarts ICE; others get a fresh
  // session after a few seconds, which gathers new paths (TURN over TCP
  // when the network now drops UDP).
  _interrupted(pc) {
    if (this._cut || pc !== this.peerConnection) return;
    this._cut = true;
    this._setStage(this.stage, 'The connection to the device is interrupted…');
    if (this._session?.signed) {
      this._scheduleRestart(pc, restartDelay);
      this._later(restartGrace, () => this._peerFailed('The connection to the device was lost'));
    } else {
      this._later(disconnectGrace, () => this._peerFailed('The connection to the device was lost'));
    }
  }

  // _recovered ends an interruption: media flows again.
  _recovered(pc) {
    if (!this._cut || pc !== this.peerConnection) return;
    this._cut = false;
    clearTimeout(this._timer); // the fresh-session fallback
    clearTimeout(this._restartTimer);
    this._restartTimer = null;
    if (this.failover.state === 'restarting-ice') this._setFailover('restarted', `Reconnected to the device after an ICE restart (through ${this.bridge})`);
    else if (this.stage === 'playing') this._setStage('playing', '');
  }

  // _watchFlow samples the bytes the peer connection receives every
  // second while the session plays, to notice a path that died before
  // the browser's ICE does.
  _watchFlow(pc) {
    clearInterval(this._flowTimer);
    let last = -1;
    let still = 0;
    this._flowTimer = setInterval(async () => {
      if (pc !== this.peerConnection) {
        clearInterval(this._flowTimer);
        return;
      }
      let bytes;
      try {
        bytes = receivedBytes(await pc.getStats());
      } catch {
        return;
      }
      if (pc !== this.peerConnection) return;
      // Any change counts: candidate pairs (Firefox's only byte count)
      // come and go with ICE restarts, so their sum may also fall.
      if (bytes !== last) {
        still = 0;
        if (last >= 0) this._recovered(pc);
      } else if (++still >= stallChecks) {
        this._interrupted(pc);
      }
      last = bytes;
    }, 1000);
  }

  // _scheduleRestart asks for an ICE restart after ms, and again every
  // restartEvery while the transport stays down.
  _scheduleRestart(pc, ms) {
    clearTimeout(this._restartTimer);
    this._restartTimer = setTimeout(() => {
      this._restartTimer = null;
      if (!this._running || pc !== this.peerConnection || !this._cut) return;
      if (this._socket?.connected && !this._resuming) {
        this._setFailover('restarting-ice', `The connection to the device is interrupted — restarting ICE through ${this.bridge}…`);
        this._send('restart', {});
      }
      this._scheduleRestart(pc, restartEvery);
    }, ms);
  }

  // _onRestartOffer applies a new offer of the same session (an ICE
  // restart): signed by the device for this session's nonce, with the same
  // DTLS certificate, or ignored.
  async _onRestartOffer(msg, sdp) {
    const pc = this.peerConnection;
    const session = this._session;
    if (session.signed) {
      let ok = false;
      try {
        ok = typeof msg.payload?.signature === 'string' && await verifyOffer(msg.from, this.room, this.stream, session.nonce, sdp, msg.payload.signature);
      } catch (err) {
        // As for the first offer: without WebCrypto an open room's offer
        // goes unverified (owned rooms never got this far).
        ok = err instanceof TrustUnavailable && !ownerOf(this.room);
        if (!ok) log('cannot check the restart offer:', err.message);
      }
      if (!ok) {
        log('ignoring a restart offer not signed for this session');
        return;
      }
    }
    if (pc !== this.peerConnection) return;
    if (sdpFingerprint(sdp) !== sdpFingerprint(this._offerSdp ?? '')) {
      log('ignoring a restart offer with another DTLS certificate');
      return;
    }
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: stripBadFmtp(sdp) });
      const answer = await pc.createAnswer();
      if (pc !== this.peerConnection) return;
      await pc.setLocalDescription(answer);
      if (pc !== this.peerConnection) return;
      this._send('answer', { type: 'answer', sdp: pc.localDescription.sdp });
      log('answered the ICE restart');
    } catch (err) {
      log('ICE restart failed:', err.message);
    }
  }

  _closePeer() {
    clearTimeout(this._restartTimer);
    this._restartTimer = null;
    clearInterval(this._flowTimer);
    this._flowTimer = null;
    this._cut = false;
    this._pending = [];
    this._remoteSet = false;
    const relayed = this._session?.relayed;
    this._session = null;
    this._peerUp = false;
    this._relay?.close();
    this._relay = null;
    this._demux = null;
    if (this.peerConnection || relayed) {
      this._mse?.close();
      this._mse = null;
    }
    if (this._dropPeer()) this._emit('closePeer', { id: this.deviceId });
  }
}

// receivedBytes is what a peer connection received, from its stats:
// transport reports where they count bytes (Chromium, Safari), else
// candidate pairs (Firefox's transport reports have no byte counts).
export function receivedBytes(stats) {
  let transport = 0, pairs = 0, haveTransport = false;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.bytesReceived !== undefined) {
      haveTransport = true;
      transport += r.bytesReceived ?? 0;
    } else if (r.type === 'candidate-pair') {
      pairs += r.bytesReceived ?? 0;
    }
  });
  return haveTransport ? transport : pairs;
}
