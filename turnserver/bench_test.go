package turnserver

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// BenchmarkRelay relays UDP through a TURN server, ours and coturn
// (Debian's coturn package, if installed) in turn, each in its own process
// on loopback with the same client and load: a pion client sends 1200-byte
// packets to a peer through its allocation as fast as it can. Reported:
//
//	MB/s        bytes delivered to the peer per second
//	MB/cpu-s    bytes delivered per CPU second of the server process: the
//	            throughput per core, the figure to compare
//	delivered-% of what the client sent (UDP drops what a server cannot take)
//
// Run: go test -run '^$' -bench Relay -benchtime 200000x ./turnserver
func BenchmarkRelay(b *testing.B) {
	b.Run("ersmesh", func(b *testing.B) {
		exe, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), benchServerEnv+"=1")
		benchRelay(b, cmd, "")
	})
	b.Run("coturn", func(b *testing.B) {
		bin, err := exec.LookPath("turnserver")
		if err != nil {
			b.Skip("coturn's turnserver is not installed (apt-get install coturn)")
		}
		port := freeUDPPort(b)
		cmd := exec.Command(bin, "-n", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
			"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port),
			"--use-auth-secret", "--static-auth-secret="+benchSecret, "--realm="+DefaultRealm,
			"--allow-loopback-peers", "--min-port=40000", "--max-port=40999", "--no-tcp-relay")
		benchRelay(b, cmd, "127.0.0.1:"+strconv.Itoa(port))
	})
}

const (
	benchServerEnv = "ERSMESH_TURNBENCH_SERVER"
	benchSecret    = "bench-secret"
	benchPacket    = 1200
)

// runBenchServer serves TURN on loopback until stdin closes, printing its
// UDP address first.
func runBenchServer() {
	s, err := New(Config{
		Secret: benchSecret, ListenIP: "127.0.0.1", UDPPort: Ephemeral, TCPPort: Off,
		Policy: Policy{AllowPrivate: true}, UserBandwidth: -1, MaxUserAllocations: -1,
		MinRelayPort: 41000, MaxRelayPort: 41999,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.UDPAddr())
	io.Copy(io.Discard, os.Stdin)
	s.Close()
}

func freeUDPPort(b *testing.B) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// cpuSeconds is a process's user+system CPU time, all threads, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; count from after it.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// benchRelay starts the server cmd (addr "" means: read it from the first
// line it prints), then measures relaying through it.
func benchRelay(b *testing.B, cmd *exec.Cmd, addr string) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	if addr == "" {
		if !lines.Scan() {
			b.Fatal("benchmark TURN server printed no address")
		}
		addr = strings.TrimSpace(lines.Text())
	}
	go io.Copy(io.Discard, stdout) // coturn logs to stdout

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cr, err := NewCredentials(benchSecret, "bench", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var c *turn.Client
	var relay net.PacketConn
	// coturn takes a moment to open its port.
	for try := 0; ; try++ {
		c, err = turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
			Username: cr.Username, Password: cr.Password, Realm: DefaultRealm,
		})
		if err == nil {
			err = c.Listen()
		}
		if err == nil {
			relay, err = c.Allocate()
		}
		if err == nil {
			break
		}
		if c != nil {
			c.Close()
		}
		if try == 50 {
			b.Fatalf("allocate on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Close()
	defer relay.Close()

	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Add(int64(n))
		}
	}()
	pkt := make([]byte, benchPacket)
	// Open the permission and the channel, and wait until data flows.
	for got.Load() == 0 {
		if _, err := relay.WriteTo(pkt, sink.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)

	b.SetBytes(benchPacket)
	cpu0, got0, t0 := cpuSeconds(b, cmd.Process.Pid), got.Load(), time.Now()
	b.ResetTimer()
	for range b.N {
		relay.WriteTo(pkt, sink.LocalAddr())
	}
	time.Sleep(100 * time.Millisecond) // what is in flight
	b.StopTimer()
	elapsed := time.Since(t0).Seconds()
	cpu := cpuSeconds(b, cmd.Process.Pid) - cpu0
	delivered := float64(got.Load() - got0)
	b.ReportMetric(delivered/elapsed/1e6, "MB/s")
	if cpu > 0 {
		b.ReportMetric(delivered/cpu/1e6, "MB/cpu-s")
	}
	b.ReportMetric(100*delivered/float64(b.N*benchPacket), "delivered-%")
	sink.Close()
	<-done
}
