package interop

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

// startRegistrar runs `velox registrar` on a free port and returns it.
func startRegistrar(t *testing.T) string {
	t.Helper()
	bin := sipptest.BuildVelox(t)
	addr := fmt.Sprintf("127.0.0.1:%d", sipptest.UDPPort(t))
	sipptest.StartServerForTest(t, "velox", addr, bin, "registrar", "--listen", "udp:"+addr)
	return addr
}

func runRegister(t *testing.T, scenario, registrar, user string, contactPort int) sipptest.Result {
	t.Helper()
	return runRegisterOver(t, "u1", scenario, registrar, user, contactPort, "udp")
}

// runRegisterOver is runRegister with SIPp's transport (-t u1 or t1) and
// the transport parameter of the registered contact.
func runRegisterOver(t *testing.T, sippTransport, scenario, registrar, user string, contactPort int, contactTransport string) sipptest.Result {
	t.Helper()
	return sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario:  sipptest.Scenario(t, scenario),
		Target:    registrar,
		Service:   user,
		Transport: sippTransport,
		Calls:     1,
		Timeout:   15 * time.Second,
		Dir:       t.TempDir(),
		ExtraArgs: []string{"-key", "contact_port", strconv.Itoa(contactPort), "-key", "contact_transport", contactTransport},
	})
}

// TestRegistrarLifeCycle: REGISTER, refresh and unregister through a real
// SIPp, each 200 checked for the contact and its expiry.
func TestRegistrarLifeCycle(t *testing.T) {
	sipptest.RequireSipp(t)
	reg := startRegistrar(t)
	res := runRegister(t, "register/register.xml", reg, "alice", 5099)
	if res.Stats.Successful != 1 || res.Stats.Failed != 0 {
		t.Fatalf("register scenario: %+v\n%s", res.Stats, res.ErrorsLog())
	}
}

// TestRegistrarCallToRegisteredUser: a callee registers its contact, then
// a call to its address-of-record through velox reaches it.
func TestRegistrarCallToRegisteredUser(t *testing.T) {
	sipptest.RequireSipp(t)
	reg := startRegistrar(t)
	uas := callee(t, "uas.xml")
	res := runRegister(t, "register/register_once.xml", reg, "bob", uas.Opts.Port)
	if res.Stats.Successful != 1 {
		t.Fatalf("register: %+v\n%s", res.Stats, res.ErrorsLog())
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "uac_messages.log")
	call := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario: sipptest.Scenario(t, "uac.xml"), Target: reg, Service: "bob",
		Calls: 1, Timeout: 15 * time.Second, Dir: dir, ExtraArgs: sipptest.TraceMsgArgs(logPath),
	})
	msgs, _ := sipptest.ParseMessageLogFile(logPath)
	wantCallsOK(t, call, msgs, 1)
	got := calleeResult(t, "registered callee", uas, 1)
	wantReceived(t, "registered callee", got, "INVITE", 1)
}

// TestRegistrarDigestAuth: REGISTER challenged with 401 and accepted with
// the right password (SIPp computes the MD5 digest), refused with a wrong
// one.
func TestRegistrarDigestAuth(t *testing.T) {
	sipptest.RequireSipp(t)
	bin := sipptest.BuildVelox(t)
	db := filepath.Join(t.TempDir(), "users.db")
	if out, err := exec.Command(bin, "user", "add", "--db", db, "alice@example.com", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("velox user add: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sipptest.UDPPort(t))
	sipptest.StartServerForTest(t, "velox", addr, bin, "registrar", "--listen", "udp:"+addr,
		"--domain", "example.com", "--auth", "--db", db, "--auth-algorithms", "MD5")
	for _, c := range []struct{ scenario, password string }{
		{"register/register_auth_ok.xml", "s3cret"},
		{"register/register_auth_wrong.xml", "guess"},
	} {
		res := sipptest.RunUACForTest(t, sipptest.UACOptions{
			Scenario: sipptest.Scenario(t, c.scenario), Target: addr, Service: "alice",
			Calls: 1, Timeout: 15 * time.Second, Dir: t.TempDir(),
			ExtraArgs: []string{"-au", "alice", "-ap", c.password},
		})
		if res.Stats.Successful != 1 || res.Stats.Failed != 0 {
			t.Errorf("%s: %+v\n%s", c.scenario, res.Stats, res.ErrorsLog())
		}
	}
}

// TestRegistrarRestartKeepsBindings: with write-back persistence, a
// binding saved before a restart still routes a call after it.
func TestRegistrarRestartKeepsBindings(t *testing.T) {
	sipptest.RequireSipp(t)
	bin := sipptest.BuildVelox(t)
	db := filepath.Join(t.TempDir(), "loc.db")
	addr := fmt.Sprintf("127.0.0.1:%d", sipptest.UDPPort(t))
	args := []string{bin, "registrar", "--listen", "udp:" + addr, "--db", db, "--persistence", "write-back"}
	first := sipptest.StartServerForTest(t, "velox", addr, args...)
	uas := callee(t, "uas.xml")
	if res := runRegister(t, "register/register_once.xml", addr, "bob", uas.Opts.Port); res.Stats.Successful != 1 {
		t.Fatalf("register: %+v\n%s", res.Stats, res.ErrorsLog())
	}
	first.Stop(syscall.SIGTERM, 5*time.Second) // a clean stop flushes the write-back queue
	if !first.Exited() {
		t.Fatal("velox did not stop")
	}
	sipptest.StartServerForTest(t, "velox-restarted", addr, args...)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "uac_messages.log")
	call := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario: sipptest.Scenario(t, "uac.xml"), Target: addr, Service: "bob",
		Calls: 1, Timeout: 15 * time.Second, Dir: dir, ExtraArgs: sipptest.TraceMsgArgs(logPath),
	})
	msgs, _ := sipptest.ParseMessageLogFile(logPath)
	wantCallsOK(t, call, msgs, 1)
	got := calleeResult(t, "registered callee", uas, 1)
	wantReceived(t, "registered callee", got, "INVITE", 1)
}
