package go2rtcbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// Module and Version are the go2rtc measured.
const (
	Module  = "github.com/AlexxIT/go2rtc"
	Version = "v1.9.9"
)

// generators are files of go2rtc's module that are not part of its
// program: a C program that prints the Go definitions of the V4L2 ioctls.
// Go refuses a package with C files when cgo is off ("C source files not
// allowed when not using cgo or SWIG"), so they must go before building.
var generators = []string{"pkg/v4l2/device/videodev2_arch.c"}

// cacheDir is where the benchmark keeps what it builds and generates.
func cacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the benchmark's go2rtc and clip: %w", err)
	}
	return filepath.Join(dir, "ersmesh-bench"), nil
}

// Binary returns the path of go2rtc Version, built on first use: the module
// downloaded with `go mod download`, copied to a scratch directory (the
// module cache is read-only), its generators removed, and built there with
// its own go.mod. The binary is cached under the user's cache directory,
// keyed by the version.
func Binary(ctx context.Context, progress func(string, ...any)) (string, error) {
	root, err := cacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "go2rtc-"+Version, "go2rtc")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	progress("go2rtc: building %s@%s (once; cached in %s)", Module, Version, filepath.Dir(bin))
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", Module+"@"+Version).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w%s", Module, Version, err, stderr(err))
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("go mod download: %w", err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", Module, Version, mod.Error)
	}
	src, err := os.MkdirTemp("", "go2rtc-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	// CopyFS writes files as 0666 (less umask) and directories as 0777:
	// the copy is writable, unlike the module cache.
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return "", fmt.Errorf("copy go2rtc's module: %w", err)
	}
	for _, g := range generators {
		if err := os.Remove(filepath.Join(src, g)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, ".")
	build.Dir = src
	// Its own module, whatever workspace or flags the caller has.
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build go2rtc: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return "\n" + string(ee.Stderr)
	}
	return ""
}
