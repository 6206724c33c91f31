// support.js: whether this browser can play a transport at all, asked
// before anything is tried (the players call it in start()).

// mediaSource returns the browser's Media Source Extensions: {MS,
// managed}, MS being MediaSource, or Safari's ManagedMediaSource (iPhone,
// iOS 17.1+, which has no MediaSource; managed true); null without either.
export function mediaSource() {
  if (typeof globalThis.MediaSource === 'function') return { MS: globalThis.MediaSource, managed: false };
  if (typeof globalThis.ManagedMediaSource === 'function') return { MS: globalThis.ManagedMediaSource, managed: true };
  return null;
}

// checkSupport returns why this browser cannot play a transport, or "" when
// it can. It asks the browser before anything is tried, so that a viewer
// learns at once that another browser is needed rather than after a
// connection that can never show a picture.
//
// codecs, when known (the stream's MOOV for fmp4), is the MSE codec list;
// an H.265 stream (hev1/hvc1) is checked for H.265 instead of H.264.
export function checkSupport(transport, codecs = '') {
  if (/\b(hev1|hvc1)\./.test(codecs) || codecs === 'hev1') {
    return checkH265(transport, codecs);
  }
  if (typeof RTCPeerConnection !== 'function') {
    return 'This browser has no WebRTC (RTCPeerConnection), which the player needs. Use a current Chrome, Edge, Firefox or Safari.';
  }
  if (transport === 'fmp4') {
    const ms = mediaSource()?.MS;
    if (typeof ms !== 'function' || typeof ms.isTypeSupported !== 'function') {
      return 'This browser has no Media Source Extensions (MediaSource or ManagedMediaSource), which the fmp4 transport needs to play H.264. Try ?transport=srtp (video only) or another browser.';
    }
    if (!ms.isTypeSupported('video/mp4; codecs="avc1.42e01f"')) {
      return 'This browser cannot play H.264 video (MediaSource.isTypeSupported refuses avc1). Try another browser; some Linux builds of Chromium and Firefox leave H.264 out.';
    }
    return '';
  }
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.('video');
  if (caps && !caps.codecs.some((c) => c.mimeType.toLowerCase() === 'video/h264')) {
    return "This browser's WebRTC cannot decode H.264 video (RTCRtpReceiver.getCapabilities lists no H.264). Try ?transport=fmp4 or another browser.";
  }
  return '';
}

// The words a viewer reads when the camera sends H.265 and this browser
// cannot decode it: the device passes video through, it does not
// transcode.
const NO_H265 = 'This camera sends H.265 (HEVC) video, which this browser cannot play';
const H265_HINT = 'Use Safari, or Chrome or Edge with a hardware H.265 decoder.';

// checkH265 is checkSupport for an H.265 stream: MSE must take the
// stream's hev1 codec string (fmp4), WebRTC must list video/H265 among
// its receiver's codecs (srtp).
export function checkH265(transport, codecs = 'hev1.1.6.L93.B0') {
  if (transport === 'fmp4') {
    const ms = mediaSource()?.MS;
    const video = codecs.split(',').find((c) => /^(hev1|hvc1)/.test(c.trim())) || 'hev1.1.6.L93.B0';
    const hvc1 = video.replace(/^hev1/, 'hvc1');
    if (typeof ms !== 'function' || !(ms.isTypeSupported(`video/mp4; codecs="${video}"`) || ms.isTypeSupported(`video/mp4; codecs="${hvc1}"`))) {
      return `${NO_H265} over fmp4 (MediaSource.isTypeSupported refuses ${video}). ${H265_HINT}`;
    }
    return '';
  }
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.('video');
  if (!caps || !caps.codecs.some((c) => c.mimeType.toLowerCase() === 'video/h265')) {
    return `${NO_H265} over srtp (RTCRtpReceiver.getCapabilities lists no H.265). ${H265_HINT}`;
  }
  return '';
}

// hevcCodecString reads the RFC 6381 codec string (hev1.P.C.TL.CC…, ISO/IEC
// 14496-15 E.3) from an init segment's hvcC box; "hev1" when there is
// none. The device marks H.265 streams with MOOV mask bit 4
// (docs/protocol.md).
export function hevcCodecString(init) {
  let i = -1;
  for (let j = 4; j + 4 + 13 <= init.length; j++) {
    if (init[j] === 0x68 && init[j + 1] === 0x76 && init[j + 2] === 0x63 && init[j + 3] === 0x43) { // "hvcC"
      i = j + 4;
      break;
    }
  }
  if (i < 0) return 'hev1';
  const b = init.subarray(i, i + 13); // version, profile byte, 4 compat, 6 constraint, level
  const space = b[1] >> 6, tier = (b[1] >> 5) & 1, idc = b[1] & 0x1f;
  // The compatibility flags in reverse bit order.
  let compat = (b[2] << 24 | b[3] << 16 | b[4] << 8 | b[5]) >>> 0, rev = 0;
  for (let k = 0; k < 32; k++) {
    rev = (rev * 2) + (compat & 1);
    compat >>>= 1;
  }
  const cons = Array.from(b.subarray(6, 12));
  while (cons.length && cons[cons.length - 1] === 0) cons.pop();
  return ['hev1', `${space ? 'ABC'[space - 1] : ''}${idc}`, rev.toString(16).toUpperCase(),
    `${tier ? 'H' : 'L'}${b[12]}`, ...cons.map((c) => c.toString(16).toUpperCase())].join('.');
}

// chooseTransport picks the transport for a player not told which
// (?transport= unset): fmp4 where Media Source Extensions play H.264 (it
// also carries AAC audio, which WebRTC tracks cannot), else srtp where
// WebRTC decodes H.264. It returns {transport, reason, fallback}: the
// choice, why, and the other transport to try if the first fails to start
// ("" when the browser cannot play it either); or {transport: '', reason}
// when the browser can play neither.
export function chooseTransport() {
  const noFmp4 = checkSupport('fmp4');
  const noSrtp = checkSupport('srtp');
  if (!noFmp4) {
    return {
      transport: 'fmp4',
      reason: `fmp4: ${mediaSource().managed ? 'ManagedMediaSource plays' : 'Media Source Extensions play'} H.264 here` + (noSrtp
        ? '; WebRTC cannot (RTCRtpReceiver.getCapabilities lists no H.264)'
        : ' (and AAC audio); srtp if it fails to start'),
      fallback: noSrtp ? '' : 'srtp',
    };
  }
  if (!noSrtp) {
    return {
      transport: 'srtp',
      reason: `srtp: WebRTC decodes H.264 here; Media Source Extensions cannot (${noFmp4})`,
      fallback: '',
    };
  }
  return { transport: '', reason: noFmp4 === noSrtp ? noFmp4 : `${noFmp4} And: ${noSrtp}`, fallback: '' };
}
