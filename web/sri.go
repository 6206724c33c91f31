package web

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
)

// Integrity returns the Subresource Integrity value ("sha384-...") of each
// of the player's modules, by file name. index.html lists them in its
// import map's "integrity" section, so a page that is pinned (an owner's
// copy, a known release) loads no module that differs from the ones it was
// released with, wherever the modules come from. TestImportMapIntegrity
// keeps the two in step: `go test ./web -run TestImportMapIntegrity
// -update` rewrites the list.
func Integrity() map[string]string {
	out := map[string]string{}
	entries, _ := fs.ReadDir(FS(), ".")
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".js" {
			continue
		}
		b, err := fs.ReadFile(FS(), e.Name())
		if err != nil {
			continue
		}
		sum := sha512.Sum384(b)
		out[e.Name()] = "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
	}
	return out
}

// Fingerprints returns the SHA-256 of every file of the player, in hex, by
// name, sorted: what `ersmesh player` prints so that whoever hosts a copy
// can compare it with a release's.
func Fingerprints() [][2]string {
	var out [][2]string
	fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out = append(out, [2]string{p, hex.EncodeToString(sum[:])})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
