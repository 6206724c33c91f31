// The ersmesh player: joins an ERS room through a bridge and plays the
// device's WebRTC stream in a <video>. It follows the flow of EvoStream's
// HTML5 player (ERS-PROTOCOL.md §4, SRTP transport): the device offers, the
// browser answers, candidates trickle both ways as ERS "message" events.
import { Socket } from './socketio.js';

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
// disconnectedPeer, connectfailedPeer, closePeer, playerstarted.
export class Player extends EventTarget {
  constructor({ bridge = location.origin, room, stream = 'sample', token = '', transport = 'srtp', video } = {}) {
    super();
    if (!room) throw new Error('ersmesh: a room name is needed');
    if (transport !== 'srtp') throw new Error(`ersmesh: transport "${transport}" is not supported (only "srtp")`);
    if (!(video instanceof HTMLVideoElement)) throw new Error('ersmesh: a <video> element is needed');
    this.bridge = new URL(bridge, location.href).origin;
    this.room = room;
    this.stream = stream || 'sample';
    this.token = token || '';
    this.transport = transport;
    this.video = video;

    this.stage = '';
    this.message = '';
    this.deviceId = '';       // the device's id in the room (the key of the join ack's clients)
    this.peerConnection = null;

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
      this._setStage('playing', '');
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
    log(`joining room "${this.room}" for stream "${this.stream}"`);
    s.emit('join', this.room, { token: this.token, streamName: this.stream, transport: this.transport },
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
    log('device left the room:', id);
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
    this._session = { from: msg.from, sid: msg.sid };
    clearTimeout(this._timer);
    this._setStage('negotiating', 'Setting up the peer-to-peer connection with the device…');
    this._later(connectTimeout, () => this._peerFailed('The connection to the device did not come up in time'));

    const iceServers = [...this._stun, ...this._turn];
    const pc = new RTCPeerConnection({ iceServers });
    this.peerConnection = pc;
    this._emit('createdPeer', { id: msg.from });
    log('offer from', msg.from, 'with', iceServers.length, 'ICE servers');

    pc.onicecandidate = (e) => {
      // A null candidate marks the end of gathering; ERS players send nothing for it.
      if (!e.candidate || pc !== this.peerConnection) return;
      const { candidate, sdpMid, sdpMLineIndex } = e.candidate;
      this._send('candidate', { candidate: { candidate, sdpMid, sdpMLineIndex } });
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
    pc.onicecandidate = pc.ontrack = pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
    pc.close();
    this.video.srcObject = null;
    this._emit('closePeer', { id: this.deviceId });
  }
}
