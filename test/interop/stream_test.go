package interop

// Interop tests over the stream transports: SIPp calls and registrations
// over TCP, and over TLS. Debian's SIPp is built without TLS, so for TLS
// stunnel (OpenSSL) carries SIPp's TCP connection to velox's tls listener:
// SIPp still produces and checks every SIP message, and the TLS handshake
// and records are OpenSSL's, not ours.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

// startVeloxOn runs velox (cmd and its flags) listening on UDP and TCP at
// 127.0.0.1:port, plus whatever listen flags extra adds, and returns the
// address.
func startVeloxOn(t *testing.T, cmd string, extra ...string) (addr string, port int) {
	t.Helper()
	bin := sipptest.BuildVelox(t)
	port = sipptest.Port(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{bin, cmd, "--listen", "udp:" + addr, "--listen", "tcp:" + addr}, extra...)
	sipptest.StartServerForTest(t, "velox", addr, args...)
	return addr, port
}

// tcpCaller runs calls SIPp calls of uac.xml to target over SIPp
// transport mode transport and returns what the caller saw.
func tcpCaller(t *testing.T, transport, target, service string, calls int) (sipptest.Result, sipptest.MessageLog) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "uac_messages.log")
	res := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario: sipptest.Scenario(t, "uac.xml"), Target: target, Service: service, Transport: transport,
		Calls: calls, Rate: 10, Timeout: 20 * time.Second, Dir: dir, ExtraArgs: sipptest.TraceMsgArgs(logPath),
	})
	msgs, err := sipptest.ParseMessageLogFile(logPath)
	if err != nil {
		t.Errorf("caller message log: %v", err)
	}
	return res, msgs
}

// TestTCPCalls: calls through the stateful proxy with TCP on one side or
// both. The callee's INVITE carries our Via for its transport, and two
// Record-Routes with r2=on when the transport changes (RFC 5658); ACK and
// BYE follow that route set back through the proxy.
func TestTCPCalls(t *testing.T) {
	sipptest.RequireSipp(t)
	for _, c := range []struct{ name, caller, callee string }{
		{"tcp-tcp", "t1", "t1"},
		{"tcp-udp", "t1", "u1"},
		{"udp-tcp", "u1", "t1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			const calls = 20
			uas := sipptest.StartUASOverForTest(t, c.callee, sipptest.Scenario(t, "uas.xml"),
				sipptest.TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log"))...)
			to := fmt.Sprintf("udp:127.0.0.1:%d", uas.Opts.Port)
			if c.callee == "t1" {
				to = fmt.Sprintf("tcp:127.0.0.1:%d", uas.Opts.Port)
			}
			addr, _ := startVeloxOn(t, "proxy", "--to", to)
			res, msgs := tcpCaller(t, c.caller, addr, "bench", calls)
			wantCallsOK(t, res, msgs, calls)
			got := calleeResult(t, "callee", uas, calls)
			wantReceived(t, "callee", got, "INVITE", calls)
			wantReceived(t, "callee", got, "BYE", calls)
			inv := got.Received("INVITE")
			if len(inv) == 0 {
				return
			}
			via := strings.ToUpper(inv[0].Header("Via"))
			wantVia := map[string]string{"t1": "SIP/2.0/TCP", "u1": "SIP/2.0/UDP"}[c.callee]
			if !strings.HasPrefix(via, wantVia) {
				t.Errorf("callee's INVITE has Via %q, want %s", via, wantVia)
			}
			rr := inv[0].Headers("Record-Route")
			if c.caller != c.callee && strings.Count(rr, "r2=on") != 2 {
				t.Errorf("transport changes: want two Record-Route entries with r2=on, got %q", rr)
			}
			if c.caller == c.callee && strings.Contains(rr, "r2=on") {
				t.Errorf("same transport: want one plain Record-Route, got %q", rr)
			}
		})
	}
}

