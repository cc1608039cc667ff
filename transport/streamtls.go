package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// TLSFiles names the certificate files of a TLS or WSS listener.
type TLSFiles struct {
	Cert, Key string // PEM files: the default certificate and its key
	// SNI maps a server name to [cert, key] PEM files, picked by the name a
	// client asks for (exact, then "*.domain" for one more label); others
	// get the default certificate.
	SNI map[string][2]string
	// ClientCA is a PEM bundle of CAs; with it, client certificates are
	// asked for and verified.
	ClientCA string
	// RequireClientCert (with ClientCA): reject clients without a valid
	// certificate.
	RequireClientCert bool
}

// certSet is a listener's loaded certificates.
type certSet struct {
	def *tls.Certificate
	sni map[string]*tls.Certificate
}

// pick returns the certificate for a client hello's server name.
func (cs *certSet) pick(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if name := hello.ServerName; name != "" && len(cs.sni) > 0 {
		name = strings.ToLower(strings.TrimSuffix(name, "."))
		if c := cs.sni[name]; c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := cs.sni["*"+name[i:]]; c != nil {
				return c, nil
			}
		}
	}
	return cs.def, nil
}

// loadServerTLS reads the files into a server configuration.
func loadServerTLS(f *TLSFiles) (*tls.Config, error) {
	def, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("transport: TLS certificate %s: %w", f.Cert, err)
	}
	cs := &certSet{def: &def}
	if len(f.SNI) > 0 {
		cs.sni = make(map[string]*tls.Certificate, len(f.SNI))
		for name, files := range f.SNI {
			c, err := tls.LoadX509KeyPair(files[0], files[1])
			if err != nil {
				return nil, fmt.Errorf("transport: TLS certificate for %s %s: %w", name, files[0], err)
			}
			cs.sni[strings.ToLower(strings.TrimSuffix(name, "."))] = &c
		}
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.pick,
	}
	switch {
	case f.ClientCA != "":
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("transport: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: TLS client CA %s: no certificate", f.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if f.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case f.RequireClientCert:
		return nil, errors.New("transport: TLS RequireClientCert needs ClientCA")
	}
	return cfg, nil
}

// ReloadTLS reads the certificate files again (and the client CA bundle).
// New handshakes use them; open connections are not affected. On error
// the listener keeps its certificates.
func (l *StreamListener) ReloadTLS() error {
	if !l.cfg.Proto.Secure() || l.cfg.TLS == nil {
		return fmt.Errorf("transport: %s listener has no TLS", l.cfg.Proto)
	}
	cfg, err := loadServerTLS(l.cfg.TLS)
	if err != nil {
		return err
	}
	l.tlsCfg.Store(cfg)
	return nil
}

// tlsConfig returns the current server configuration.
func (l *StreamListener) tlsConfig() *tls.Config { return l.tlsCfg.Load() }

// clientTLS returns the configuration of an outbound TLS connection to dst.
func (s *Streams) clientTLS(dst netip.AddrPort) *tls.Config {
	var cfg *tls.Config
	if s.opt.TLSClient != nil {
		cfg = s.opt.TLSClient.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = dst.Addr().String()
	}
	return cfg
}
