package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ersmesh/ersmesh/tlscert"
)

// tlsFlags are the bridge's HTTPS flags: certificate files, or ACME.
type tlsFlags struct {
	cert, key   string
	reload      time.Duration
	domains     listFlag
	email, ca   string
	caRoot, dir string
	plain       string
	hsts        time.Duration
	turnOnHTTPS bool
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "TLS certificate `file` (PEM, with its chain) for HTTPS on --http; read again when it changes")
	fs.StringVar(&f.key, "tls-key", "", "TLS key `file` (PEM) going with --tls-cert")
	fs.DurationVar(&f.reload, "tls-reload", 30*time.Second, "how often --tls-cert and --tls-key are looked at for a replacement")
	fs.Var(&f.domains, "acme-domain", "`name` to get a certificate for from the ACME CA and serve HTTPS on --http with (repeatable; its DNS must point here)")
	fs.StringVar(&f.email, "acme-email", "", "contact `address` given to the ACME CA (expiry and policy notices)")
	fs.StringVar(&f.ca, "acme-ca", tlscert.LetsEncrypt, "ACME directory `URL` (Let's Encrypt's staging CA, a private CA)")
	fs.StringVar(&f.caRoot, "acme-ca-root", "", "PEM `file` of the roots a private ACME CA's own HTTPS is signed by (default the system's)")
	fs.StringVar(&f.dir, "acme-dir", defaultACMEDir(), "`directory` keeping the ACME account key and the certificates (back it up)")
	fs.StringVar(&f.plain, "http-redirect", ":80", "plain-HTTP `address` with TLS on: ACME HTTP-01 challenges, everything else redirected to HTTPS (empty: none)")
	fs.DurationVar(&f.hsts, "hsts", 365*24*time.Hour, "Strict-Transport-Security max-age on HTTPS responses (0: no header)")
	fs.BoolVar(&f.turnOnHTTPS, "turn-on-https", false, "with --turn and TLS on, also take TURN over TLS on the HTTPS port (for viewers whose firewall lets only 443 through)")
}

func defaultACMEDir() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ersmesh", "acme")
}

// on says whether TLS was asked for.
func (f *tlsFlags) on() bool { return f.cert != "" || f.key != "" || len(f.domains) > 0 }

// start makes the certificate manager for a bridge serving HTTPS on
// httpAddr; nil when TLS is off.
func (f *tlsFlags) start(httpAddr string, log *slog.Logger) (*tlscert.Manager, error) {
	if !f.on() {
		return nil, nil
	}
	if len(f.domains) > 0 && (f.cert != "" || f.key != "") {
		return nil, errors.New("--acme-domain and --tls-cert/--tls-key are two ways to the same thing: give one")
	}
	if len(f.domains) == 0 {
		if f.cert == "" || f.key == "" {
			return nil, errors.New("--tls-cert and --tls-key go together")
		}
		return tlscert.New(tlscert.Config{CertFile: f.cert, KeyFile: f.key, ReloadInterval: f.reload, Logger: log})
	}
	if f.dir == "" {
		return nil, errors.New("--acme-dir is needed: no user config directory to default to")
	}
	host, tlsPort, err := splitPort(httpAddr)
	if err != nil {
		return nil, fmt.Errorf("--http %q: %w", httpAddr, err)
	}
	httpPort := tlscert.Off
	if f.plain != "" {
		_, p, err := splitPort(f.plain)
		if err != nil {
			return nil, fmt.Errorf("--http-redirect %q: %w", f.plain, err)
		}
		httpPort = p
	}
	return tlscert.New(tlscert.Config{Logger: log, ACME: &tlscert.ACME{
		Domains: f.domains, Email: f.email, CA: f.ca, CARootFile: f.caRoot, Dir: f.dir,
		HTTPPort: httpPort, TLSPort: tlsPort, ListenHost: host,
	}})
}

func splitPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q: want 1-65535", port)
	}
	return host, p, nil
}
