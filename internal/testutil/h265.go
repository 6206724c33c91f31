package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// H265File writes an H.265 Annex-B clip of the given length that ffmpeg's
// libx265 makes (128x72, 10 frames a second, a keyframe every 5 frames,
// parameter sets repeated) and returns its path. Without ffmpeg and
// libx265 the test is skipped, or fails with CI=true.
func H265File(t testing.TB, seconds float64) string {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err == nil {
		out, _ := exec.Command(ff, "-hide_banner", "-encoders").Output()
		if !bytes.Contains(out, []byte("libx265")) {
			err = os.ErrNotExist
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg with libx265 is needed (CI=true)")
		}
		t.Skip("no ffmpeg with libx265 (CI=true fails instead)")
	}
	path := filepath.Join(t.TempDir(), "cam.h265")
	enc := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=10",
		"-t", fmt.Sprint(seconds), "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "keyint=5:min-keyint=5:bframes=0:repeat-headers=1:info=0:log-level=error",
		"-pix_fmt", "yuv420p", "-f", "hevc", path)
	if b, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return path
}
