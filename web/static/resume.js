// resume.js: the player's half of trust/resume.go. A viewer's session
// belongs to the viewer and the device, not to the bridge that introduced
// them: when that bridge goes away the player re-attaches the session
// through another one. To prove that the session is its own, the player
// makes a key pair for every join (WebCrypto ECDSA P-256, the private key
// not extractable), sends the public key with the join and makes the join's
// nonce the key's hash, so the device's signed offer binds the key and no
// bridge can swap in its own. A resume answers the device's fresh
// challenge with a signature over ResumeMessage: a bridge that relays it
// can never use it again. The byte formats must match trust/resume.go.

const RESUME_DOMAIN = 'ersmesh/resume/v1';

function b64(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

function b64url(bytes) {
  return b64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// resumeAvailable reports whether this page can make resume keys (a
// secure context: HTTPS, or localhost).
export function resumeAvailable() {
  return !!globalThis.crypto?.subtle;
}

// newResumeKey makes a session's key: {privateKey, publicKey (base64 of the
// uncompressed point), nonce (base64url of its SHA-256: the join's nonce)}.
export async function newResumeKey() {
  const subtle = globalThis.crypto.subtle;
  const pair = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const raw = await subtle.exportKey('raw', pair.publicKey);
  const hash = await subtle.digest('SHA-256', raw);
  return { privateKey: pair.privateKey, publicKey: b64(raw), nonce: b64url(hash) };
}

// resumeMessage is what is signed: the domain, then room, sid and
// challenge, each after its length as a 4-byte big-endian number.
export function resumeMessage(room, sid, challenge) {
  const enc = new TextEncoder();
  const parts = [enc.encode(RESUME_DOMAIN)];
  for (const f of [room, sid, challenge]) {
    const b = enc.encode(f);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length);
    parts.push(len, b);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// resumeSignature signs a resume challenge; WebCrypto's ECDSA signature
// is r‖s (64 bytes), base64.
export async function resumeSignature(privateKey, room, sid, challenge) {
  const sig = await globalThis.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, resumeMessage(room, sid, challenge));
  return b64(sig);
}
