package tlscert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

// Off disables a challenge type in ACME.HTTPPort or ACME.TLSPort.
const Off = -1

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Config chooses the certificate source: files, ACME or a self-signed
// certificate; exactly one.
type Config struct {
	// CertFile and KeyFile are PEM files (the certificate with its chain,
	// and its key), read again when either changes.
	CertFile, KeyFile string
	// ReloadInterval is how often the files are looked at (default 30 s).
	ReloadInterval time.Duration

	// ACME, when set, obtains and renews certificates from an ACME CA.
	ACME *ACME

	// SelfSigned, when set, generates a certificate in memory for these
	// names and addresses (the demo: "localhost", "127.0.0.1").
	SelfSigned []string

	Logger *slog.Logger
}

// ACME configures certificates from an ACME CA.
type ACME struct {
	// Domains are the names to hold certificates for (one each).
	Domains []string
	// Email is given to the CA for expiry notices; optional.
	Email string
	// CA is the directory URL (default Let's Encrypt production).
	CA string
	// CARootFile is a PEM file of roots to trust for the CA's own HTTPS
	// (a private CA); default the system roots.
	CARootFile string
	// Dir keeps the account key and the certificates. Required.
	Dir string
	// HTTPPort is the port the server's plain-HTTP listener is on, where
	// the CA's HTTP-01 validation arrives (80 unless a proxy forwards);
	// Off turns HTTP-01 off. Default 80.
	HTTPPort int
	// TLSPort is the port of the TLS listener serving TLSConfig, where
	// TLS-ALPN-01 validation arrives (443 unless forwarded); Off turns
	// TLS-ALPN-01 off. Default 443.
	TLSPort int
	// ListenHost is the address the server's listeners are bound to
	// (default every interface), so that certmagic finds the ports busy
	// and lets the server's own listeners answer the challenges.
	ListenHost string
	// RenewCheckInterval is how often certificates are checked for
	// renewal (default certmagic's, 10 minutes); renewal starts when a
	// third of a certificate's lifetime is left, or when the CA's renewal
	// information says so.
	RenewCheckInterval time.Duration
}

// Status is what a Manager knows of one name.
type Status struct {
	Domain   string
	NotAfter time.Time // of the certificate held; zero if none
	// Err is the last failure to obtain or renew, with the CA's answer;
	// nil after a success.
	Err   error
	ErrAt time.Time
}

// Manager serves certificates from its source. Close stops it.
type Manager struct {
	log      *slog.Logger
	get      func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	files    *fileSource
	magic    *certmagic.Config
	issuer   *certmagic.ACMEIssuer
	cache    *certmagic.Cache
	domains  []string
	fallback string // SNI-less clients get this name's certificate
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	closeOnce sync.Once

	mu     sync.Mutex
	status map[string]*Status
}

// New starts a Manager: files are read at once (an error if they cannot
// be), ACME certificates are loaded from Dir or obtained in the
// background.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := 0
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		n++
	}
	if cfg.ACME != nil {
		n++
	}
	if len(cfg.SelfSigned) > 0 {
		n++
	}
	if n != 1 {
		return nil, errors.New("tlscert: give exactly one certificate source: files, ACME or self-signed")
	}
	m := &Manager{log: cfg.Logger.With("component", "tls"), status: make(map[string]*Status)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	switch {
	case cfg.ACME != nil:
		if err := m.startACME(*cfg.ACME); err != nil {
			m.Close()
			return nil, err
		}
	case len(cfg.SelfSigned) > 0:
		c, err := SelfSigned(cfg.SelfSigned, 30*24*time.Hour)
		if err != nil {
			m.cancel()
			return nil, err
		}
		m.get = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }
	default:
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			m.cancel()
			return nil, errors.New("tlscert: a certificate file and a key file go together")
		}
		fs, err := newFileSource(cfg.CertFile, cfg.KeyFile, m.log)
		if err != nil {
			m.cancel()
			return nil, err
		}
		m.files = fs
		m.get = fs.get
		every := cfg.ReloadInterval
		if every <= 0 {
			every = 30 * time.Second
		}
		m.wg.Go(func() { fs.watch(m.ctx, every) })
	}
	return m, nil
}

func (m *Manager) startACME(a ACME) error {
	if len(a.Domains) == 0 {
		return errors.New("tlscert: ACME needs at least one domain")
	}
	if a.Dir == "" {
		return errors.New("tlscert: ACME needs a directory for its account key and certificates")
	}
	a.Domains = slices.Clone(a.Domains)
	for i, d := range a.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || strings.ContainsAny(d, "/: ") {
			return fmt.Errorf("tlscert: %q is not a domain name", a.Domains[i])
		}
		a.Domains[i] = d
	}
	if a.CA == "" {
		a.CA = LetsEncrypt
	}
	if a.HTTPPort == 0 {
		a.HTTPPort = 80
	}
	if a.TLSPort == 0 {
		a.TLSPort = 443
	}
	if a.HTTPPort == Off && a.TLSPort == Off {
		return errors.New("tlscert: ACME needs HTTP-01 or TLS-ALPN-01; both are off")
	}
	var roots *x509.CertPool
	if a.CARootFile != "" {
		pem, err := os.ReadFile(a.CARootFile)
		if err != nil {
			return fmt.Errorf("tlscert: ACME CA root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tlscert: ACME CA root %s: no PEM certificate in it", a.CARootFile)
		}
	}
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return fmt.Errorf("tlscert: ACME directory: %w", err)
	}
	zl := zapToSlog(m.log)
	m.domains = a.Domains
	m.fallback = a.Domains[0]
	for _, d := range a.Domains {
		m.status[d] = &Status{Domain: d}
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: a.RenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: a.Dir},
		DefaultServerName: m.fallback,
		// No OCSP: Let's Encrypt has ended it, and private CAs rarely run
		// a responder.
		OCSP:    certmagic.OCSPConfig{DisableStapling: true},
		OnEvent: m.onEvent,
		Logger:  zl,
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA: a.CA, TestCA: a.CA, Email: a.Email, Agreed: true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    a.HTTPPort == Off,
		DisableTLSALPNChallenge: a.TLSPort == Off,
		AltHTTPPort:             max(a.HTTPPort, 0),
		AltTLSALPNPort:          max(a.TLSPort, 0),
		ListenHost:              a.ListenHost,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.get = m.magic.GetCertificate
	m.log.Info("ACME: managing certificates", "domains", a.Domains, "ca", a.CA, "dir", a.Dir,
		"http01_port", portString(a.HTTPPort), "tlsalpn01_port", portString(a.TLSPort))
	// ManageAsync loads what Dir holds and obtains the rest in the
	// background, retrying with backoff; failures arrive in onEvent.
	return m.magic.ManageAsync(m.ctx, a.Domains)
}

