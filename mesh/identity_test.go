package mesh

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "identity.key")
	priv, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equals(again) {
		t.Fatal("reloading the identity file gave another key")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".identity-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}

	// A node started twice from the same file has the same peer ID.
	want, _ := peer.IDFromPrivateKey(priv)
	for range 2 {
		n := newTestHost(t, Config{IdentityFile: path, Server: true})
		if n.ID() != want {
			t.Fatalf("node ID %s, want %s", n.ID(), want)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIdentityRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(garbage); err == nil {
		t.Error("a file of garbage was taken as a key")
	}
	if _, err := New(context.Background(), Config{IdentityFile: garbage}); err == nil {
		t.Error("New started with a garbage identity file")
	}

	if runtime.GOOS != "windows" {
		open := filepath.Join(dir, "open.key")
		if _, err := LoadOrCreateIdentity(open); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateIdentity(open); err == nil {
			t.Error("a world-readable identity file was accepted")
		}
	}
	if _, err := LoadOrCreateIdentity(""); err == nil {
		t.Error("an empty path was accepted")
	}
}
