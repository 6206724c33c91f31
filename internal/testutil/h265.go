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
	return ffmpegClip(t, "libx265", "cam.h265", "testsrc2=size=128x72:rate=10", seconds,
		"-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "keyint=5:min-keyint=5:bframes=0:repeat-headers=1:info=0:log-level=error",
		"-pix_fmt", "yuv420p", "-f", "hevc")
}

// H264File writes a small H.264 Annex-B clip of the given length that
// ffmpeg's libx264 makes (160x90, fps frames a second, a keyframe a
// second, no B-frames) and returns its path: a light stream for tests with
// many viewers. Without ffmpeg and libx264 the test is skipped, or fails
// with CI=true.
func H264File(t testing.TB, seconds float64, fps int) string {
	t.Helper()
	return ffmpegClip(t, "libx264", "cam.h264", fmt.Sprintf("testsrc2=size=160x90:rate=%d", fps), seconds,
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-g", fmt.Sprint(fps), "-bf", "0",
		"-pix_fmt", "yuv420p", "-f", "h264")
}

// ffmpegClip encodes seconds of the lavfi source with encoder and args into
// a file name in a temporary directory.
func ffmpegClip(t testing.TB, encoder, name, source string, seconds float64, args ...string) string {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err == nil {
		out, _ := exec.Command(ff, "-hide_banner", "-encoders").Output()
		if !bytes.Contains(out, []byte(encoder)) {
			err = os.ErrNotExist
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg with %s is needed (CI=true)", encoder)
		}
		t.Skipf("no ffmpeg with %s (CI=true fails instead)", encoder)
	}
	path := filepath.Join(t.TempDir(), name)
	cmd := append([]string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source, "-t", fmt.Sprint(seconds)}, args...)
	enc := exec.Command(ff, append(cmd, path)...)
	if b, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return path
}
