package mesh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// LoadOrCreateIdentity returns the Ed25519 private key stored at path,
// creating it (mode 0600, parent directories 0700) on first run. A stable key
// is what keeps a device's peer ID, and so its owned rooms, the same across
// restarts.
//
// The file holds the key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey), the same bytes other libp2p tools use. A file
// that others can read is refused: whoever reads it can impersonate the
// device.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	if path == "" {
		return nil, errors.New("identity file: no path given")
	}
	priv, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, err
	}
	return createIdentity(path)
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity file %s is readable by other users (mode %v): run chmod 600 on it", path, st.Mode().Perm())
	}
	// A marshalled Ed25519 key is 68 bytes; anything much larger is not a key.
	const maxKeyFile = 4 << 10
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	if len(buf) > maxKeyFile {
		return nil, fmt.Errorf("identity file %s is too large to be a key", path)
	}
	priv, err := crypto.UnmarshalPrivateKey(buf)
	if err != nil {
		return nil, fmt.Errorf("identity file %s does not hold a libp2p private key: %w", path, err)
	}
	if priv.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity file %s holds a %s key; ersmesh needs Ed25519, whose peer ID embeds the public key", path, priv.Type())
	}
	return priv, nil
}

// createIdentity writes a new key to a temporary file and links it into
// place, so that a crash never leaves a half-written key and two processes
// starting at once end up with the same one.
func createIdentity(path string) (crypto.PrivKey, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode identity key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return nil, fmt.Errorf("create identity file: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; say so for umask-independent clarity.
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return nil, fmt.Errorf("create identity file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write identity file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write identity file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return loadIdentity(path)
		}
		return nil, fmt.Errorf("create identity file %s: %w", path, err)
	}
	return priv, nil
}
