package tlscert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// fileSource serves a certificate from PEM files and reads them again when
// they change. A pair that does not load (a renewer half way through
// writing, a key that does not match) is logged and the old certificate
// kept; the next look tries again.
type fileSource struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
	// seen is what the files held when last loaded (or refused), so that
	// an unchanged pair is not parsed again, nor a broken one logged
	// again. Owned by the watch goroutine after newFileSource.
	seen []byte
}

func newFileSource(certFile, keyFile string, log *slog.Logger) (*fileSource, error) {
	f := &fileSource{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fileSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cur.Load(), nil
}

// reload loads the pair if the files' contents changed; it reports whether
// a new certificate was taken.
func (f *fileSource) reload() (bool, error) {
	certPEM, err := os.ReadFile(f.certFile)
	if err != nil {
		return false, fmt.Errorf("TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.keyFile)
	if err != nil {
		return false, fmt.Errorf("TLS key: %w", err)
	}
	both := append(append([]byte{}, certPEM...), keyPEM...)
	if bytes.Equal(both, f.seen) {
		return false, nil
	}
	f.seen = both
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("TLS certificate %s with key %s: %w", f.certFile, f.keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false, fmt.Errorf("TLS certificate %s: %w", f.certFile, err)
		}
	}
	if time.Now().After(c.Leaf.NotAfter) {
		f.log.Warn("TLS certificate file holds an expired certificate", "file", f.certFile, "not_after", c.Leaf.NotAfter)
	}
	f.cur.Store(&c)
	f.log.Info("TLS certificate loaded", "file", f.certFile, "names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter)
	return true, nil
}

// watch looks at the files every interval until ctx ends.
func (f *fileSource) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := f.reload(); err != nil && !errors.Is(err, context.Canceled) {
			f.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate", "err", err)
		}
	}
}
