// Package browser is the real-browser interop test: JsSIP (npm) in headless
// Debian Chromium registers over secure WebSocket (wss:) to the SIP server
// under test and places a call that the server relays over UDP to a SIPp
// answerer; the call is confirmed (200 OK + ACK), hung up (BYE answered)
// and the browser unregisters. In the other direction a SIPp caller calls
// the registered browser through the server, which the browser answers;
// the caller's BYE reaches it along the route set. See README.md.
//
// Environment:
//
//	VELOX_BROWSER_SERVER  which server(s): velox (default), kamailio, all,
//	                      or a comma-separated list
//	VELOX_BROWSER_TEST=1  a missing piece (node, node_modules, chromium,
//	                      sipp, kamailio) fails the test instead of
//	                      skipping it
//	CHROMIUM_PATH         the browser (default /usr/bin/chromium)
//	VELOX_BIN             a prebuilt velox binary (else ./cmd/velox is built)
package browser

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sipptest.CleanupBuilds()
	os.Exit(code)
}

// domain is the SIP domain the browser registers in; no DNS is involved
// (the servers route by user name and registered contact).
const domain = "velox.test"

// serverEnv is what a server under test is started with.
type serverEnv struct {
	Dir    string // a temporary directory for its files
	UDP    string // 127.0.0.1:port: UDP listener (readiness OPTIONS, SIPp side)
	WSS    string // 127.0.0.1:port: TLS listener for WebSocket (wss://)
	Cert   string // PEM certificate file (self-signed, for 127.0.0.1 and localhost)
	Key    string // PEM private key file (PKCS #8)
	Answer string // 127.0.0.1:port: the SIPp answerer; calls to sip:answer@domain go there
	Domain string
	User   string // the browser's user name
	// Password, when set, makes the server challenge REGISTER and new
	// INVITEs (digest, MD5) and accept User with this password.
	Password string
}

// serverUnderTest is one SIP server the browser test runs against: its
// config file is in this directory, start runs it (returning once it
// answers OPTIONS over UDP and stopping it on cleanup) and returns the
// wss:// URL the browser connects to. A start function may t.Skip when
// the server cannot do WebSocket yet.
type serverUnderTest struct {
	name  string
	start func(t *testing.T, env serverEnv) string
}

func serversUnderTest() []serverUnderTest {
	return []serverUnderTest{
		{name: "velox", start: startVelox},
		{name: "kamailio", start: startKamailio},
	}
}

// selectedServers returns the servers named by VELOX_BROWSER_SERVER.
func selectedServers(t *testing.T) []serverUnderTest {
	sel := strings.TrimSpace(os.Getenv("VELOX_BROWSER_SERVER"))
	if sel == "" {
		sel = "velox"
	}
	all := serversUnderTest()
	if sel == "all" {
		return all
	}
	var out []serverUnderTest
	for _, name := range strings.Split(sel, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range all {
			if s.name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			t.Fatalf("VELOX_BROWSER_SERVER=%q: unknown server %q (velox, kamailio, all)", sel, name)
		}
	}
	return out
}

// strict reports whether missing pieces fail the test (VELOX_BROWSER_TEST=1).
func strict() bool {
	v := strings.ToLower(os.Getenv("VELOX_BROWSER_TEST"))
	return v != "" && v != "0" && v != "false" && v != "no"
}

// missing skips the test, or fails it when strict.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if strict() {
		t.Fatalf("VELOX_BROWSER_TEST is set: %s", msg)
	}
	t.Skip(msg + " (set VELOX_BROWSER_TEST=1 to make this a failure)")
}

func requireTool(t *testing.T, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found on PATH (%s)", name, how)
	}
	return p
}

// browserTools are the node executable, the browser and this directory.
type browserTools struct {
	node, chromium, dir string
}

