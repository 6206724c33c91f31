package benchproc

import (
	"bufio"
	"context"
	"errors"
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
	done  chan struct{} // closed when the child has exited
}

// Start runs exe with args and GOMAXPROCS=procs, and waits for it to print
// a line "READY <field>..." with at least fields fields.
func Start(ctx context.Context, exe string, args []string, procs, fields int) (*Child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	return StartCmd(cmd, "READY", fields)
}

// StartCmd starts cmd (made with exec.CommandContext) and waits for it to
// print a line whose first word is ready, with at least fields words after
// it: a program of its own (the ersmesh command, say) announces itself in
// its own words. Its stderr goes to ours unless cmd has one.
func StartCmd(cmd *exec.Cmd, ready string, fields int) (*Child, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
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
	if err != nil || len(f) < fields+1 || f[0] != ready {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the system under test did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	c := Watch(cmd)
	c.Ready = f[1:]
	return c, nil
}

// Watch is a Child for cmd, already started by the caller: a program
// that announces nothing on its stdout, which the caller waits for in its
// own way (go2rtc's API answering, say).
func Watch(cmd *exec.Cmd) *Child {
	c := &Child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	return c
}

// Exited is closed when the child has exited.
func (c *Child) Exited() <-chan struct{} { return c.done }

// PID is the child's process ID.
func (c *Child) PID() int { return c.cmd.Process.Pid }

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
	d, _ := ParseStatCPU(string(b))
	return d
}

// ticksPerSecond is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const ticksPerSecond = 100

// ParseStatCPU reads utime+stime (fields 14 and 15, proc(5)) from the text
// of a /proc/<pid>/stat file. The command name, field 2, is in parentheses
// and may itself hold spaces and parentheses: fields are counted after its
// last ')'.
func ParseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat utime: %w", err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat stime: %w", err)
	}
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
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
