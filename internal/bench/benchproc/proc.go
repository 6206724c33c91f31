package benchproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child is a running system under test.
type Child struct {
	cmd *exec.Cmd
	// Ready holds the fields of the child's READY line after "READY".
	Ready []string
	done  chan error
}

// Start runs exe with args and GOMAXPROCS=procs, and waits for it to print
// a line "READY <field>..." with at least fields fields.
func Start(ctx context.Context, exe string, args []string, procs, fields int) (*Child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the system under test: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) < fields+1 || f[0] != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the system under test did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	c := &Child{cmd: cmd, Ready: f[1:], done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	return c, nil
}

// Stop interrupts the child and waits for it, killing it after 15 s.
func (c *Child) Stop() {
	c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// RSS is the child's resident set size in MiB.
func (c *Child) RSS() float64 { return RSS(c.cmd.Process.Pid) }

// CPU is the child's user+system CPU time so far.
func (c *Child) CPU() time.Duration { return CPU(c.cmd.Process.Pid) }

// RSS is the resident set size in MiB of process pid; 0 if unknown.
func RSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// CPU is the user+system CPU time of process pid so far; 0 if unknown.
func CPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which ends with the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond
}

// RaiseFileLimit lifts the soft limit on open files to the hard one: load
// generators hold a socket per session.
func RaiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
