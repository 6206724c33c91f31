package role

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/ersmesh/ersmesh/tlscert"
)

// BridgeTLSConfig is a bridge's HTTPS: certificate files, or ACME.
type BridgeTLSConfig struct {
	Cert, Key string        // PEM files, read again when they change
	Reload    time.Duration // how often Cert and Key are looked at
	// ACMEDomains are the names to get a certificate for from the ACME CA.
	ACMEDomains []string
	ACMEEmail   string
	ACMECA      string // directory URL
	ACMECARoot  string // PEM roots of a private CA's own HTTPS
	ACMEDir     string // account key and certificates
	// HTTPRedirect is the plain-HTTP address with TLS on: ACME HTTP-01
	// challenges, everything else redirected to HTTPS; "" none.
	HTTPRedirect string
	HSTS         time.Duration // Strict-Transport-Security max-age; 0 none
	TURNOnHTTPS  bool
}

// DefaultBridgeTLSConfig has the command line's defaults (TLS off).
func DefaultBridgeTLSConfig() BridgeTLSConfig {
	return BridgeTLSConfig{
		Reload: 30 * time.Second, ACMECA: tlscert.LetsEncrypt, ACMEDir: inConfigDir("acme"),
		HTTPRedirect: ":80", HSTS: 365 * 24 * time.Hour,
	}
}

// Flags binds the bridge's HTTPS flags.
func (c *BridgeTLSConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Cert, "tls-cert", c.Cert, "TLS certificate `file` (PEM, with its chain) for HTTPS on --http; read again when it changes")
	fs.StringVar(&c.Key, "tls-key", c.Key, "TLS key `file` (PEM) going with --tls-cert")
	fs.DurationVar(&c.Reload, "tls-reload", c.Reload, "how often --tls-cert and --tls-key are looked at for a replacement")
	listVar(fs, &c.ACMEDomains, "acme-domain", "`name` to get a certificate for from the ACME CA and serve HTTPS on --http with (repeatable; its DNS must point here)")
	fs.StringVar(&c.ACMEEmail, "acme-email", c.ACMEEmail, "contact `address` given to the ACME CA (expiry and policy notices)")
	fs.StringVar(&c.ACMECA, "acme-ca", c.ACMECA, "ACME directory `URL` (Let's Encrypt's staging CA, a private CA)")
	fs.StringVar(&c.ACMECARoot, "acme-ca-root", c.ACMECARoot, "PEM `file` of the roots a private ACME CA's own HTTPS is signed by (default the system's)")
	fs.StringVar(&c.ACMEDir, "acme-dir", c.ACMEDir, "`directory` keeping the ACME account key and the certificates (back it up)")
	fs.StringVar(&c.HTTPRedirect, "http-redirect", c.HTTPRedirect, "plain-HTTP `address` with TLS on: ACME HTTP-01 challenges, everything else redirected to HTTPS (empty: none)")
	fs.DurationVar(&c.HSTS, "hsts", c.HSTS, "Strict-Transport-Security max-age on HTTPS responses (0: no header)")
	fs.BoolVar(&c.TURNOnHTTPS, "turn-on-https", c.TURNOnHTTPS, "with --turn and TLS on, also take TURN over TLS on the HTTPS port (for viewers whose firewall lets only 443 through)")
}

// on says whether TLS was asked for.
func (c BridgeTLSConfig) on() bool { return c.Cert != "" || c.Key != "" || len(c.ACMEDomains) > 0 }

// start makes the certificate manager for a bridge serving HTTPS on
// httpAddr; nil when TLS is off.
func (c BridgeTLSConfig) start(httpAddr string, log *slog.Logger) (*tlscert.Manager, error) {
	if !c.on() {
		return nil, nil
	}
	if len(c.ACMEDomains) > 0 && (c.Cert != "" || c.Key != "") {
		return nil, keyErr("acme-domain", "--acme-domain and --tls-cert/--tls-key are two ways to the same thing: give one")
	}
	if len(c.ACMEDomains) == 0 {
		if c.Cert == "" || c.Key == "" {
			return nil, keyErr("tls-cert", "--tls-cert and --tls-key go together")
		}
		m, err := tlscert.New(tlscert.Config{CertFile: c.Cert, KeyFile: c.Key, ReloadInterval: c.Reload, Logger: log})
		if err != nil {
			return nil, &ConfigError{Key: "tls-cert", Err: err}
		}
		return m, nil
	}
	if c.ACMEDir == "" {
		return nil, keyErr("acme-dir", "needed: no user config directory to default to")
	}
	host, tlsPort, err := splitPort(httpAddr)
	if err != nil {
		return nil, keyErr("http", "%q: %w", httpAddr, err)
	}
	httpPort := tlscert.Off
	if c.HTTPRedirect != "" {
		_, p, err := splitPort(c.HTTPRedirect)
		if err != nil {
			return nil, keyErr("http-redirect", "%q: %w", c.HTTPRedirect, err)
		}
		httpPort = p
	}
	m, err := tlscert.New(tlscert.Config{Logger: log, ACME: &tlscert.ACME{
		Domains: c.ACMEDomains, Email: c.ACMEEmail, CA: c.ACMECA, CARootFile: c.ACMECARoot, Dir: c.ACMEDir,
		HTTPPort: httpPort, TLSPort: tlsPort, ListenHost: host,
	}})
	if err != nil {
		return nil, &ConfigError{Key: "acme-domain", Err: err}
	}
	return m, nil
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
