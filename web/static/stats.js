// stats.js: what the player's stats overlay shows, read from the
// connection's getStats() (https://www.w3.org/TR/webrtc-stats/) and, for
// the fmp4 transport, from the <video> element that Media Source
// Extensions feed. Rates (bitrate, frame rate, loss) are differences
// between two samples at least minInterval apart; a sampler called more
// often (two overlays, a test) returns the last rates in between.

const minInterval = 500; // ms

// candidateKind names how a candidate reaches the other side: host,
// srflx, prflx, or "relay udp|tcp|tls" after the protocol spoken to the
// TURN server (only known for our own relay candidates).
export function candidateKind(c) {
  if (!c) return '';
  const type = c.candidateType ?? '';
  if (type !== 'relay') return type;
  return c.relayProtocol ? `relay ${c.relayProtocol}` : 'relay';
}

// selectedPair returns the candidate pair in use: the transport names it;
// older browsers only mark it nominated and succeeded.
function selectedPair(report) {
  let id = '';
  report.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) id = r.selectedCandidatePairId;
  });
  if (id) return report.get(id);
  let found = null;
  report.forEach((r) => {
    if (!found && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') found = r;
  });
  return found;
}

function round(v, digits = 0) {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// StatsSampler turns successive getStats() reports of one connection into
// the overlay's numbers. A new connection starts it over.
export class StatsSampler {
  constructor() {
    this._pc = null;
    this._prev = null;  // {t, bytes, frames, lost, received} of the last rate measurement
    this._rates = null; // {bitrate, fps, packetLoss} measured then
  }

  async sample(pc, video, transport) {
    const report = await pc.getStats();
    const t = performance.now();
    if (pc !== this._pc) {
      this._pc = pc;
      this._prev = null;
      this._rates = null;
    }
    const out = {
      width: 0, height: 0, fps: null, bitrate: null, rtt: null, packetLoss: null,
      candidate: '', remoteCandidate: '', framesDecoded: 0, framesDropped: 0,
      buffered: null, bytesReceived: 0,
    };

    const pair = selectedPair(report);
    if (pair) {
      out.candidate = candidateKind(report.get(pair.localCandidateId));
      out.remoteCandidate = candidateKind(report.get(pair.remoteCandidateId));
      if (Number.isFinite(pair.currentRoundTripTime)) out.rtt = round(pair.currentRoundTripTime * 1000, 1);
    }

    let bytes = 0, frames = 0, lost = 0, received = 0;
    if (transport === 'srtp') {
      report.forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        bytes += r.bytesReceived ?? 0;
        lost += Math.max(0, r.packetsLost ?? 0);
        received += r.packetsReceived ?? 0;
        if (r.kind === 'video') {
          out.width = r.frameWidth ?? 0;
          out.height = r.frameHeight ?? 0;
          frames = r.framesDecoded ?? 0;
          out.framesDropped = r.framesDropped ?? 0;
        }
      });
    } else {
      // Media arrives on a reliable, ordered data channel: nothing is lost
      // on the way, it arrives late instead, which "buffered" shows.
      report.forEach((r) => {
        if (r.type === 'data-channel' && r.label === 'emsStreamChannel') bytes = r.bytesReceived ?? 0;
      });
      const q = video.getVideoPlaybackQuality?.();
      frames = q?.totalVideoFrames ?? 0;
      out.framesDropped = q?.droppedVideoFrames ?? 0;
      const b = video.buffered;
      if (b.length > 0) out.buffered = round(Math.max(0, b.end(b.length - 1) - video.currentTime), 2);
    }
    if (!out.width) {
      out.width = video.videoWidth;
      out.height = video.videoHeight;
    }
    out.framesDecoded = frames;
    out.bytesReceived = bytes;

    const prev = this._prev;
    if (!prev || t - prev.t >= minInterval) {
      this._prev = { t, bytes, frames, lost, received };
      if (prev) {
        const dt = (t - prev.t) / 1000;
        const rates = {
          bitrate: round(Math.max(0, bytes - prev.bytes) * 8 / dt),
          fps: round(Math.max(0, frames - prev.frames) / dt, 1),
          packetLoss: null,
        };
        if (transport === 'srtp') {
          const l = Math.max(0, lost - prev.lost), n = Math.max(0, received - prev.received);
          rates.packetLoss = l + n > 0 ? round(100 * l / (l + n), 1) : 0;
        }
        this._rates = rates;
      }
    }
    return { ...out, ...(this._rates ?? {}) };
  }
}
