package testutil

import (
	"fmt"
	"strings"
	"sync"
)

// Tail keeps the last Max bytes written to it: a browser's or a child
// process's output, wanted only when something went wrong. Safe for
// concurrent use.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

func (b *Tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.Max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *Tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Abbrev quotes s on one line, cut to n bytes, for error messages that
// name a script or a request.
func Abbrev(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return fmt.Sprintf("%q", s)
}