// TestTCPRegisterAndCall: a phone registers over TCP with a
// transport=tcp contact; a call from UDP reaches it over TCP.
func TestTCPRegisterAndCall(t *testing.T) {
	sipptest.RequireSipp(t)
	uas := sipptest.StartUASOverForTest(t, "t1", sipptest.Scenario(t, "uas.xml"),
		sipptest.TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log"))...)
	addr, _ := startVeloxOn(t, "registrar")
	if res := runRegisterOver(t, "t1", "register/register_once.xml", addr, "bob", uas.Opts.Port, "tcp"); res.Stats.Successful != 1 {
		t.Fatalf("register over TCP: %+v\n%s", res.Stats, res.ErrorsLog())
	}
	res, msgs := tcpCaller(t, "u1", addr, "bob", 3)
	wantCallsOK(t, res, msgs, 3)
	got := calleeResult(t, "registered callee", uas, 3)
	wantReceived(t, "registered callee", got, "INVITE", 3)
}

// TestTLSCallsAndRegister: SIPp behind stunnel registers and calls over
// TLS; the call leaves over UDP to a SIPp callee.
func TestTLSCallsAndRegister(t *testing.T) {
	sipptest.RequireSipp(t)
	stunnel := sipptest.RequireTool(t, "stunnel4", "stunnel4")
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	uas := sipptest.StartUASOverForTest(t, "u1", sipptest.Scenario(t, "uas.xml"),
		sipptest.TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log"))...)
	tlsPort := sipptest.Port(t)
	startVeloxOn(t, "registrar", "--listen", fmt.Sprintf("tls:127.0.0.1:%d", tlsPort),
		"--tls-cert", cert, "--tls-key", key)
	front := startStunnel(t, stunnel, dir, tlsPort)

	// REGISTER over TLS, the contact is the UDP callee.
	if res := runRegisterOver(t, "t1", "register/register_once.xml", front, "bob", uas.Opts.Port, "udp"); res.Stats.Successful != 1 {
		t.Fatalf("register over TLS: %+v\n%s", res.Stats, res.ErrorsLog())
	}
	// Calls over TLS to the registered user.
	const calls = 5
	res, msgs := tcpCaller(t, "t1", front, "bob", calls)
	wantCallsOK(t, res, msgs, calls)
	got := calleeResult(t, "callee", uas, calls)
	wantReceived(t, "callee", got, "INVITE", calls)
	if inv := got.Received("INVITE"); len(inv) > 0 {
		if rr := inv[0].Headers("Record-Route"); !strings.Contains(rr, "transport=tls") || strings.Count(rr, "r2=on") != 2 {
			t.Errorf("TLS to UDP: want a double Record-Route naming the tls listener, got %q", rr)
		}
	}
}

// startStunnel runs a stunnel client accepting plain TCP on a free port of
// 127.0.0.1 and connecting with TLS to tlsPort; it returns the plain
// address for SIPp.
func startStunnel(t *testing.T, stunnel, dir string, tlsPort int) string {
	t.Helper()
	plain := sipptest.Port(t)
	conf := filepath.Join(dir, "stunnel.conf")
	body := fmt.Sprintf("foreground = yes\npid =\ndebug = 4\n[sip]\nclient = yes\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\nverifyPeer = no\nverifyChain = no\n", plain, tlsPort)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := sipptest.StartProc("stunnel", dir, filepath.Join(dir, "stunnel.log"), stunnel, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(syscall.SIGTERM, 2*time.Second) })
	deadline := time.Now().Add(5 * time.Second)
	for !sipptest.TCPListening(plain) {
		if p.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "stunnel.log"))
			t.Fatalf("stunnel did not listen on %d:\n%s", plain, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Sprintf("127.0.0.1:%d", plain)
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "velox test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTCPConnectRefusedFailover: the first destination refuses the TCP
// connection; the branch fails at once (no 30 s timer) and the call goes
// to the second destination.
func TestTCPConnectRefusedFailover(t *testing.T) {
	sipptest.RequireSipp(t)
	uas := sipptest.StartUASOverForTest(t, "t1", sipptest.Scenario(t, "uas.xml"),
		sipptest.TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log"))...)
	dead := sipptest.Port(t) // nothing listens there
	addr, _ := startVeloxOn(t, "proxy", "--to", fmt.Sprintf("tcp:127.0.0.1:%d", dead), "--to", fmt.Sprintf("tcp:127.0.0.1:%d", uas.Opts.Port))
	start := time.Now()
	res, msgs := tcpCaller(t, "t1", addr, "bench", 3)
	wantCallsOK(t, res, msgs, 3)
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("3 calls took %v: the refused connection did not fail its branch at once", el)
	}
	calleeResult(t, "second destination", uas, 3)
}

// TestTCPCallsIPv6: the same calls over TCP on ::1: IPv6 literals in the
// Request-URI, Via, Record-Route and Route, and connections both ways.
func TestTCPCallsIPv6(t *testing.T) {
	sipptest.RequireSipp(t)
	if c, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	const calls = 5
	uas := sipptest.StartUASOnForTest(t, "::1", "t1", sipptest.Scenario(t, "uas.xml"),
		sipptest.TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log"))...)
	bin := sipptest.BuildVelox(t)
	port := sipptest.Port(t)
	addr := fmt.Sprintf("[::1]:%d", port)
	sipptest.StartServerForTest(t, "velox", addr, bin, "proxy", "--listen", "udp:"+addr, "--listen", "tcp:"+addr,
		"--to", fmt.Sprintf("tcp:[::1]:%d", uas.Opts.Port))
	dir := t.TempDir()
	logPath := filepath.Join(dir, "uac_messages.log")
	res := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario: sipptest.Scenario(t, "uac.xml"), Target: addr, Transport: "t1", IP: "::1",
		Calls: calls, Rate: 10, Timeout: 20 * time.Second, Dir: dir, ExtraArgs: sipptest.TraceMsgArgs(logPath),
	})
	msgs, _ := sipptest.ParseMessageLogFile(logPath)
	wantCallsOK(t, res, msgs, calls)
	got := calleeResult(t, "callee", uas, calls)
	wantReceived(t, "callee", got, "BYE", calls)
	if inv := got.Received("INVITE"); len(inv) > 0 {
		if via := inv[0].Header("Via"); !strings.HasPrefix(via, "SIP/2.0/TCP "+addr+";") {
			t.Errorf("callee's INVITE has Via %q, want our [::1] TCP Via first", via)
		}
		if rr := inv[0].Headers("Record-Route"); !strings.Contains(rr, "<sip:"+addr+";transport=tcp;lr>") {
			t.Errorf("Record-Route %q, want <sip:%s;transport=tcp;lr>", rr, addr)
		}
	}
}
