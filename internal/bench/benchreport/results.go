package benchreport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Envelope is what a results file holds: the result, the command that
// produced it and the machine it ran on.
type Envelope[T any] struct {
	Command string  `json:"command"`
	Machine Machine `json:"machine"`
	Result  T       `json:"result"`
}

// Dir is where results and plots go under the output directory.
const Dir = "bench"

// Write saves result as <out>/bench/<name>.
func Write(out, name, command string, result any) error {
	dir := filepath.Join(out, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(Envelope[any]{Command: command, Machine: ThisMachine(), Result: result}, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
}

// read loads <out>/bench/<name>; nil if there is no such file.
func read[T any](out, name string) (*Envelope[T], error) {
	b, err := os.ReadFile(filepath.Join(out, Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var e Envelope[T]
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &e, nil
}
