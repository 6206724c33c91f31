package media

import (
	"strconv"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RegisterCodecs registers in m the codecs a device sends and takes back:
// H.264 and H.265 video, Opus, PCMU and PCMA audio (the talkback's too),
// with pion's payload types and RTX for the video. pion's default list adds
// VP8, VP9, AV1 and G.722, which a device never sends: each codec offered
// or answered is fmtp parsing and matching per viewer at every negotiation
// (docs/media-benchmarks.md), and lines in every offer.
//
// The H.264 variants are all of pion's, packetization modes 0 and 1: the
// device's track announces Constrained Baseline mode 1 (H264Codec), and a
// viewer's offer (WHEP) is matched against them as pion would.
func RegisterCodecs(m *webrtc.MediaEngine) error {
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: rtp.PayloadTypePCMU},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: rtp.PayloadTypePCMA},
	} {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	feedback := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	const h264 = "level-asymmetry-allowed=1;packetization-mode="
	for _, v := range []struct {
		pt, rtx webrtc.PayloadType
		mime    string
		fmtp    string
	}{
		{102, 103, webrtc.MimeTypeH264, h264 + "1;profile-level-id=42001f"},
		{104, 105, webrtc.MimeTypeH264, h264 + "0;profile-level-id=42001f"},
		{106, 107, webrtc.MimeTypeH264, h264 + "1;profile-level-id=42e01f"},
		{108, 109, webrtc.MimeTypeH264, h264 + "0;profile-level-id=42e01f"},
		{127, 125, webrtc.MimeTypeH264, h264 + "1;profile-level-id=4d001f"},
		{39, 40, webrtc.MimeTypeH264, h264 + "0;profile-level-id=4d001f"},
		{116, 117, webrtc.MimeTypeH265, ""},
		{112, 113, webrtc.MimeTypeH264, h264 + "1;profile-level-id=64001f"},
	} {
		codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: v.mime, ClockRate: 90000, SDPFmtpLine: v.fmtp, RTCPFeedback: feedback}, PayloadType: v.pt}
		rtx := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=" + strconv.Itoa(int(v.pt))}, PayloadType: v.rtx}
		for _, c := range []webrtc.RTPCodecParameters{codec, rtx} {
			if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
				return err
			}
		}
	}
	return nil
}
