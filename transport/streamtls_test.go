package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA issues certificates for the tests, written to a temporary
// directory.
type testCA struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // the CA certificate (PEM)
	pool   *x509.CertPool
	serial atomic.Int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Velox Test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.serial.Store(1)
	ca.file = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for cn (also a DNS name) and the loopback
// addresses, written to name.pem and name.key; it returns the files and
// the certificate.
func (ca *testCA) issue(t testing.TB, name, cn string, client bool) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// listenTLS starts a TLS listener with a certificate for sip.example.com.
func listenTLS(t testing.TB, s *Streams, ca *testCA, addr string, files *TLSFiles) *StreamListener {
	t.Helper()
	if files == nil {
		files = &TLSFiles{}
	}
	if files.Cert == "" {
		files.Cert, files.Key, _ = ca.issue(t, "server", "sip.example.com", false)
	}
	return listenStream(t, s, StreamConfig{Proto: TLS, Addr: netip.MustParseAddrPort(addr), TLS: files})
}

func dialTLS(t testing.TB, addr netip.AddrPort, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr.String(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestTLSVersionsEcho(t *testing.T) {
	ca := newTestCA(t)
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		l := listenTLS(t, s, ca, addr, nil)
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			c, err := dialTLS(t, l.LocalAddr(), &tls.Config{RootCAs: ca.pool, ServerName: "sip.example.com", MinVersion: v, MaxVersion: v})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().Version; got != v {
				t.Fatalf("version %x, want %x", got, v)
			}
			r := newSIPReader(c)
			for i := 0; i < 3; i++ {
				m := sipMsg("tls", strings.Repeat("t", i*3000)) // also several records
				mustWrite(t, c, m)
				expectMsg(t, r, m)
			}
			mustWrite(t, c, "\r\n\r\n")
			expectMsg(t, r, "\r\n")
		}
		// TLS 1.1 is refused.
		if _, err := dialTLS(t, l.LocalAddr(), &tls.Config{RootCAs: ca.pool, ServerName: "sip.example.com", MaxVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("TLS 1.1 accepted")
		}
	}
	// A connection whose handshake failed is counted, then closed: wait
	// for both.
	waitFor(t, "handshake failures", func() bool {
		st := s.Stats()
		return st.HandshakeFailures == 2 && st.OpenBy[TLS] == 4
	})
	if st := s.Stats(); st.OpenBy[TLS] != 4 || st.MessagesIn != 12 || st.KeepAlives != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTLSSNI(t *testing.T) {
	ca := newTestCA(t)
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	otherCert, otherKey, _ := ca.issue(t, "other", "other.example.com", false)
	wildCert, wildKey, _ := ca.issue(t, "wild", "*.wild.example.com", false)
	l := listenTLS(t, s, ca, "127.0.0.1:0", &TLSFiles{SNI: map[string][2]string{
		"Other.Example.com":  {otherCert, otherKey},
		"*.wild.example.com": {wildCert, wildKey},
	}})
	for name, want := range map[string]string{
		"other.example.com":  "other.example.com",
		"OTHER.example.com":  "other.example.com",
		"a.wild.example.com": "*.wild.example.com",
		"sip.example.com":    "sip.example.com",
		"":                   "sip.example.com", // no SNI: the default
	} {
		cfg := &tls.Config{ServerName: name, InsecureSkipVerify: true}
		c, err := dialTLS(t, l.LocalAddr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("SNI %q: certificate %q, want %q", name, got, want)
		}
		c.Close()
	}
}

func TestTLSClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	required := listenTLS(t, s, ca, "127.0.0.1:0", &TLSFiles{ClientCA: ca.file, RequireClientCert: true})
	optional := listenTLS(t, s, ca, "127.0.0.1:0", &TLSFiles{ClientCA: ca.file})
	_, _, clientCert := ca.issue(t, "client", "alice", true)
	otherCA := newTestCA(t)
	_, _, strangerCert := otherCA.issue(t, "stranger", "mallory", true)

	try := func(l *StreamListener, certs []tls.Certificate) error {
		c, err := dialTLS(t, l.LocalAddr(), &tls.Config{RootCAs: ca.pool, ServerName: "sip.example.com", Certificates: certs})
		if err != nil {
			return err
		}
		// With TLS 1.3 the client learns of a rejection on its first read.
		m := sipMsg("cc", "")
		c.Write([]byte(m))
		got, err := newSIPReader(c).next(5 * time.Second)
		if err == nil && got != m {
			err = errors.New("bad echo")
		}
		return err
	}
	if err := try(required, nil); err == nil {
		t.Error("required: client without certificate accepted")
	}
	if err := try(required, []tls.Certificate{strangerCert}); err == nil {
		t.Error("required: certificate of another CA accepted")
	}
	if err := try(required, []tls.Certificate{clientCert}); err != nil {
		t.Errorf("required: client with certificate: %v", err)
	}
	if err := try(optional, nil); err != nil {
		t.Errorf("optional: client without certificate: %v", err)
	}
	if err := try(optional, []tls.Certificate{strangerCert}); err == nil {
		t.Error("optional: certificate of another CA accepted")
	}
	if err := try(optional, []tls.Certificate{clientCert}); err != nil {
		t.Errorf("optional: client with certificate: %v", err)
	}
	// RequireClientCert without a CA is a configuration error.
	f, k, _ := ca.issue(t, "srv2", "sip.example.com", false)
	if _, err := s.Listen(StreamConfig{Proto: TLS, Addr: netip.MustParseAddrPort("127.0.0.1:0"),
		TLS: &TLSFiles{Cert: f, Key: k, RequireClientCert: true}}); err == nil {
		t.Error("RequireClientCert without ClientCA accepted")
	}
}

func TestTLSReload(t *testing.T) {
	ca := newTestCA(t)
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	certFile, keyFile, _ := ca.issue(t, "server", "first.example.com", false)
	l := listenTLS(t, s, ca, "127.0.0.1:0", &TLSFiles{Cert: certFile, Key: keyFile})
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}
	old, err := dialTLS(t, l.LocalAddr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cn := old.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "first.example.com" {
		t.Fatalf("certificate %q", cn)
	}
	// New files in place (same names), then reload.
	ca.issue(t, "server", "second.example.com", false)
	if err := l.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	c, err := dialTLS(t, l.LocalAddr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second.example.com" {
		t.Fatalf("after reload: certificate %q", cn)
	}
	// The open connection goes on.
	m := sipMsg("old", "")
	mustWrite(t, old, m)
	expectMsg(t, newSIPReader(old), m)
	// A broken file: the reload fails and the listener keeps its certificate.
	os.WriteFile(certFile, []byte("junk"), 0o600)
	if err := l.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken file")
	}
	if _, err := dialTLS(t, l.LocalAddr(), cfg); err != nil {
		t.Fatal(err)
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	ca := newTestCA(t)
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{ConnectTimeout: 100 * time.Millisecond}, h)
	l := listenTLS(t, s, ca, "127.0.0.1:0", nil)
	c := dialTCP(t, l.LocalAddr()) // says nothing
	expectClosed(t, c)
	waitFor(t, "closed", func() bool { st := s.Stats(); return st.Open == 0 && st.HandshakeFailures == 1 })
}