func requireBrowserTools(t *testing.T) browserTools {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var bt browserTools
	bt.dir = dir
	bt.node = requireTool(t, "node", "apt-get install nodejs, Node 20 or later")
	bt.chromium = os.Getenv("CHROMIUM_PATH")
	if bt.chromium == "" {
		bt.chromium = "/usr/bin/chromium"
		if _, err := os.Stat(bt.chromium); err != nil {
			if p, err := exec.LookPath("chromium"); err == nil {
				bt.chromium = p
			}
		}
	}
	if _, err := os.Stat(bt.chromium); err != nil {
		missing(t, "no browser at %s (apt-get install chromium, or set CHROMIUM_PATH)", bt.chromium)
	}
	for _, pkg := range []string{"jssip", "playwright-core"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing(t, "node_modules/%s missing (run `npm ci` in test/browser)", pkg)
		}
	}
	return bt
}

// browserCase is one run of the browser against a server.
type browserCase struct {
	name string
	// serverPassword, when set, makes the server authenticate REGISTER
	// and new INVITEs; password is what the browser answers with.
	serverPassword, password string
	// failAt is the step the run must fail at ("" : every step passes,
	// and SIPp completes one call; else SIPp must see no call).
	failAt string
	// incoming: the browser does not call; once registered, a SIPp
	// caller (uac_to_browser.xml) calls it through the server's UDP
	// listener, it answers (run.mjs --mode answer) and the caller hangs up.
	incoming bool
}

var browserCases = []browserCase{
	{name: "no-auth"},
	{name: "digest-auth", serverPassword: "s3cret-Pa55", password: "s3cret-Pa55"},
	// The harness must notice a failure: a wrong password ends the run
	// at the register step with a non-zero exit.
	{name: "wrong-password", serverPassword: "s3cret-Pa55", password: "wrong", failAt: "register"},
	// A call to the browser: INVITE sip:alice@domain over UDP, lookup
	// over the WebSocket connection alice registered on, ACK and BYE
	// along the Record-Route set back to the browser.
	{name: "incoming-call", incoming: true},
}

// TestBrowserCall: a real browser (JsSIP in headless Chromium) registers
// over WSS, calls sip:answer@domain, which the server relays over UDP to
// SIPp; the call is confirmed, hung up with BYE, and the browser
// unregisters. SIPp must see exactly one successful call. Each server is
// run without authentication, with digest authentication of REGISTER and
// INVITE (JsSIP answering the 401 and 407 challenges), and with a wrong
// password (the run must fail at register); and, as callee, answering a
// SIPp caller's INVITE relayed to it over its WebSocket connection.
func TestBrowserCall(t *testing.T) {
	servers := selectedServers(t)
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			bt := requireBrowserTools(t)
			requireTool(t, "sipp", "apt-get install sip-tester")
			for _, c := range browserCases {
				t.Run(c.name, func(t *testing.T) {
					runBrowserCall(t, bt, srv, c)
				})
			}
		})
	}
}

// runResult is what run.mjs --json writes.
type runResult struct {
	OK         bool   `json:"ok"`
	FailedStep string `json:"failedStep"`
	Error      string `json:"error"`
	AnswerSDP  string `json:"answerSdp"`
	OfferSDP   string `json:"offerSdp"`
	Steps      []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		MS     int    `json:"ms"`
		Detail string `json:"detail"`
	} `json:"steps"`

	// Answer mode: the INVITE and BYE the browser received, and the
	// first line of its response to the BYE.
	InviteIn string `json:"inviteIn"`
	ByeIn    string `json:"byeIn"`
	ByeReply string `json:"byeReply"`
}

