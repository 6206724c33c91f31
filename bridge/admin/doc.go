// Package admin is a bridge's administration endpoint in the shape ERS
// administrators know: HTTP on its own port (3030), `GET /?c=<command>&i=<id>`,
// answered only to allowed addresses (default 127.0.0.1 and ::1), with JSON
// results {"status":"SUCCESS"|"FAIL","description":...,"data":...}.
//
// Commands: version; addToken, delToken, listTokens (viewer tokens);
// addRoom, delRoom, listRooms (allowed rooms: empty means any). ERS's EMS
// tokens (addEMSToken, listEMSToken, delEMSToken) have no meaning here,
// since devices reach bridges through the mesh, and are answered FAIL with
// that reason. It edits an access.Store and nothing else.
package admin
