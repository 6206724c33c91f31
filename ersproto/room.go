package ersproto

// Room is the room description of a join ack: ack(null, Room). Clients
// maps the id of each client in the room (the device's peer ID) to what it
// sends; an empty map is an empty room, which ERS players poll.
type Room struct {
	Clients map[string]Media `json:"clients"`
	// Unreachable is ersmesh's addition to an empty room: a device serves
	// the room but could not be reached. ERS players read only Clients.
	Unreachable bool `json:"unreachable,omitempty"`
}

// Media says what a client of a room sends.
type Media struct {
	Video  bool `json:"video"`
	Audio  bool `json:"audio"`
	Screen bool `json:"screen"`
}

// DeviceRoom describes a room with the one device, sending video, or an
// empty room for device "".
func DeviceRoom(device string) Room {
	r := Room{Clients: map[string]Media{}}
	if device != "" {
		r.Clients[device] = Media{Video: true}
	}
	return r
}

// Device returns the device of a room: the one client, or "" for an empty
// room. A room of several clients is not one ersmesh makes; the first in
// map order is as good as any.
func (r Room) Device() string {
	for id := range r.Clients {
		return id
	}
	return ""
}

// Remove is the argument of the remove event: client ID left the room.
// Reason is ersmesh's addition (why the device ended the session); ERS
// players ignore it.
type Remove struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Reason string `json:"reason,omitempty"`
}

// ICEServer is an RTCIceServer in a stunservers or turnservers list.
// Legacy ERS players read "url", current ones "urls": a bridge sends both.
type ICEServer struct {
	URL        string   `json:"url,omitempty"`
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}
