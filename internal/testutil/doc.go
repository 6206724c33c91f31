// Package testutil holds what the packages' tests need again and again: a
// logger that is quiet unless a test fails or runs with -v, a buffer that
// goroutines may log into while a test reads it, fresh libp2p keys and DTLS
// certificates, and the audio-only offer that devices and bridges must
// refuse.
//
// It imports no ersmesh package, so that every package's own tests may use
// it without an import cycle; set-ups that need the mesh are in
// testutil/testmesh. Only tests import it.
package testutil