// TestTLSWriteToOpensConnection opens a TLS connection to a peer, verifying
// its certificate; with the default (system roots) the test CA is unknown
// and the connect fails.
func TestTLSWriteToOpensConnection(t *testing.T) {
	ca := newTestCA(t)
	_, _, serverCert := ca.issue(t, "peer", "peer.example.com", false)
	peer, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	pa := peer.Addr().(*net.TCPAddr).AddrPort()

	got := make(chan string, 1)
	h := newTestHandler()
	h.f = func(data []byte, src netip.AddrPort, out *StreamOut) {
		if out.Proto() == TLS {
			got <- src.String() + " " + string(data)
		}
	}
	s := startStreams(t, StreamsOptions{TLSClient: &tls.Config{RootCAs: ca.pool}}, h)
	m := sipMsg("tls-out", "")
	if err := s.WriteTo(TLS, []byte(m), pa); err != nil {
		t.Fatal(err)
	}
	pc, err := peer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	expectMsg(t, newSIPReader(pc), m)
	resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
	mustWrite(t, pc, resp)
	select {
	case g := <-got:
		if g != pa.String()+" "+resp {
			t.Fatalf("handled %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("answer not handled")
	}

	s.Close() // (each Streams checks for leaked goroutines when it ends)

	// Default client configuration: the test CA is not a system root.
	h2 := newTestHandler()
	s2 := startStreams(t, StreamsOptions{}, h2)
	go func() {
		if c, err := peer.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	s2.WriteTo(TLS, []byte(m), pa)
	select {
	case u := <-h2.unreach:
		var uerr x509.UnknownAuthorityError
		if u.payload != m || !errors.As(u.err, &uerr) {
			t.Fatalf("unreachable %q %v", u.payload, u.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no unreachable report")
	}
	if st := s2.Stats(); st.ConnectFailures != 1 {
		t.Fatalf("stats %+v", st)
	}
}
