// relay.js: the player's half of docs/relay.md (package relay in Go). The
// device signs every unit of the fmp4 stream (a SIG record before each MOOV
// and each BEGIN..END group); the player checks each unit, SHA-256 and
// Ed25519 with WebCrypto, before any byte of it reaches the SourceBuffer, so
// that whoever relays the stream — the device, or another viewer — cannot
// alter, inject, drop or replay media unseen. With that, viewers may serve
// viewers: a player may take a parent (another viewer the device assigns)
// and, when allowed, children, to which it forwards exactly the bytes it
// verified. The byte formats must match relay/unit.go and relay/messages.go.

import { AUDIO, BEGIN, END, MDAT, MOOF, MOOV, VIDEO } from './fmp4.js';
import { ed25519KeyOf, framed, fromBase64, normalizeFingerprint, sdpFingerprints } from './trust.js';

export const SIG = 248;
export const FLAG_KEY = 1;
export const FLAG_MOOV = 2;
export const SIG_PAYLOAD = 130;
const SIGNED = 66; // the SIG payload before its signature
const SIG_RECORD = 4 + SIG_PAYLOAD;

const STREAM_DOMAIN = 'ersmesh/stream/v1';
const ASSIGN_DOMAIN = 'ersmesh/relay-assign/v1';
const CHILD_DOMAIN = 'ersmesh/relay-child/v1';

const maxRecord = 8 << 20;      // one record's payload, as the device's parser
const maxUnit = 16 << 20;       // a SIG record and what it covers
const maxPending = 600;         // units received and not yet verified
const chunkSize = 16 << 10;     // bytes per data channel message
const maxChildBuffer = 1 << 20; // a child's bufferedAmount beyond which it skips to the next keyframe
const maxGopUnits = 300;
const maxGopBytes = 16 << 20;
export const MAX_CHILDREN = 8;
const maxSdp = 32 << 10;
const maxPayload = 48 << 10;

// Timing of docs/relay.md §3 (ms).
export const STALL = 600;       // no unit for this long after the first: the parent stalled
export const CONNECT = 5000;    // a link connected and delivering within this, else failed
export const STALE = 20000;     // from the first unit to one as new as the assignment, else stale
const healthEvery = 200;        // how often a link and the player's health are looked at
const maxReports = 10;          // relayReports a minute the device takes from a child

// Problems a child reports (relayReport's problem); the first nine are the
// parent altering the stream, which bans it.
export const INTEGRITY = ['unsigned', 'malformed', 'epoch', 'hash', 'signature', 'replay', 'gap', 'init', 'stale'];
export const PROBLEMS = [...INTEGRITY, 'stall', 'failed', 'closed'];

// RelayProblem is what is wrong with a link's stream.
export class RelayProblem extends Error {
  constructor(code, detail) {
    super(`${code}: ${detail}`);
    this.name = 'RelayProblem';
    this.code = code;
    this.detail = String(detail);
  }
}

function problem(code, detail) {
  return new RelayProblem(code, detail);
}