func runBrowserCall(t *testing.T, bt browserTools, srv serverUnderTest, c browserCase) {
	dir := t.TempDir()
	cert, key := writeSelfSignedCert(t, dir)

	uas := sipptest.StartTracedUASForTest(t, filepath.Join(bt.dir, "uas_webrtc.xml"))
	env := serverEnv{
		Dir:      dir,
		UDP:      fmt.Sprintf("127.0.0.1:%d", sipptest.UDPPort(t)),
		WSS:      fmt.Sprintf("127.0.0.1:%d", tcpPort(t)),
		Cert:     cert,
		Key:      key,
		Answer:   fmt.Sprintf("127.0.0.1:%d", uas.Opts.Port),
		Domain:   domain,
		User:     "alice",
		Password: c.serverPassword,
	}
	wss := srv.start(t, env)
	waitTLS(t, env.WSS, 10*time.Second)

	// The browser run, bounded: run.mjs stops itself after 50 s, this
	// kills its process group (node and Chromium) after 75 s.
	resultPath := filepath.Join(dir, "result.json")
	logPath := filepath.Join(dir, "browser.log")
	argv := []string{bt.node, filepath.Join(bt.dir, "run.mjs"),
		"--wss", wss, "--domain", domain, "--user", env.User, "--password", c.password,
		"--target", "sip:answer@" + domain,
		"--chromium", bt.chromium,
		"--hold-ms", "1000", "--timeout-ms", "50000",
		"--json", resultPath, "--trace"}
	readyPath := filepath.Join(dir, "ready")
	if c.incoming {
		argv = append(argv, "--mode", "answer", "--ready-file", readyPath, "--incoming-ms", "15000")
	}
	start := time.Now()
	p, err := sipptest.StartProc("browser", bt.dir, logPath, argv...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 75*time.Second)
	defer cancel()

	// The call to the browser, once it registered: SIPp calls
	// sip:alice@domain through the server's UDP listener.
	var uac *uacRun
	if c.incoming {
		if waitFile(ctx, readyPath, p) {
			uac = runCaller(t, bt, env, filepath.Join(dir, "uac"))
		} else {
			t.Errorf("the browser did not register (no %s): no call made", readyPath)
		}
	}
	_ = p.Wait(ctx)
	p.Stop(syscall.SIGKILL, 0) // no-op for an exited run but its stragglers
	code := p.ExitCode()
	elapsed := time.Since(start).Round(time.Millisecond)
	out, _ := os.ReadFile(logPath)

	var res runResult
	b, jsonErr := os.ReadFile(resultPath)
	if jsonErr == nil {
		jsonErr = json.Unmarshal(b, &res)
	}
	okSteps := map[string]bool{}
	for _, s := range res.Steps {
		okSteps[s.Name] = s.OK
	}
	switch {
	case jsonErr != nil:
		t.Errorf("no result from run.mjs (exit %d after %v): %v", code, elapsed, jsonErr)
	case c.failAt == "":
		steps := []string{"register", "call", "bye", "unregister"}
		if c.incoming {
			steps = []string{"register", "incoming", "answer", "remote-bye", "unregister"}
		}
		for _, s := range steps {
			if !okSteps[s] {
				t.Errorf("step %s did not succeed", s)
			}
		}
		if code != 0 || !res.OK {
			t.Errorf("browser run exited %d after %v: failed at step %q: %s", code, elapsed, res.FailedStep, res.Error)
		}
	default:
		if code != 1 || res.OK || res.FailedStep != c.failAt {
			t.Errorf("browser run exited %d after %v, failed step %q (%s); want exit 1 at step %q",
				code, elapsed, res.FailedStep, res.Error, c.failAt)
		}
	}
	if t.Failed() {
		t.Logf("browser run log (%s):\n%s", logPath, out)
	} else {
		t.Logf("browser run (%v, exit %d):\n%s", elapsed, code, summary(string(out)))
	}

	// The answerer's side: exactly one call, answered and ended by the
	// browser's BYE, that came from a WebSocket client through the server
	// (none when the run is to fail before the call).
	st, msgs, err := sipptest.UASMessages(uas)
	if err != nil {
		t.Fatalf("sipp answerer: %v", err)
	}
	calls, invites := 1, map[string]int{"INVITE": 1, "ACK": 1, "BYE": 1}
	if c.incoming || c.failAt == "register" || c.failAt == "connect" || c.failAt == "media" {
		calls, invites = 0, map[string]int{"INVITE": 0, "ACK": 0, "BYE": 0}
	}
	if st.Created != int64(calls) || st.Successful != int64(calls) || st.Failed != 0 {
		t.Errorf("sipp answerer: want %d call(s), %d successful, 0 failed; got %d created, %d successful, %d failed (unexpected %d, recv timeouts %d)",
			calls, calls, st.Created, st.Successful, st.Failed, st.Unexpected, st.TimeoutOnRecv)
	}
	for what, want := range invites {
		if got := len(msgs.Received(what)); got != want {
			t.Errorf("sipp answerer received %d %s, want %d", got, what, want)
		}
	}
	if inv := msgs.Received("INVITE"); len(inv) > 0 {
		if !hasWSVia(inv[0].Text) {
			t.Errorf("the INVITE SIPp received has no WS/WSS Via (not from the browser?):\n%s", inv[0].Text)
		}
		if inv[0].Header("Record-Route") == "" {
			t.Errorf("the INVITE SIPp received is not record-routed:\n%s", inv[0].Text)
		}
	}
	if t.Failed() && len(msgs) > 0 {
		t.Logf("sipp answerer messages:\n%s", msgs.Summary())
	}
	if c.incoming && uac != nil {
		checkIncomingCall(t, env, res, uac)
	}
}

