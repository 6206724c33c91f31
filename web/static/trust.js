// trust.js: the player's half of package trust (Go). It checks that an
// offer was signed by the device a room names, and proves knowledge of a
// room secret bound to this browser's DTLS fingerprint, so that no bridge
// in between can swap the device or replay the proof. The byte formats
// must match trust/offer.go and trust/proof.go exactly.
//
// WebCrypto (crypto.subtle) exists only in secure contexts: pages served
// over HTTPS, or from localhost. Elsewhere the functions here throw
// TrustUnavailable and the player reports the session as unverified.

const OFFER_DOMAIN = 'ersmesh/offer/v2';
const ANSWER_DOMAIN = 'ersmesh/answer/v1';
const PROOF_DOMAIN = 'ersmesh/room-secret/v1';
const WHEP_PROOF_DOMAIN = 'ersmesh/whep-secret/v1';
const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export class TrustUnavailable extends Error {
  constructor(message = 'this page is not a secure context (HTTPS or localhost), so the browser cannot check signatures') {
    super(message);
    this.name = 'TrustUnavailable';
  }
}

// noEd25519 is why a browser whose WebCrypto lacks Ed25519 cannot check:
// it came in Safari 17, Firefox 129 and Chrome 137.
export const noEd25519 = 'this browser has no Ed25519 in WebCrypto (Safari 17, Firefox 129, Chrome 137 and later have it), so it cannot check signatures';

function subtle() {
  if (!globalThis.crypto?.subtle) throw new TrustUnavailable();
  return globalThis.crypto.subtle;
}

// base58btc decoding, as peer IDs are written.
export function base58Decode(s) {
  if (typeof s !== 'string' || s.length === 0 || s.length > 128) throw new Error('bad base58 string');
  let n = 0n;
  for (const ch of s) {
    const v = B58.indexOf(ch);
    if (v < 0) throw new Error(`bad base58 character ${JSON.stringify(ch)}`);
    n = n * 58n + BigInt(v);
  }
  const bytes = [];
  while (n > 0n) {
    bytes.push(Number(n & 0xffn));
    n >>= 8n;
  }
  for (const ch of s) {
    if (ch !== '1') break;
    bytes.push(0);
  }
  return Uint8Array.from(bytes.reverse());
}

// ed25519KeyOf returns the 32-byte public key inside an Ed25519 peer ID
// ("12D3KooW..."): an identity multihash (0x00, length 36) of the protobuf
// PublicKey {Type: Ed25519 (1), Data: 32 bytes}.
export function ed25519KeyOf(peerId) {
  const b = base58Decode(peerId);
  const prefix = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
  if (b.length !== 38 || prefix.some((v, i) => b[i] !== v)) {
    throw new Error(`${String(peerId).slice(0, 60)} is not an Ed25519 peer ID`);
  }
  return b.slice(6);
}

const enc = new TextEncoder();

// framed builds domain || for each field: uint32 big-endian length ||
// bytes; a field is a string (UTF-8) or bytes.
export function framed(domain, fields) {
  const parts = fields.map((f) => (f instanceof Uint8Array ? f : enc.encode(f)));
  const d = enc.encode(domain);
  const out = new Uint8Array(d.length + parts.reduce((n, p) => n + 4 + p.length, 0));
  out.set(d, 0);
  let o = d.length;
  const view = new DataView(out.buffer);
  for (const p of parts) {
    view.setUint32(o, p.length);
    out.set(p, o + 4);
    o += 4 + p.length;
  }
  return out;
}

export function fromBase64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function toBase64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

// verifyOffer resolves true when sig (base64) is peerId's signature of the
// offer SDP for room, stream and nonce, false when it is not; it throws
// TrustUnavailable where the browser cannot check.
export async function verifyOffer(peerId, room, stream, nonce, sdp, sig) {
  return verify(peerId, framed(OFFER_DOMAIN, [room, stream, nonce, sdp]), sig);
}

// verifyAnswer resolves true when sig is peerId's signature of its answer
// SDP to our offer (offerSdp, exactly as sent) for room and stream.
export async function verifyAnswer(peerId, room, stream, offerSdp, sdp, sig) {
  const hash = new Uint8Array(await subtle().digest('SHA-256', enc.encode(offerSdp)));
  return verify(peerId, framed(ANSWER_DOMAIN, [room, stream, hash, sdp]), sig);
}

async function verify(peerId, msg, sig) {
  const s = subtle();
  let key, raw;
  try {
    key = ed25519KeyOf(peerId);
    raw = fromBase64(sig || '');
  } catch {
    return false;
  }
  if (raw.length !== 64) return false;
  let k;
  try {
    k = await s.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
  } catch (err) {
    // An older browser, not a bad signature: it must not read as tampering.
    if (err?.name === 'NotSupportedError') throw new TrustUnavailable(noEd25519);
    throw err;
  }
  return s.verify({ name: 'Ed25519' }, k, raw, msg);
}

// normalizeFingerprint writes "sha-256 ab:cd" as "sha-256 AB:CD".
export function normalizeFingerprint(fp) {
  fp = String(fp).trim().replace(/^a=fingerprint:/, '').trim();
  const i = fp.indexOf(' ');
  if (i < 0) return fp.toUpperCase();
  return fp.slice(0, i).toLowerCase() + ' ' + fp.slice(i + 1).trim().toUpperCase();
}

// sdpFingerprint returns the first a=fingerprint of an SDP, normalized.
export function sdpFingerprint(sdp) {
  const line = String(sdp).split(/\r?\n/).find((l) => l.startsWith('a=fingerprint:'));
  return line ? normalizeFingerprint(line) : '';
}

// roomProof is HMAC-SHA256(secret, domain || room || challenge ||
// fingerprint), base64: what the device checks before it opens a session.
export async function roomProof(secret, room, challenge, fingerprint) {
  return hmac(secret, framed(PROOF_DOMAIN, [room, challenge, normalizeFingerprint(fingerprint)]));
}

async function hmac(secret, message) {
  const s = subtle();
  const k = await s.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return toBase64(await s.sign('HMAC', k, message));
}

// whepProof is the Ersmesh-Secret-Proof header of a WHEP POST (trust/whep.go):
// "t=<ms>; room=<mac>; talk=<mac>", each MAC HMAC-SHA256(secret, domain ||
// room || stream || the offer's DTLS fingerprint || ms), keyed with the room
// secret and the talk secret (either may be ""); "" when both are.
export async function whepProof(roomSecret, talkSecret, room, stream, fingerprint, ms = Date.now()) {
  if (!roomSecret && !talkSecret) return '';
  const msg = framed(WHEP_PROOF_DOMAIN, [room, stream, normalizeFingerprint(fingerprint), String(ms)]);
  let v = `t=${ms}`;
  if (roomSecret) v += `; room=${await hmac(roomSecret, msg)}`;
  if (talkSecret) v += `; talk=${await hmac(talkSecret, msg)}`;
  return v;
}

// sdpFingerprints returns every a=fingerprint of an SDP, normalized.
export function sdpFingerprints(sdp) {
  return String(sdp).split(/\r?\n/).filter((l) => /^a=fingerprint:/i.test(l)).map((l) => normalizeFingerprint(l.replace(/^a=fingerprint:/i, '')));
}

// newSecret returns a room secret: 128 random bits, base64url.
export function newSecret() {
  return newNonce();
}

// ownerOf returns the peer ID an owned room ("name@<peerID>") names, or "".
export function ownerOf(room) {
  const i = room.lastIndexOf('@');
  return i > 0 ? room.slice(i + 1) : '';
}

// newNonce returns 128 random bits, base64url without padding.
export function newNonce() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
