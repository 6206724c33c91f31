// Package control is the device's EMS-style control API: the HTTP
// commands startWebRTC, stopWebRTC and listConfig with EMS-shaped JSON
// replies, the state file that keeps keepAlive commands across restarts,
// and the client that `ersmesh ctl` uses.
//
// The wire shape (docs/protocol.md, "Device control") follows EMS's HTTP
// API on port 7777: GET /<command>?params=<base64 of "k=v k=v">, plus the
// plainer GET /<command>?k=v and the ERS admin style GET /?c=<command>&k=v.
//
// It owns the command configurations (by room) and the state file. It
// starts and stops rooms only through node.Device's StartRoom and
// StopRoom; it never touches sessions or the mesh.
package control
