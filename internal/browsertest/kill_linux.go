package browsertest

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// killLeftovers kills every process started with our profile directory.
// Chromium's helpers (zygote, renderers, the network service) can outlive
// the browser process when it is killed, and would then keep writing into a
// directory the test is about to remove. Every helper gets --user-data-dir
// on its command line, and the directory is unique to the test, so it names
// exactly our processes. A helper may fork while we look, so look until a
// few passes in a row find nothing.
func killLeftovers(dataDir string) {
	flag := []byte("--user-data-dir=" + dataDir)
	deadline := time.Now().Add(3 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); {
		if killUsing(flag) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func killUsing(flag []byte) int {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, flag) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}
