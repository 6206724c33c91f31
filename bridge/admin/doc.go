// Package admin is a bridge's administration endpoint in the shape ERS
// administrators know: HTTP on its own port (3030), `/?c=<command>&i=<id>`,
// answered only to allowed addresses (default 127.0.0.1 and ::1), with JSON
// results {"status":"SUCCESS"|"FAIL","description":...,"data":...}.
//
// Unlike ERS, commands that change anything need POST (a GET can be made
// by any <img> on any page); the read commands (version, listTokens,
// listRooms) still take GET, as ERS scripts send it. Requests a web page
// made (an Origin header, a cross-site Sec-Fetch-Site) and requests whose
// Host is a name other than localhost (DNS rebinding) are refused
// (package internal/localapi, shared with the device's control API).
//
// Commands: version; addToken, delToken, listTokens (viewer tokens);
// addRoom, delRoom, listRooms (allowed rooms: empty means any). ERS's EMS
// tokens (addEMSToken, listEMSToken, delEMSToken) have no meaning here,
// since devices reach bridges through the mesh, and are answered FAIL with
// that reason. It edits an access.Store and nothing else.
package admin
