package control

// Reply is an EMS-shaped answer: status SUCCESS or FAIL, a description in
// words, and the command's data.
type Reply struct {
	Status      string `json:"status"`
	Description string `json:"description"`
	Data        any    `json:"data"`
}

// Reply statuses.
const (
	StatusSuccess = "SUCCESS"
	StatusFail    = "FAIL"
)

// Descriptions of successful commands, exactly as EMS words them.
const (
	DescStarted = "Started WebRTC Negotiation Service"
	DescStopped = "Stopped WebRTC Negotiation Service"
	DescListed  = "Run-time configurations"
)

// OK reports whether the command succeeded.
func (r *Reply) OK() bool { return r.Status == StatusSuccess }

func success(desc string, data any) Reply {
	return Reply{Status: StatusSuccess, Description: desc, Data: data}
}

func fail(desc string) Reply { return Reply{Status: StatusFail, Description: desc} }

// WebRTCConfig is one startWebRTC command the device runs: what
// startWebRTC answers and listConfig lists (without the token), and what
// the state file keeps (with it).
type WebRTCConfig struct {
	ConfigID int    `json:"configId"`
	ERSIP    string `json:"ersip"`
	ERSPort  int    `json:"ersport"`
	RoomID   string `json:"roomid"`
	// KeepAlive commands are saved in the state file and run again when
	// the device starts.
	KeepAlive bool   `json:"keepAlive"`
	Token     string `json:"token,omitempty"`
}
