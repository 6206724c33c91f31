package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/pebbletest"
)

// commandEnv makes the test binary run `ersmesh` with the arguments in it
// (one per line) instead of the tests: TestBridgeACME starts the real
// command in a process of its own, stops it with SIGTERM, as systemd does.
const commandEnv = "ERSMESH_TEST_COMMAND"

func TestMain(m *testing.M) {
	if args := os.Getenv(commandEnv); args != "" {
		if err := run(strings.Split(args, "\n")); err != nil {
			os.Stderr.WriteString("ersmesh: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// freePort returns a loopback port nothing listens on, for the command to
// bind a moment later. It is taken below the kernel's ephemeral range
// (32768 and up), so that the ports other tests running meanwhile get for
// ":0" listeners and outgoing connections cannot take it in between.
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return 0
}

// TestBridgeACME runs `ersmesh bridge --acme-domain ...` against Pebble:
// the command gets its certificate through its own listeners, serves the
// page over HTTPS (HTTP/2, HSTS), redirects its plain-HTTP port, and stops
// cleanly on SIGTERM.
func TestBridgeACME(t *testing.T) {
	const domain = "bridge.ersmesh.test"
	httpsPort, plainPort := freePort(t), freePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: plainPort, TLSPort: httpsPort})
	dir := t.TempDir()
	args := []string{"bridge",
		"--http", "127.0.0.1:" + strconv.Itoa(httpsPort),
		"--http-redirect", "127.0.0.1:" + strconv.Itoa(plainPort),
		"--acme-domain", domain, "--acme-email", "ops@ersmesh.test",
		"--acme-ca", ca.Directory, "--acme-ca-root", ca.ServerRootFile, "--acme-dir", filepath.Join(dir, "acme"),
		"--hsts", "1h",
		"--identity", filepath.Join(dir, "bridge.key"), "--listen", "/ip4/127.0.0.1/tcp/0", "--admin", "",
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), commandEnv+"="+strings.Join(args, "\n"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ersmesh bridge output:\n%s", out.String())
		}
	}()

	dial := &net.Dialer{Timeout: 2 * time.Second}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.RootPool()},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dial.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	origin := "https://" + domain + ":" + strconv.Itoa(httpsPort)
	var resp *http.Response
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err = client.Get(origin + "/?room=x")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS with Pebble's certificate within 90 s: %v", err)
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("ersmesh bridge exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<video") || resp.Proto != "HTTP/2.0" {
		t.Errorf("page: %d over %s, %d bytes", resp.StatusCode, resp.Proto, len(body))
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600" {
		t.Errorf("Strict-Transport-Security %q, want max-age=3600", got)
	}
	resp, err = client.Get("http://" + domain + ":" + strconv.Itoa(plainPort) + "/?room=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != origin+"/?room=x" {
		t.Errorf("plain HTTP: %d to %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), origin+"/?room=x")
	}
	// The certificate and the account are under --acme-dir.
	var crts int
	filepath.Walk(filepath.Join(dir, "acme"), func(p string, _ os.FileInfo, _ error) error {
		if strings.HasSuffix(p, domain+".crt") {
			crts++
		}
		return nil
	})
	if crts != 1 {
		t.Errorf("%d certificates for %s under --acme-dir, want 1", crts, domain)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("ersmesh bridge on SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("ersmesh bridge did not stop within 20 s of SIGTERM")
	}
}
