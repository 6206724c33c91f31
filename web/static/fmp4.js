// The fmp4 transport of EMS (ERS-PROTOCOL.md §5): the device sends
// fragmented MP4 over the emsStreamChannel data channel in records of one
// type byte, a 24-bit big-endian length and the payload. Records may span
// messages and a message may hold several. This module turns them into an
// init segment and media segments, and plays those with Media Source
// Extensions, which is how H.264 and AAC reach the <video> untranscoded.

import { hevcCodecString, mediaSource } from './support.js';

export const BEGIN = 249, MOOV = 250, MOOF = 251, VIDEO = 252, AUDIO = 253, MDAT = 254, END = 255;

// A record larger than this is a broken stream, not a frame.
const maxRecord = 8 << 20;

// Demuxer reassembles records from data channel messages. onInit gets
// {mask, codecs, init} for a MOOV; onSegment gets the bytes to append
// (moof ‖ mdat header ‖ video ‖ audio) for each BEGIN..END.
export class Demuxer {
  constructor({ onInit, onSegment }) {
    this.onInit = onInit;
    this.onSegment = onSegment;
    this._buf = new Uint8Array(0);
    this._parts = null; // the current segment's payloads, between BEGIN and END
  }

  // feed takes one message (ArrayBuffer or view); it throws on a broken stream.
  feed(data) {
    const msg = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let buf = msg;
    if (this._buf.length > 0) {
      buf = new Uint8Array(this._buf.length + msg.length);
      buf.set(this._buf);
      buf.set(msg, this._buf.length);
    }
    let off = 0;
    while (buf.length - off >= 4) {
      const type = buf[off];
      const len = (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
      if (type < BEGIN) throw new Error(`unknown record type ${type}`);
      if (len > maxRecord) throw new Error(`record of ${len} bytes`);
      if (buf.length - off - 4 < len) break;
      this._record(type, buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    this._buf = buf.slice(off);
  }

  _record(type, payload) {
    switch (type) {
      case MOOV: {
        let mask = 1, profile = [0x42, 0xe0, 0x1f], init = payload;
        if (payload.length >= 4 && (payload[0] & 0xf0) === 0xf0) {
          mask = payload[0] & 0x0f;
          profile = [payload[1], payload[2], payload[3]];
          init = payload.subarray(4);
        }
        const hex = profile.map((b) => b.toString(16).padStart(2, '0')).join('');
        const codecs = [];
        if (mask & 4) codecs.push(hevcCodecString(init)); // H.265 (ersmesh's extension)
        else if (mask & 1) codecs.push(`avc1.${hex}`);
        // Mask bit 8 (ersmesh's extension): the audio is Opus, not AAC.
        if (mask & 2) codecs.push(mask & 8 ? 'opus' : 'mp4a.40.2');
        this.onInit({ mask, codecs: codecs.join(','), init: init.slice() });
        break;
      }
      case BEGIN:
        this._parts = [];
        break;
      case MOOF: case MDAT: case VIDEO: case AUDIO:
        if (!this._parts) throw new Error(`record ${type} outside a segment`);
        this._parts.push(payload.slice());
        break;
      case END: {
        const parts = this._parts;
        this._parts = null;
        if (!parts) throw new Error('END outside a segment');
        const n = parts.reduce((s, p) => s + p.length, 0);
        const seg = new Uint8Array(n);
        let at = 0;
        for (const p of parts) { seg.set(p, at); at += p.length; }
        this.onSegment(seg);
        break;
      }
    }
  }
}

// How far behind the newest buffered frame playback may fall before the
// player jumps forward (s), and how much played media it keeps (s).
const maxLag = 1.0;
const keepBehind = 10;
const maxQueue = 300; // segments waiting for the SourceBuffer
const maxAppend = 4 << 20; // bytes of waiting segments appended at once

// MsePlayer plays an init segment and media segments in a <video>.
export class MsePlayer {
  // mark(name), if given, is told of the steps a first frame waits for
  // ("sourceopen", "append").
  constructor(video, log, mark = () => {}) {
    this.video = video;
    this.log = log;
    this.mark = mark;
    this._ms = null;
    this._sb = null;
    this._queue = [];
    this._url = '';
    this._closed = false;
    this._opened = false; // the MediaSource's sourceopen came
    this._type = '';      // the SourceBuffer's type, from the MOOV
    this.managed = false; // playing through Safari's ManagedMediaSource
    this.evictions = 0;   // bufferedchange events that removed media (ManagedMediaSource)
  }

  // open starts the MediaSource before the codecs are known, so that the
  // browser opens it (sourceopen, tens of milliseconds) while the
  // connection is still being set up; init then finds it open. Without
  // MSE it does nothing: init says why.
  open() {
    if (this._ms || this._closed) return;
    const found = mediaSource();
    if (!found) return;
    const ms = new found.MS();
    this._ms = ms;
    this.managed = found.managed;
    if (found.managed) {
      // A ManagedMediaSource opens only on a video that cannot be sent
      // to AirPlay (or that offers an AirPlay source as well): a data
      // channel stream has no URL another device could fetch.
      this.video.disableRemotePlayback = true;
      // It says when it wants data (startstreaming) and when it has
      // enough (endstreaming). A live stream cannot wait: segments keep
      // being appended, and the browser evicts what it must (below).
      ms.addEventListener('startstreaming', () => this.log('fmp4: ManagedMediaSource startstreaming'));
      ms.addEventListener('endstreaming', () => this.log('fmp4: ManagedMediaSource endstreaming'));
    }
    ms.addEventListener('sourceopen', () => {
      if (this._closed) return;
      this.mark('sourceopen');
      this._opened = true;
      this._start();
    }, { once: true });
    this._url = URL.createObjectURL(ms);
    this.video.src = this._url;
    this.video.play().catch((err) => this.log('video.play:', err.message));
  }

  get hasInit() { return this._type !== ''; }

  // init gives the MediaSource its codecs and init segment.
  init(codecs, initSegment) {
    if (this._type) {
      this.log('fmp4: a second MOOV; ignoring it');
      return;
    }
    const type = `video/mp4; codecs="${codecs}"`;
    const found = mediaSource();
    if (!found || !found.MS.isTypeSupported(type)) {
      throw new Error(`this browser cannot play ${type}`);
    }
    this._type = type;
    this._queue.unshift(initSegment);
    this.open();
    this._start();
    this.log('fmp4: playing', type);
  }

  // _start adds the SourceBuffer once the MediaSource is open and the
  // codecs are known, whichever comes last.
  _start() {
    if (!this._opened || !this._type || this._sb || this._closed) return;
    const sb = this._ms.addSourceBuffer(this._type);
    if (this.managed) {
      // A ManagedSourceBuffer may drop buffered media by itself (memory
      // pressure); it says so with bufferedchange. Counted, and the
      // pump moves playback back into what is left.
      sb.addEventListener('bufferedchange', (e) => {
        if (e.removedRanges?.length) {
          this.evictions++;
          this.log('fmp4: the browser evicted', e.removedRanges.length, 'buffered range(s)');
        }
        this._pump();
      });
    }
    // "sequence", as EMS's player: segments play back to back, so a
    // viewer who skipped frames (slow link) continues without a gap.
    sb.mode = 'sequence';
    sb.addEventListener('updateend', () => this._pump());
    sb.addEventListener('error', () => this.log('fmp4: SourceBuffer error'));
    this._sb = sb;
    this._pump();
  }

  append(segment) {
    if (this._closed) return;
    if (this._queue.length >= maxQueue) {
      // The page cannot keep up: start over from what arrives next.
      this.log('fmp4: too many segments waiting; dropping', this._queue.length);
      this._queue.length = 0;
    }
    this._queue.push(segment);
    this._pump();
  }

  _pump() {
    const sb = this._sb;
    if (!sb || sb.updating || this._closed || this._ms.readyState !== 'open') return;
    const v = this.video;
    const b = sb.buffered;
    if (b.length > 0) {
      const end = b.end(b.length - 1);
      // Media under the playhead evicted (ManagedMediaSource): resume at
      // the newest range.
      if (v.currentTime < b.start(0)) v.currentTime = b.start(b.length - 1);
      // Stay at the live edge: the cached GOP arrives at once, and a
      // stalled tab wakes up behind.
      if (end - v.currentTime > maxLag) v.currentTime = Math.max(b.start(b.length - 1), end - 0.1);
      if (v.currentTime - b.start(0) > keepBehind + 5) {
        sb.remove(b.start(0), v.currentTime - keepBehind);
        return;
      }
    }
    let next = this._queue.shift();
    if (!next) return;
    // Segments that waited (the MOOV and the cached GOP at the start, a
    // tab that slept) go in one append: each append is a round trip
    // through the browser's media pipeline before the next may start.
    let n = next.length, k = 0;
    while (k < this._queue.length && n + this._queue[k].length <= maxAppend) n += this._queue[k++].length;
    if (k > 0) {
      const parts = [next, ...this._queue.splice(0, k)];
      next = new Uint8Array(n);
      let at = 0;
      for (const p of parts) { next.set(p, at); at += p.length; }
    }
    this.mark('append');
    try {
      sb.appendBuffer(next);
    } catch (err) {
      this.log('fmp4: appendBuffer:', err.message);
    }
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    this._queue = [];
    if (this._url) {
      this.video.removeAttribute('src');
      this.video.load();
      URL.revokeObjectURL(this._url);
    }
  }
}