function u8(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function hex(b) {
  let s = '';
  for (const v of b) s += v.toString(16).padStart(2, '0');
  return s;
}

// u53 reads a big-endian uint64, or -1 when it is beyond 2^53 - 1 (a seq
// the device never makes, and a JS number cannot hold).
function u53(p, off) {
  const v = new DataView(p.buffer, p.byteOffset + off, 8);
  const hi = v.getUint32(0), lo = v.getUint32(4);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + lo;
}

// parseSig reads a SIG record's 130-byte payload; it throws a RelayProblem
// "malformed" for anything relay.ParseHeader refuses.
export function parseSig(p) {
  p = u8(p);
  if (p.length !== SIG_PAYLOAD) throw problem('malformed', `SIG payload of ${p.length} bytes, want ${SIG_PAYLOAD}`);
  if (p[0] !== 1) throw problem('malformed', `SIG version ${p[0]}`);
  const flags = p[1];
  if ((flags & ~(FLAG_KEY | FLAG_MOOV)) !== 0 || flags === (FLAG_KEY | FLAG_MOOV)) throw problem('malformed', `SIG flags 0x${flags.toString(16)}`);
  const seq = u53(p, 18), moovSeq = u53(p, 26);
  if (seq <= 0 || moovSeq <= 0 || moovSeq > seq) throw problem('malformed', `SIG seq ${seq}, moovSeq ${moovSeq}`);
  const moov = (flags & FLAG_MOOV) !== 0;
  if (moov && moovSeq !== seq) throw problem('malformed', `a MOOV unit's moovSeq ${moovSeq} is not its seq ${seq}`);
  return {
    flags, key: (flags & FLAG_KEY) !== 0, moov,
    epoch: hex(p.subarray(2, 18)), seq, moovSeq,
    hash: p.slice(34, 66), sig: p.slice(66, 130), signed: p.slice(0, SIGNED),
  };
}

// Reader states: what the next record must be.
const wantSig = 0, wantMoov = 1, wantBegin = 2, inGroup = 3;

// UnitReader cuts a signed stream channel into units: {…SIG fields, raw (the
// SIG record and the covered records, as received: what a relay forwards),
// covered (raw after the SIG record: what the hash is of)}. Records may span
// messages and a message may hold several. It checks the framing only;
// after a problem it is unusable (the link is bad).
export class UnitReader {
  constructor() {
    this._buf = new Uint8Array(1 << 16);
    this._len = 0;  // bytes in _buf
    this._off = 0;  // bytes of _buf that are complete records of the current unit
    this._state = wantSig;
    this._hdr = null;
    this.units = 0; // units completed
  }

  // pending is what was received and is not yet part of a unit.
  pending() {
    return this._buf.slice(0, this._len);
  }

  _append(msg) {
    if (this._len + msg.length > this._buf.length) {
      let n = this._buf.length;
      while (n < this._len + msg.length) n *= 2;
      const b = new Uint8Array(n);
      b.set(this._buf.subarray(0, this._len));
      this._buf = b;
    }
    this._buf.set(msg, this._len);
    this._len += msg.length;
  }

  // feed takes one data channel message and calls onUnit for each unit it
  // completes, in order; it throws a RelayProblem (unsigned, malformed).
  feed(data, onUnit) {
    this._append(u8(data));
    while (this._len - this._off >= 4) {
      const b = this._buf, o = this._off;
      const type = b[o];
      const n = (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
      if (n > maxRecord) throw problem('malformed', `record type ${type} declares ${n} bytes, over the ${maxRecord} limit`);
      if (o + 4 + n > maxUnit) throw problem('malformed', `a unit of more than ${maxUnit} bytes`);
      if (this._len - o - 4 < n) return;
      let done = false;
      switch (this._state) {
        case wantSig:
          if (type === MOOV || type === BEGIN) throw problem('unsigned', `record type ${type} without a SIG record before it`);
          if (type !== SIG) throw problem('malformed', `record type ${type} where a SIG record belongs`);
          this._hdr = parseSig(b.subarray(o + 4, o + 4 + n));
          this._state = this._hdr.moov ? wantMoov : wantBegin;
          break;
        case wantMoov:
          if (type !== MOOV) throw problem('unsigned', `a SIG record for a MOOV is followed by record type ${type}`);
          done = true;
          break;
        case wantBegin:
          if (type !== BEGIN) throw problem('unsigned', `a SIG record for a group is followed by record type ${type}`);
          if (n !== 0) throw problem('malformed', `BEGIN with ${n} payload bytes`);
          this._state = inGroup;
          break;
        default:
          if (type === END) {
            if (n !== 0) throw problem('malformed', `END with ${n} payload bytes`);
            done = true;
          } else if (type !== MOOF && type !== MDAT && type !== VIDEO && type !== AUDIO) {
            throw problem('malformed', `record type ${type} inside a group`);
          }
      }
      this._off = o + 4 + n;
      if (!done) continue;
      const raw = this._buf.slice(0, this._off);
      this._buf.copyWithin(0, this._off, this._len);
      this._len -= this._off;
      this._off = 0;
      this._state = wantSig;
      this.units++;
      onUnit({ ...this._hdr, raw, covered: raw.subarray(SIG_RECORD) });
    }
  }
}

// streamMessage is what the device signs for a unit of stream.
export function streamMessage(stream, signed) {
  return framed(STREAM_DOMAIN, [stream, signed]);
}

// canVerify resolves true when this browser can check Ed25519 signatures
// (a secure context and WebCrypto with Ed25519): only then does the player
// ask for the signed stream and take part in relaying.
let verifyProbe = null;
export function canVerify() {
  verifyProbe ??= (async () => {
    if (!globalThis.crypto?.subtle) return false;
    try {
      await crypto.subtle.importKey('raw', new Uint8Array(32).fill(1), { name: 'Ed25519' }, false, ['verify']);
      return true;
    } catch {
      return false;
    }
  })();
  return verifyProbe;
}

// StreamVerifier is what a player knows of one signed stream across its
// links (the device, then parents): the device's key, the epoch, the MOOV in
// use and the last unit appended, and counts for the stats overlay.
export class StreamVerifier {
  constructor(deviceId, stream) {
    this.stream = stream;
    this.epoch = '';  // 32 hex digits, '' before the first unit or assignment
    this.moov = 0;    // seq of the MOOV in use
    this.appended = 0;
    this.verified = 0;
    this.rejected = 0;
    const raw = ed25519KeyOf(deviceId);
    this._key = crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
    this._key.catch(() => {}); // seen by each unit's check
  }

  // setEpoch fixes the epoch (a relayAssign's). Another epoch than the one
  // known is a restarted stream: everything starts over.
  setEpoch(epoch) {
    if (epoch === this.epoch) return;
    this.epoch = epoch;
    this.moov = 0;
    this.appended = 0;
  }

  // check applies docs/relay.md §1's rules 3-8 to a unit whose hash and
  // signature were checked (hashOk, sigOk), for link (its {last,
  // lastMoov}); it returns {init, append} or throws a RelayProblem.
  check(link, u, hashOk, sigOk) {
    if (this.epoch && u.epoch !== this.epoch) throw problem('epoch', `unit ${u.seq} is of epoch ${u.epoch}, the stream's is ${this.epoch}`);
    if (!hashOk) throw problem('hash', `unit ${u.seq}'s bytes do not match their hash`);
    if (!sigOk) throw problem('signature', `unit ${u.seq}'s signature does not verify`);
    if (u.seq <= link.last) throw problem('replay', `unit ${u.seq} after unit ${link.last}`);
    if (link.last === 0 && !u.moov) throw problem('gap', `the link starts with unit ${u.seq}, not with a MOOV`);
    if (link.last !== 0 && u.seq !== link.last + 1 && !u.moov && !u.key) throw problem('gap', `unit ${u.seq} after unit ${link.last}, and it is not a keyframe`);
    if (!u.moov && u.moovSeq !== link.lastMoov) throw problem('init', `unit ${u.seq} needs MOOV ${u.moovSeq}, the link's is ${link.lastMoov}`);
    if (!this.epoch) this.epoch = u.epoch;
    link.last = u.seq;
    if (u.moov) {
      link.lastMoov = u.seq;
      const init = u.seq !== this.moov;
      this.moov = u.seq;
      return { init, append: false };
    }
    if (u.seq > this.appended) {
      this.appended = u.seq;
      return { init: false, append: true };
    }
    return { init: false, append: false };
  }
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// SignedLink verifies one link's units in order. Each unit's SHA-256 and
// Ed25519 check start as soon as it is complete, so units are checked in
// parallel while they are delivered in order: a slow check holds back only
// what follows it. onUnit(unit, {init, append}) gets each good unit;
// onProblem(RelayProblem) the first bad one, after which the link is done.
export class SignedLink {
  constructor(verifier, { onUnit, onProblem }) {
    this._v = verifier;
    this._onUnit = onUnit;
    this._onProblem = onProblem;
    this._reader = new UnitReader();
    this._state = { last: 0, lastMoov: 0 };
    this._queue = [];
    this._draining = false;
    this._broken = false; // the framing failed: nothing more is read
    this.closed = false;
    this.units = 0;       // units delivered
    this.firstAt = 0;     // performance.now() of the first unit delivered
    this.lastAt = 0;      // and of the last
    this.lastSeq = 0;
  }

  // started reports whether any record arrived on the link.
  get started() {
    return this._reader.units > 0 || this._reader._len > 0;
  }

  // reader is the link's framing, for a player that falls back to an
  // unsigned stream (a device older than relay v1).
  get reader() {
    return this._reader;
  }

  feed(data) {
    if (this.closed || this._broken) return;
    try {
      this._reader.feed(data, (u) => this._start(u));
    } catch (err) {
      // The units before the broken one are good: they go first.
      this._broken = true;
      this._queue.push({ u: null, done: Promise.resolve({ err }) });
      if (!this._draining) this._drain();
    }
  }

  close() {
    this.closed = true;
    this._queue = [];
  }

  // drained resolves once every unit received so far is checked.
  async drained() {
    while (this._draining) await new Promise((r) => setTimeout(r, 5));
  }

  _start(u) {
    if (this._queue.length >= maxPending) throw problem('malformed', `more than ${maxPending} units waiting to be verified`);
    const s = crypto.subtle;
    const hash = s.digest('SHA-256', u.covered);
    const sig = this._v._key.then((k) => s.verify({ name: 'Ed25519' }, k, u.sig, streamMessage(this._v.stream, u.signed)));
    const done = Promise.all([hash, sig]).then(
      ([h, ok]) => ({ hashOk: equal(new Uint8Array(h), u.hash), sigOk: ok === true }),
      (err) => ({ err }));
    this._queue.push({ u, done });
    if (!this._draining) this._drain();
  }

  async _drain() {
    this._draining = true;
    while (this._queue.length > 0 && !this.closed) {
      const { u, done } = this._queue[0];
      const r = await done;
      if (this.closed) break;
      this._queue.shift();
      let verdict;
      try {
        if (!u) throw r.err;
        if (r.err) throw problem('signature', `cannot verify unit ${u.seq}: ${r.err.message}`);
        verdict = this._v.check(this._state, u, r.hashOk, r.sigOk);
      } catch (err) {
        this._fail(err);
        break;
      }
      this._v.verified++;
      this.units++;
      this.lastAt = performance.now();
      if (!this.firstAt) this.firstAt = this.lastAt;
      this.lastSeq = u.seq;
      this._onUnit(u, verdict);
    }
    this._draining = false;
  }

  _fail(err) {
    if (this.closed) return;
    this.close();
    const p = err instanceof RelayProblem ? err : problem('malformed', err?.message ?? String(err));
    this._v.rejected++;
    this._onProblem(p);
  }
}

// --- relaying: the tree's links ---

// sendUnit writes a unit's bytes to a data channel in messages of at most
// chunkSize bytes.
function sendUnit(ch, raw) {
  for (let o = 0; o < raw.length; o += chunkSize) ch.send(raw.subarray(o, Math.min(raw.length, o + chunkSize)));
}

const linkRE = /^[A-Za-z0-9_-]{1,32}$/;

function validLink(s) {
  return typeof s === 'string' && linkRE.test(s);
}

function validInt(n, lo, hi) {
  return Number.isSafeInteger(n) && n >= lo && n <= hi;
}

// fingerprintsAre checks that an SDP carries at least one a=fingerprint and
// that every one is want (docs/relay.md §2): the other end of a link is the
// certificate the device named.
export function fingerprintsAre(sdp, want) {
  const got = sdpFingerprints(sdp);
  return got.length > 0 && got.every((f) => f === normalizeFingerprint(want));
}

// assignMessage and childMessage are what the device signs for relayAssign
// and relayChild to the viewer who joined room with nonce.
export function assignMessage(room, nonce, a) {
  return framed(ASSIGN_DOMAIN, [room, a.stream, nonce, a.link, a.fingerprint, a.self, a.epoch, String(a.seq), String(a.depth)]);
}

export function childMessage(room, stream, nonce, c) {
  return framed(CHILD_DOMAIN, [room, stream, nonce, c.link, c.fingerprint, String(c.depth)]);
}

// deviceSigned resolves whether sig (base64) is the device's signature of
// msg, with the verifier's key.
export async function deviceSigned(verifier, msg, sig) {
  let raw;
  try {
    raw = fromBase64(sig);
  } catch {
    return false;
  }
  if (raw.length !== 64) return false;
  const k = await verifier._key;
  return crypto.subtle.verify({ name: 'Ed25519' }, k, raw, msg);
}

// burstStart returns the index in kept (units in order, the first a
// keyframe's) where a new child starts (docs/relay.md §2): the newest
// keyframe for a new viewer (from 0), else the newest keyframe at most one
// past from, else the oldest keyframe; -1 without any.
export function burstStart(kept, from) {
  let start = -1;
  for (let i = kept.length - 1; i >= 0; i--) {
    if (!kept[i].key) continue;
    start = i;
    if (!(from > 0) || kept[i].seq <= from + 1) break;
  }
  return start;
}

// Relay is one player's part in the tree, for one session with the device:
// the verifier of the stream, the link it plays from (the device's channel,
// or a parent's), the units of the current GOP, and its children. The
// player (ersmesh.js) gives it:
//   send(type, payload)  a message to the device, in the session
//   deliver(unit, verdict) a verified unit to play
//   room, stream, nonce, fingerprint, certificate, iceServers()
//   healthy()            whether its own playback is fine
//   onParent(state, why) the parent link's state changed: linking, playing,
//                        lost (why); the player shows it
//   onChange()           the overlay's numbers changed
//   log(...)
export class Relay {
  constructor(host, deviceId, { maxChildren = 0 } = {}) {
    this.host = host;
    this.deviceId = deviceId;
    this.verifier = new StreamVerifier(deviceId, host.stream);
    this.maxChildren = Math.max(0, Math.min(MAX_CHILDREN, maxChildren | 0));
    this.depth = 0;        // 1 direct, ≥2 relayed, 0 not yet known
    this.parent = '';      // the parent's label while relayed
    this.reports = 0;      // relayReports sent
    this.lastReport = '';  // the problem of the last one
    this.reattaches = 0;   // parents after the first
    this._assigns = 0;
    this._reportTimes = []; // performance.now() of the reports of the last minute
    this._link = null;     // the parent link {id, assign, pc, ch, signed, timer, pending}
    this._children = new Map(); // link id → child
    // What new children start with: the MOOV in use and the units appended
    // since the oldest keyframe kept (whole GOPs, within maxGopUnits and
    // maxGopBytes), so that a re-attaching child loses nothing kept.
    this._gop = { moov: null, units: [], bytes: 0 };
    this._ready = -1;      // the maxChildren last sent in relayReady
    this._closed = false;
    this._timer = setInterval(() => this._tick(), healthEvery);
  }

  get children() {
    return this._children.size;
  }

  // stats is what the overlay shows of relaying.
  stats() {
    return {
      depth: this.depth, parent: this.parent, children: this._children.size,
      verified: this.verifier.verified, rejected: this.verifier.rejected,
      reports: this.reports, lastReport: this.lastReport, reattaches: this.reattaches, relayed: this.depth >= 2,
      offered: Math.max(0, this._ready), // children offered to the device (relayReady)
    };
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    clearInterval(this._timer);
    this._dropParent();
    for (const id of [...this._children.keys()]) this._dropChild(id, 'closed');
  }

  // direct makes the link of the device's own emsStreamChannel; a problem
  // on it goes to onProblem (the player ends the session).
  direct(onProblem) {
    this.depth = 1;
    this.parent = '';
    const link = new SignedLink(this.verifier, {
      onUnit: (u, v) => this._accept(u, v),
      onProblem: (p) => onProblem(p),
    });
    this.host.onChange();
    return link;
  }

  // _accept plays a verified unit, keeps it for new children and forwards
  // it to those there are.
  _accept(u, verdict) {
    this.host.deliver(u, verdict);
    if (!verdict.init && !verdict.append) return; // a duplicate (a new parent's burst)
    const g = this._gop;
    if (u.moov) {
      g.moov = u;
      g.units = [];
      g.bytes = 0;
    } else if (u.key || g.units.length > 0) {
      g.units.push(u);
      g.bytes += u.raw.length;
      while (g.units.length > maxGopUnits || g.bytes > maxGopBytes) {
        // Drop the oldest GOP; a single GOP beyond the bounds is not
        // kept, and new children wait for the next keyframe.
        let next = g.units.findIndex((x, i) => i > 0 && x.key);
        if (next < 0) next = g.units.length;
        for (const x of g.units.splice(0, next)) g.bytes -= x.raw.length;
      }
    }
    for (const c of this._children.values()) if (c.open) this._forward(c, u);
  }

  // _forward sends one unit to a child unless the child had it, is behind
  // (it then skips to the next keyframe: a legal gap) or the unit would
  // break its order.
  _forward(c, u) {
    if (c.ch.readyState !== 'open') return;
    if (u.moov) {
      if (u.seq === c.moov || u.seq <= c.last) return;
      c.moov = u.seq;
    } else {
      if (u.seq <= c.last || u.moovSeq !== c.moov) return;
      if (c.ch.bufferedAmount > maxChildBuffer) {
        if (!c.skipping) this.host.log(`relay: child ${c.id} is behind (${c.ch.bufferedAmount} bytes buffered); it skips to the next keyframe`);
        c.skipping = true;
        return;
      }
      if (c.skipping && !u.key) return;
      c.skipping = false;
    }
    c.last = u.seq;
    try {
      sendUnit(c.ch, u.raw);
      c.units++;
    } catch (err) {
      this.host.log(`relay: sending to child ${c.id}:`, err.message);
    }
  }

  // --- messages from the device ---

  // onMessage takes a relay message of the session; it returns whether it
  // was one.
  onMessage(msg) {
    const p = msg.payload;
    if (!p || typeof p !== 'object' || JSON.stringify(p).length > maxPayload) return true;
    switch (msg.type) {
      case 'relayAssign': this._onAssign(p); return true;
      case 'relayChild': this._onChild(p); return true;
      case 'relaySignal': this._onSignal(p); return true;
      case 'relayEnd': this._onEnd(p); return true;
    }
    return false;
  }

  async _onAssign(a) {
    const h = this.host;
    if (!validLink(a.link) || !validInt(a.depth, 2, 64) || !validInt(a.seq, 0, Number.MAX_SAFE_INTEGER) ||
      typeof a.epoch !== 'string' || !/^[0-9a-f]{32}$/.test(a.epoch) || typeof a.fingerprint !== 'string' ||
      typeof a.self !== 'string' || typeof a.stream !== 'string' || typeof a.signature !== 'string' ||
      (a.parent !== undefined && (typeof a.parent !== 'string' || a.parent.length > 64))) {
      h.log('relay: ignoring a malformed relayAssign');
      return;
    }
    let ok = false;
    try {
      ok = await deviceSigned(this.verifier, assignMessage(h.room, h.nonce, a), a.signature);
    } catch (err) {
      h.log('relay: cannot check a relayAssign:', err.message);
    }
    if (this._closed) return;
    if (!ok) {
      h.log('relay: ignoring a relayAssign the device did not sign for this join (a bridge tampering?)');
      return;
    }
    if (normalizeFingerprint(a.self) !== h.fingerprint || a.stream !== h.stream) {
      h.log('relay: ignoring a relayAssign for another viewer or stream');
      return;
    }
    this._dropParent();
    if (this._assigns++ > 0) this.reattaches++;
    this.verifier.setEpoch(a.epoch);
    this.depth = a.depth;
    this.parent = a.parent || a.link;
    const pc = new RTCPeerConnection({ iceServers: h.iceServers(), certificates: [h.certificate] });
    const link = { id: a.link, assign: a, pc, ch: null, signed: null, remoteSet: false, pending: [], since: performance.now(), done: false, stalled: false, stallAt: 0, fresh: false };
    this._link = link;
    h.onParent('linking', `Connecting to relay ${this.parent} (depth ${a.depth})…`, pc);
    this.host.onChange();
    pc.onicecandidate = (e) => {
      if (this._link !== link) return;
      const c = e.candidate;
      this.host.send('relaySignal', { link: link.id, candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : { candidate: '' } });
    };
    pc.onconnectionstatechange = () => {
      if (this._link === link && pc.connectionState === 'failed') this._parentFailed(link, problem('failed', 'the link to the parent failed (ICE/DTLS)'));
    };
    pc.ondatachannel = (e) => {
      const ch = e.channel;
      if (this._link !== link || ch.label !== 'emsStreamChannel' || link.ch) return;
      link.ch = ch;
      ch.binaryType = 'arraybuffer';
      link.signed = new SignedLink(this.verifier, {
        onUnit: (u, v) => {
          if (this._link !== link) return;
          if (link.signed.units === 1 || link.stalled) h.onParent('playing', '', pc);
          link.stalled = false;
          link.stallAt = 0;
          if (u.seq >= link.assign.seq) link.fresh = true;
          this._accept(u, v);
        },
        onProblem: (p) => this._parentFailed(link, p),
      });
      ch.onmessage = (m) => {
        if (this._link === link && m.data instanceof ArrayBuffer) link.signed.feed(m.data);
      };
      ch.onclose = () => {
        if (this._link === link) this._parentFailed(link, problem('closed', 'the parent closed the stream channel'));
      };
    };
  }

  async _onSignal(s) {
    if (!validLink(s.link)) return;
    const link = this._link?.id === s.link ? this._link : null;
    const child = this._children.get(s.link);
    const pc = link?.pc ?? child?.pc;
    if (!pc) return;
    const end = link ?? child;
    const d = s.description;
    try {
      if (d) {
        if (typeof d.sdp !== 'string' || d.sdp.length > maxSdp) return;
        if (link && d.type === 'offer') {
          if (!fingerprintsAre(d.sdp, link.assign.fingerprint)) {
            this._parentFailed(link, problem('failed', 'the parent offered another DTLS certificate than the device named'));
            return;
          }
          await pc.setRemoteDescription({ type: 'offer', sdp: d.sdp });
          end.remoteSet = true;
          for (const c of end.pending.splice(0)) pc.addIceCandidate(c).catch(() => {});
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          if (this._link !== link) return;
          // from: what the new parent may skip (docs/relay.md §2).
          this.host.send('relaySignal', { link: link.id, description: { type: 'answer', sdp: pc.localDescription.sdp }, from: this.verifier.appended });
        } else if (child && d.type === 'answer') {
          if (!fingerprintsAre(d.sdp, child.fingerprint)) {
            this.host.log(`relay: child ${child.id} answered with another DTLS certificate than the device named; dropping it`);
            this._dropChild(child.id, 'fingerprint');
            return;
          }
          if (Number.isSafeInteger(s.from) && s.from > 0) child.from = s.from;
          await pc.setRemoteDescription({ type: 'answer', sdp: d.sdp });
          end.remoteSet = true;
          for (const c of end.pending.splice(0)) pc.addIceCandidate(c).catch(() => {});
        }
        return;
      }
      const c = s.candidate;
      if (!c || typeof c.candidate !== 'string' || c.candidate.length > 1024) return;
      const init = c.candidate === '' ? { candidate: '' } : { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
      if (c.candidate === '' && !end.remoteSet) return;
      if (end.remoteSet) pc.addIceCandidate(init).catch((err) => this.host.log('relay: candidate:', err.message));
      else end.pending.push(init);
    } catch (err) {
      this.host.log(`relay: signalling on link ${s.link}:`, err.message);
      if (link && this._link === link) this._parentFailed(link, problem('failed', `cannot answer the parent's offer: ${err.message}`));
      if (child) this._dropChild(child.id, 'failed');
    }
  }

  _onEnd(e) {
    if (!validLink(e.link)) return;
    if (this._link?.id === e.link) {
      const why = typeof e.reason === 'string' ? e.reason.slice(0, 200) : '';
      this.host.log(`relay: the device ended the parent link ${e.link}${why ? ` (${why})` : ''}`);
      this._dropParent();
      this.host.onParent('lost', `The relay ${this.parent} is gone${why ? ` (${why})` : ''} — re-attaching…`, null);
      this.host.onChange();
    } else if (this._children.has(e.link)) {
      this._dropChild(e.link, 'ended by the device');
    }
  }

  // _parentFailed closes a bad or broken parent link and reports it; the
  // device answers with a new assignment, its own offer or "full".
  // A stall is the exception: the link stays (the camera may have paused,
  // and then the device keeps it), reported once per silence; a unit
  // ends the silence, a new assignment the link.
  _parentFailed(link, p) {
    if (this._link !== link || link.done) return;
    this.host.log(`relay: parent ${this.parent} (link ${link.id}): ${p.message}`);
    if (p.code === 'stall') {
      link.stalled = true;
    } else {
      link.done = true;
      this._dropParent();
    }
    const now = performance.now();
    this._reportTimes = this._reportTimes.filter((t) => now - t < 60000);
    if (this._reportTimes.length >= maxReports) {
      // The device ends a session that reports more (docs/relay.md §3):
      // the player starts a fresh one instead.
      this._dropParent();
      this.host.onParent('exhausted', `${maxReports} relays failed within a minute`, null);
      return;
    }
    this._reportTimes.push(now);
    this.reports++;
    this.lastReport = p.code;
    let detail = p.detail;
    while (new TextEncoder().encode(detail).length > 256) detail = detail.slice(0, -16);
    this.host.send('relayReport', { link: link.id, problem: p.code, detail });
    const words = INTEGRITY.includes(p.code)
      ? `The relay ${this.parent} sent a bad unit (${p.code}); it was not played`
      : `The relay ${this.parent} ${p.code === 'stall' ? 'stalled' : p.code === 'failed' ? 'could not be reached' : 'closed the stream'}`;
    this.host.onParent('lost', `${words} — re-attaching…`, null);
    this.host.onChange();
  }

  _dropParent() {
    const link = this._link;
    if (!link) return;
    this._link = null;
    link.done = true;
    link.signed?.close();
    link.pc.onicecandidate = link.pc.ondatachannel = link.pc.onconnectionstatechange = null;
    if (link.ch) link.ch.onmessage = link.ch.onclose = null;
    link.pc.close();
  }

  // parentPc is the parent link's PeerConnection, while there is one.
  get parentPc() {
    return this._link?.pc ?? null;
  }

  async _onChild(c) {
    const h = this.host;
    if (!validLink(c.link) || !validInt(c.depth, 2, 64) || typeof c.fingerprint !== 'string' || typeof c.signature !== 'string') {
      h.log('relay: ignoring a malformed relayChild');
      return;
    }
    let ok = false;
    try {
      ok = await deviceSigned(this.verifier, childMessage(h.room, h.stream, h.nonce, c), c.signature);
    } catch (err) {
      h.log('relay: cannot check a relayChild:', err.message);
    }
    if (this._closed) return;
    if (!ok) {
      h.log('relay: ignoring a relayChild the device did not sign for this join (a bridge tampering?)');
      return;
    }
    if (this._children.has(c.link) || this._children.size >= MAX_CHILDREN || this.maxChildren === 0) {
      h.log(`relay: ignoring relayChild ${c.link}: ${this._children.size} children already`);
      return;
    }
    const pc = new RTCPeerConnection({ iceServers: h.iceServers(), certificates: [h.certificate] });
    const ch = pc.createDataChannel('emsStreamChannel', { ordered: true });
    ch.binaryType = 'arraybuffer';
    const child = {
      id: c.link, depth: c.depth, fingerprint: normalizeFingerprint(c.fingerprint), pc, ch,
      open: false, moov: 0, last: 0, skipping: false, units: 0, remoteSet: false, pending: [],
      from: 0, // the highest seq the child has appended (its answer's from)
      timer: setTimeout(() => {
        if (!child.open) this._dropChild(child.id, 'did not connect');
      }, CONNECT),
    };
    this._children.set(c.link, child);
    h.log(`relay: serving child ${c.link} (depth ${c.depth})`);
    h.onChange();
    pc.onicecandidate = (e) => {
      if (this._children.get(child.id) !== child) return;
      const x = e.candidate;
      h.send('relaySignal', { link: child.id, candidate: x ? { candidate: x.candidate, sdpMid: x.sdpMid, sdpMLineIndex: x.sdpMLineIndex } : { candidate: '' } });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this._dropChild(child.id, pc.connectionState);
    };
    ch.onopen = () => {
      if (this._children.get(child.id) !== child) return;
      child.open = true;
      clearTimeout(child.timer);
      // The GOP first, so the child starts at a keyframe, then live.
      // The MOOV, then the kept units from the newest keyframe at most
      // one past what the child has (its answer's from), or the newest
      // keyframe for a new viewer, then live.
      const g = this._gop;
      if (!g.moov) return;
      this._forward(child, g.moov);
      const start = burstStart(g.units, child.from);
      if (start >= 0) for (const u of g.units.slice(start)) this._forward(child, u);
    };
    ch.onclose = () => this._dropChild(child.id, 'channel closed');
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this._children.get(child.id) !== child) return;
      h.send('relaySignal', { link: child.id, description: { type: 'offer', sdp: pc.localDescription.sdp } });
    } catch (err) {
      h.log(`relay: cannot offer to child ${child.id}:`, err.message);
      this._dropChild(child.id, 'offer failed');
    }
  }

  _dropChild(id, why) {
    const c = this._children.get(id);
    if (!c) return;
    this._children.delete(id);
    clearTimeout(c.timer);
    c.pc.onicecandidate = c.pc.onconnectionstatechange = null;
    c.ch.onopen = c.ch.onclose = null;
    c.pc.close();
    this.host.log(`relay: child ${id} gone (${why})`);
    this.host.onChange();
  }

  // _tick watches the parent link (connect, stall, stale) and says to the
  // device how many children this player takes.
  _tick() {
    if (this._closed) return;
    const link = this._link;
    const now = performance.now();
    if (link && !link.done) {
      const s = link.signed;
      if (!s || s.units === 0) {
        if (now - link.since > CONNECT) this._parentFailed(link, problem('failed', `no unit within ${CONNECT / 1000} s of the assignment`));
      } else if (!link.fresh && now - s.firstAt > STALE) {
        this._parentFailed(link, problem('stale', `no unit reached the assignment's seq ${link.assign.seq} within ${STALE / 1000} s (the newest: ${s.lastSeq})`));
      } else if (now - Math.max(s.lastAt, link.stallAt) > STALL) {
        // Again after each further silence of as long.
        link.stallAt = now;
        this._parentFailed(link, problem('stall', `no unit for ${Math.round(now - s.lastAt)} ms`));
      }
    }
    const want = this.maxChildren > 0 && this.depth > 0 && this.host.healthy() && (this.depth === 1 || (this._link && this._link.signed?.units > 0)) ? this.maxChildren : 0;
    if (want !== this._ready && (want > 0 || this._ready > 0)) {
      this._ready = want;
      this.host.send('relayReady', { maxChildren: want });
    }
  }
}
