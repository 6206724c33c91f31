// Package web holds the browser side of ersmesh: the player page and its
// JavaScript (a small Socket.IO 0.9 client, the ERS player, and a WHEP
// player for ?protocol=whep), embedded in the binary and served as static
// files.
//
// The files are plain ES modules with no build step: what is in static/ is
// exactly what a browser runs. The page speaks the ERS protocol or WHEP (see
// docs/protocol.md) to the bridge that served it, or to the bridge named by
// its options; it owns no server state and knows nothing of the mesh.
//
// The tests next to the files (web/*_test.go) play the page in headless
// Chromium (package internal/browsertest): against fake bridges and devices
// that check every message, against the demo's real mesh, and against
// hostile bridges.
package web