// uacRun is the SIPp caller's run for the incoming-call case.
type uacRun struct {
	res  sipptest.Result
	msgs sipptest.MessageLog
	err  error // reading its message log
}

// runCaller runs uac_to_browser.xml once: one call to sip:alice@domain
// sent to the server's UDP address, bounded by 15 s.
func runCaller(t *testing.T, bt browserTools, env serverEnv, dir string) *uacRun {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	msgLog := filepath.Join(dir, "uac_messages.log")
	extra := append([]string{"-key", "domain", env.Domain}, sipptest.TraceMsgArgs(msgLog)...)
	res := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario:  filepath.Join(bt.dir, "uac_to_browser.xml"),
		Target:    env.UDP,
		Service:   env.User,
		Calls:     1,
		Rate:      10, // -r 1 would wait a second before the first call
		Timeout:   15 * time.Second,
		Dir:       dir,
		ExtraArgs: extra,
	})
	u := &uacRun{res: res}
	u.msgs, u.err = sipptest.ParseMessageLogFile(msgLog)
	return u
}

// checkIncomingCall checks the call to the browser from both ends: SIPp
// completed one call (200 with the browser's WebRTC answer, BYE sent with
// the route set and answered 200); the INVITE and the BYE the browser got
// came through the server over WSS (the server's Via on top, SIPp's UDP
// Via below), and the browser answered the BYE with 200.
func checkIncomingCall(t *testing.T, env serverEnv, res runResult, u *uacRun) {
	t.Helper()
	st := u.res.Stats
	if st.Created != 1 || st.Successful != 1 || st.Failed != 0 {
		t.Errorf("sipp caller: want 1 call, 1 successful, 0 failed; got %d created, %d successful, %d failed (exit %d, unexpected %d, recv timeouts %d)\n%s",
			st.Created, st.Successful, st.Failed, u.res.ExitCode, st.Unexpected, st.TimeoutOnRecv, u.res.ErrorsLog())
	}
	if u.err != nil {
		t.Errorf("sipp caller message log: %v", u.err)
	} else {
		contact, route := "", ""
		if ok := u.msgs.Received("200 INVITE"); len(ok) == 0 {
			t.Errorf("sipp caller received no 200 to its INVITE")
		} else if b := ok[0].Text; !strings.Contains(b, "a=fingerprint:") || !strings.Contains(b, "a=ice-ufrag:") {
			t.Errorf("the 200 SIPp received carries no WebRTC answer SDP (a=fingerprint, a=ice-ufrag):\n%s", b)
		} else {
			contact = ok[0].Header("Contact")
		}
		if bye := u.msgs.SentMsgs("BYE"); len(bye) == 0 {
			t.Errorf("sipp caller sent no BYE")
		} else if route = bye[0].Headers("Route"); route == "" {
			t.Errorf("sipp caller's BYE has no Route (no Record-Route in the 200?):\n%s", bye[0].Text)
		}
		// How the server made the browser reachable for the BYE: the
		// Contact the caller got (velox and Kamailio add ;alias=ip~port~6)
		// and the route set (double Record-Route: UDP side, WSS side).
		if contact != "" {
			t.Logf("sipp caller: 200 Contact %s; BYE Route %s", contact, route)
		}
		if len(u.msgs.Received("200 BYE")) == 0 {
			t.Errorf("sipp caller received no 200 to its BYE")
		}
	}
	for _, m := range []struct{ what, text string }{{"INVITE", res.InviteIn}, {"BYE", res.ByeIn}} {
		if m.text == "" {
			t.Errorf("the browser received no %s", m.what)
			continue
		}
		if m.what == "INVITE" && !strings.Contains(strings.ToLower(m.text), "\nrecord-route:") {
			t.Errorf("the INVITE the browser received is not record-routed:\n%s", m.text)
		}
		vias := viaValues(m.text)
		if len(vias) < 2 {
			t.Errorf("the %s the browser received has %d Via(s), want the server's and SIPp's:\n%s", m.what, len(vias), m.text)
			continue
		}
		// The server's Via: sent over WebSocket, from its WSS listener.
		top := strings.Fields(vias[0])
		if len(top) < 2 || !strings.EqualFold(top[0], "SIP/2.0/WSS") ||
			strings.SplitN(top[1], ";", 2)[0] != env.WSS {
			t.Errorf("the %s the browser received: top Via %q is not the server's (SIP/2.0/WSS %s):\n%s", m.what, vias[0], env.WSS, m.text)
		}
		if !strings.HasPrefix(strings.ToUpper(vias[len(vias)-1]), "SIP/2.0/UDP ") {
			t.Errorf("the %s the browser received: last Via %q is not SIPp's UDP Via", m.what, vias[len(vias)-1])
		}
	}
	if !strings.HasPrefix(res.ByeReply, "SIP/2.0 200 ") {
		t.Errorf("the browser answered the BYE with %q, want 200", res.ByeReply)
	}
	if t.Failed() && u.err == nil {
		t.Logf("sipp caller messages:\n%s", u.msgs.Summary())
	}
}

