package node

import (
	"strings"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/signalwire"
)

// transportOf is the join's transport: EMS players send "fmp4" or "srtp";
// older ones send none and get srtp, the only transport they know.
func transportOf(join *signalwire.Message) string {
	if join.Transport == "fmp4" {
		return "fmp4"
	}
	return "srtp"
}

// withSessionInfo adds note to an SDP as its session information line
// ("i=", RFC 8866 §5.4), right after the session name: browsers ignore it,
// our player shows it.
func withSessionInfo(sdp, note string) string {
	if note == "" {
		return sdp
	}
	i := strings.Index(sdp, "\r\ns=")
	if i < 0 {
		return sdp
	}
	j := strings.Index(sdp[i+2:], "\r\n")
	if j < 0 {
		return sdp
	}
	at := i + 2 + j + 2
	return sdp[:at] + "i=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(note) + "\r\n" + sdp[at:]
}

// fmp4Note is what an fmp4 viewer of st is told when its audio cannot come
// along: fMP4 here carries AAC and Opus.
func fmp4Note(st *media.Stream) string {
	a := st.Audio()
	if a == nil || a.Codec == media.AudioAAC || a.Codec == media.AudioOpus || a.Codec == media.AudioNone {
		return ""
	}
	return "This stream's audio is " + a.Codec.String() + ", which the fmp4 transport does not carry: video only. Use transport srtp to hear it."
}
