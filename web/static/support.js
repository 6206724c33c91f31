// support.js: whether this browser can play a transport at all, asked
// before anything is tried (the players call it in start()).

// checkSupport returns why this browser cannot play a transport, or "" when
// it can. It asks the browser before anything is tried, so that a viewer
// learns at once that another browser is needed rather than after a
// connection that can never show a picture.
export function checkSupport(transport) {
  if (typeof RTCPeerConnection !== 'function') {
    return 'This browser has no WebRTC (RTCPeerConnection), which the player needs. Use a current Chrome, Edge, Firefox or Safari.';
  }
  if (transport === 'fmp4') {
    const ms = globalThis.MediaSource;
    if (typeof ms !== 'function' || typeof ms.isTypeSupported !== 'function') {
      return 'This browser has no Media Source Extensions (MediaSource), which the fmp4 transport needs to play H.264. Try ?transport=srtp (video only) or another browser.';
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
