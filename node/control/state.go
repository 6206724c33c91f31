package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxStateFile bounds what loadState reads: the file is ours, but a wrong
// --state path must not make the device read a disk image.
const maxStateFile = 1 << 20

// stateFile is the state file's JSON: the keepAlive startWebRTC commands,
// tokens included (so the file is written 0600).
type stateFile struct {
	WebRTC []WebRTCConfig `json:"webrtc"`
}

// loadState reads path; a missing file is an empty state.
func loadState(path string) ([]WebRTCConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("state file %s is larger than %d bytes", path, maxStateFile)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return st.WebRTC, nil
}

// saveState replaces path atomically (write a temporary file, rename), so a
// crash leaves the old state or the new one, never half of one.
func saveState(path string, configs []WebRTCConfig) error {
	if configs == nil {
		configs = []WebRTCConfig{}
	}
	b, err := json.MarshalIndent(stateFile{WebRTC: configs}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}