// viaValues returns the Via header field values of a SIP message, top
// first, one per comma-separated element.
func viaValues(msg string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")[1:] {
		if line == "" {
			break
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n := strings.ToLower(strings.TrimSpace(name)); n != "via" && n != "v" {
			continue
		}
		for _, v := range strings.Split(val, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// waitFile waits until path exists (true), or p exits or ctx ends (false).
func waitFile(ctx context.Context, path string, p *sipptest.Proc) bool {
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if p.Exited() {
			_, err := os.Stat(path)
			return err == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// summary returns the "steps:" table and RESULT line of a run.mjs log.
func summary(log string) string {
	if i := strings.LastIndex(log, "\nsteps:\n"); i >= 0 {
		return log[i+1:]
	}
	return log
}

// hasWSVia reports whether a Via header of the SIP message says WS or WSS
// (RFC 7118): the request came from a WebSocket client.
func hasWSVia(msg string) bool {
	for _, line := range strings.Split(msg, "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "via" && name != "v" {
			continue
		}
		for _, v := range strings.Split(val, ",") {
			f := strings.Fields(strings.TrimSpace(v))
			if len(f) > 0 {
				proto := strings.ToUpper(f[0])
				if proto == "SIP/2.0/WSS" || proto == "SIP/2.0/WS" {
					return true
				}
			}
		}
	}
	return false
}

// --- servers under test ----------------------------------------------------

// startKamailio runs kamailio-wss.cfg, the reference server.
func startKamailio(t *testing.T, env serverEnv) string {
	t.Helper()
	kam := requireTool(t, "kamailio", "apt-get install kamailio kamailio-tls-modules kamailio-websocket-modules")
	mods := sipptest.KamailioModulesDir()
	for _, m := range []string{"tls.so", "websocket.so", "xhttp.so"} {
		if _, err := os.Stat(filepath.Join(mods, m)); mods != "" && err != nil {
			missing(t, "kamailio module %s missing (apt-get install kamailio-tls-modules kamailio-websocket-modules)", m)
		}
	}
	cfg, err := filepath.Abs("kamailio-wss.cfg")
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{kam, "-f", cfg, "-DD", "-E", "-m", "64", "-M", "16", "-Y", env.Dir,
		"-A", "CHILDREN=2",
		"-A", "UDP_LISTEN=udp:" + env.UDP,
		"-A", "TLS_LISTEN=tls:" + env.WSS,
		"-A", `TLS_CERT="` + env.Cert + `"`,
		"-A", `TLS_KEY="` + env.Key + `"`,
		"-A", `ANSWER_DEST="sip:` + env.Answer + `"`}
	if env.Password != "" {
		argv = append(argv, "-A", `AUTH_PASSWORD="`+env.Password+`"`)
	}
	if mods != "" {
		argv = append(argv, "-L", mods)
	}
	sipptest.StartServerForTest(t, "kamailio", env.UDP, argv...)
	return "wss://" + env.WSS
}

// placeholder is a ${NAME} in velox-wss.yaml.
var placeholder = regexp.MustCompile(`\$\{[A-Z_]+\}`)

// startVelox runs velox with velox-wss.yaml. Until velox has a wss
// listener, `velox check` rejects the config and the run is skipped.
func startVelox(t *testing.T, env serverEnv) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil && os.Getenv("VELOX_BIN") == "" {
		missing(t, "go tool not on PATH and VELOX_BIN not set")
	}
	bin := sipptest.BuildVelox(t)
	tmpl, err := os.ReadFile("velox-wss.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The auth step needs its database even when its if: is false.
	db := filepath.Join(env.Dir, "velox.db")
	password := env.Password
	if password == "" {
		password = "unused-password"
	}
	if out, err := exec.Command(bin, "user", "add", "--db", db, env.User+"@"+env.Domain, "--", password).CombinedOutput(); err != nil {
		t.Fatalf("velox user add: %v\n%s", err, out)
	}
	vars := map[string]string{
		"UDP_ADDR": env.UDP, "WSS_ADDR": env.WSS,
		"TLS_CERT": env.Cert, "TLS_KEY": env.Key,
		"ANSWER_ADDR": env.Answer, "DOMAIN": env.Domain,
		"AUTH": strconv.FormatBool(env.Password != ""), "DB": db,
	}
	var unknown []string
	cfg := placeholder.ReplaceAllStringFunc(string(tmpl), func(m string) string {
		v, ok := vars[m[2:len(m)-1]]
		if !ok {
			unknown = append(unknown, m)
		}
		return v
	})
	if len(unknown) > 0 {
		t.Fatalf("velox-wss.yaml: unknown placeholders %v", unknown)
	}
	cfgPath := filepath.Join(env.Dir, "velox.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "-c", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("velox check -c %s: %v\n%s", cfgPath, err, out)
	}
	sipptest.StartServerForTest(t, "velox", env.UDP, bin, "run", "-c", cfgPath)
	return "wss://" + env.WSS
}

// --- helpers ---------------------------------------------------------------

// writeSelfSignedCert writes cert.pem and key.pem (ECDSA P-256, PKCS #8)
// for 127.0.0.1 and localhost, valid for a day, into dir.
func writeSelfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"velox browser test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// tcpPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func tcpPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitTLS waits until addr completes a TLS handshake (any certificate).
func waitTLS(t *testing.T, addr string, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		d := &net.Dialer{Timeout: time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err == nil {
			c.Close()
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no TLS handshake on %s after %v: %v", addr, wait, last)
}