func portString(p int) string {
	if p == Off {
		return "off"
	}
	return strconv.Itoa(p)
}

// onEvent records certmagic's outcomes per domain and logs failures in
// one line an operator can act on: the domain, the CA and its answer.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_failed":
		name, _ := data["identifier"].(string)
		err, _ := data["error"].(error)
		renewal, _ := data["renewal"].(bool)
		if err == nil {
			err = errors.New("unknown error")
		}
		err = explain(name, err)
		m.mu.Lock()
		if s := m.status[name]; s != nil {
			s.Err, s.ErrAt = err, time.Now()
		}
		m.mu.Unlock()
		what := "cannot obtain a certificate"
		if renewal {
			what = "cannot renew the certificate; serving the one held until it expires"
		}
		m.log.Error("ACME: "+what, "domain", name, "ca", m.issuer.CA, "err", err)
	case "cert_obtained":
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		m.mu.Lock()
		if s := m.status[name]; s != nil {
			s.Err = nil
		}
		m.mu.Unlock()
		m.log.Info("ACME: certificate obtained", "domain", name, "renewal", renewal)
	}
	return nil
}

// explain turns an ACME failure into an error naming the domain and
// quoting the CA's problem document when there is one.
func explain(domain string, err error) error {
	var p acme.Problem
	if errors.As(err, &p) {
		return fmt.Errorf("certificate for %s refused by the CA: %s (%s)", domain, p.Detail, p.Type)
	}
	return fmt.Errorf("certificate for %s: %w", domain, err)
}

// refreshStatus reads the expiry of each managed name's certificate from
// the cache.
func (m *Manager) refreshStatus() {
	for _, d := range m.domains {
		certs := m.cache.AllMatchingCertificates(d)
		var na time.Time
		for _, c := range certs {
			if c.Leaf != nil && c.Leaf.NotAfter.After(na) {
				na = c.Leaf.NotAfter
			}
		}
		m.mu.Lock()
		m.status[d].NotAfter = na
		m.mu.Unlock()
	}
}

// Status reports each ACME domain's certificate and last failure.
func (m *Manager) Status() []Status {
	if m.cache != nil {
		m.refreshStatus()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, d := range m.domains {
		out = append(out, *m.status[d])
	}
	return out
}

// Ready is nil once there is a certificate to serve (for /readyz).
func (m *Manager) Ready() error {
	if m.cache == nil {
		return nil
	}
	var errs []error
	for _, s := range m.Status() {
		if s.NotAfter.After(time.Now()) {
			return nil
		}
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return errors.New("no certificate obtained yet")
}

// GetCertificate is tls.Config.GetCertificate.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" && m.fallback != "" {
		// An SNI-less client (an IP address in the URL, some TURN
		// clients) gets the first domain's certificate.
		h := *hello
		h.ServerName = m.fallback
		hello = &h
	}
	return m.get(hello)
}

// TLSConfig is for HTTPS: HTTP/2 and HTTP/1.1, and ACME's TLS-ALPN-01.
func (m *Manager) TLSConfig() *tls.Config {
	c := &tls.Config{
		GetCertificate: m.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if m.magic != nil {
		c.NextProtos = append(c.NextProtos, acmez.ACMETLS1Protocol)
	}
	return c
}

// TURNConfig is for TURN over TLS: the same certificate, no ALPN.
func (m *Manager) TURNConfig() *tls.Config {
	return &tls.Config{GetCertificate: m.GetCertificate, MinVersion: tls.VersionTLS12}
}

// HTTPHandler is for the plain-HTTP port (80): it answers ACME HTTP-01
// challenges and redirects everything else to HTTPS on httpsPort (443
// leaves the port out of the URL).
func (m *Manager) HTTPHandler(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.issuer != nil && m.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/@\\") {
			http.Error(w, "no Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if httpsPort != 443 {
			host += ":" + strconv.Itoa(httpsPort)
		}
		// 308 keeps POSTs (WHEP, register) POSTs; they fail on HTTP
		// anyway, but say where to go.
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// Close stops renewals and file watching and waits for them. It is
// idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		if m.cache != nil {
			m.cache.Stop()
		}
		m.wg.Wait()
	})
	return nil
}
