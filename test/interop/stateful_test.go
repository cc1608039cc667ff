package interop

// Interop tests of the transaction-stateful proxy (velox proxy without
// --stateless), with Kamailio (bench/kamailio/failover.cfg) run through the
// same SIPp scenarios as the reference: each TestStateful<Case> has the
// subtests "kamailio" and "velox". The scenarios are in
// bench/scenarios/stateful; the callee scenarios log every message
// (-trace_msg) so the tests can count what reached each callee.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

// statefulSetup is how the proxy under test is configured.
type statefulSetup struct {
	// dests are the UDP ports on 127.0.0.1 of the destinations, in the
	// order of serial failover.
	dests []int
	// parallel forks to all destinations at once.
	parallel bool
	// fr is the final-response timer (0: the default), frInv the INVITE
	// timer after a provisional response (0: the default).
	fr, frInv time.Duration
}

// statefulServer is one implementation of the stateful proxy under test.
type statefulServer struct {
	name string
	// start runs the proxy on 127.0.0.1:listen.
	start func(t *testing.T, listen int, s statefulSetup)
}

func statefulServers() []statefulServer {
	return []statefulServer{
		{name: "kamailio", start: func(t *testing.T, listen int, s statefulSetup) {
			kam := sipptest.RequireKamailio(t)
			cfg := sipptest.RepoPath(t, "bench/kamailio/failover.cfg")
			addr := fmt.Sprintf("127.0.0.1:%d", listen)
			args := sipptest.KamailioArgs(cfg, 1, addr, fmt.Sprintf("127.0.0.1:%d", s.dests[0]))
			for i, p := range s.dests[1:] {
				if i >= 2 {
					t.Fatal("failover.cfg takes at most 3 destinations")
				}
				args = append(args, "-A", fmt.Sprintf(`DEST%d="sip:127.0.0.1:%d"`, i+2, p))
			}
			if s.parallel {
				args = append(args, "-A", "FORK_PARALLEL")
			}
			if s.fr > 0 {
				args = append(args, "-A", "FR_TIMER="+strconv.FormatInt(s.fr.Milliseconds(), 10))
			}
			if s.frInv > 0 {
				args = append(args, "-A", "FR_INV_TIMER="+strconv.FormatInt(s.frInv.Milliseconds(), 10))
			}
			sipptest.StartServerForTest(t, "kamailio", addr, append([]string{kam}, args...)...)
		}},
		{name: "velox", start: func(t *testing.T, listen int, s statefulSetup) {
			if _, err := exec.LookPath("go"); err != nil {
				t.Skip("go tool not on PATH")
			}
			bin := sipptest.BuildVelox(t)
			addr := fmt.Sprintf("127.0.0.1:%d", listen)
			args := []string{bin, "proxy", "--listen", "udp:" + addr}
			for _, p := range s.dests {
				args = append(args, "--to", fmt.Sprintf("127.0.0.1:%d", p))
			}
			if s.parallel {
				args = append(args, "--fork", "parallel")
			}
			if s.fr > 0 {
				args = append(args, "--fr-timeout", s.fr.String())
			}
			if s.frInv > 0 {
				args = append(args, "--fr-inv-timeout", s.frInv.String())
			}
			sipptest.StartServerForTest(t, "velox", addr, args...)
		}},
	}
}

// forEachStateful runs body as one subtest per implementation, one after
// the other (the timing assertions want an idle machine).
func forEachStateful(t *testing.T, body func(t *testing.T, srv statefulServer)) {
	sipptest.RequireSipp(t)
	for _, s := range statefulServers() {
		t.Run(s.name, func(t *testing.T) { body(t, s) })
	}
}

// startStatefulProxy starts srv with setup and returns its host:port.
func startStatefulProxy(t *testing.T, srv statefulServer, setup statefulSetup) string {
	t.Helper()
	listen := sipptest.UDPPort(t)
	srv.start(t, listen, setup)
	return fmt.Sprintf("127.0.0.1:%d", listen)
}

// callee starts a SIPp UAS running bench/scenarios/<scenario> that logs
// every message it sends and receives.
func callee(t *testing.T, scenario string) *sipptest.UAS {
	t.Helper()
	return sipptest.StartTracedUASForTest(t, sipptest.Scenario(t, scenario))
}

// caller runs calls SIPp calls of bench/scenarios/<scenario> through proxy,
// bounded to 15 s, and returns the result and the caller's message log.
func caller(t *testing.T, scenario, proxy string, calls int, rtt bool, extra ...string) (sipptest.Result, sipptest.MessageLog) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "uac_messages.log")
	res := sipptest.RunUACForTest(t, sipptest.UACOptions{
		Scenario:  sipptest.Scenario(t, scenario),
		Target:    proxy,
		Calls:     calls,
		Rate:      10,
		Timeout:   15 * time.Second,
		RTT:       rtt,
		Dir:       dir,
		ExtraArgs: append(sipptest.TraceMsgArgs(logPath), extra...),
	})
	msgs, err := sipptest.ParseMessageLogFile(logPath)
	if err != nil {
		t.Errorf("caller message log: %v", err)
	}
	return res, msgs
}

// wantCallsOK fails the test unless SIPp ran calls successful calls and
// none failed.
func wantCallsOK(t *testing.T, res sipptest.Result, msgs sipptest.MessageLog, calls int) {
	t.Helper()
	if res.Stats.Successful != int64(calls) || res.Stats.Failed != 0 || res.ExitCode != 0 {
		logFailure(t, res)
		t.Logf("caller messages:\n%s", msgs.Summary())
		t.Fatalf("caller: want %d successful calls and 0 failed, got %d ok, %d failed (sipp exit %d)",
			calls, res.Stats.Successful, res.Stats.Failed, res.ExitCode)
	}
}

// calleeResult stops u and returns its message log, failing the test
// unless it completed calls calls and failed none.
func calleeResult(t *testing.T, name string, u *sipptest.UAS, calls int) sipptest.MessageLog {
	t.Helper()
	st, msgs, err := sipptest.UASMessages(u)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if st.Successful != int64(calls) || st.Failed != 0 {
		t.Errorf("%s: want %d completed calls and 0 failed, got %d ok, %d failed (unexpected messages %d, recv timeouts %d, max retrans %d)",
			name, calls, st.Successful, st.Failed, st.Unexpected, st.TimeoutOnRecv, st.MaxUDPRetrans)
		t.Logf("%s messages:\n%s", name, msgs.Summary())
	}
	return msgs
}

// wantReceived fails the test unless who received exactly want messages
// matching what (see sipptest.Message.Is).
func wantReceived(t *testing.T, who string, msgs sipptest.MessageLog, what string, want int) {
	t.Helper()
	if got := len(msgs.Received(what)); got != want {
		t.Errorf("%s received %d %q, want %d; messages:\n%s", who, got, what, want, msgs.Summary())
	}
}

// topBranch returns the branch parameter of the first Via of m.
func topBranch(m sipptest.Message) string {
	via := m.Header("Via")
	via, _, _ = strings.Cut(via, ",")
	for _, p := range strings.Split(via, ";")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "branch") {
			return v
		}
	}
	return ""
}

// wantSameBranch fails the test unless the first received message matching
// what has the Via branch of the received INVITE (CANCEL, RFC 3261 9.1;
// ACK of a non-2xx final response, 17.1.1.3).
func wantSameBranch(t *testing.T, who string, msgs sipptest.MessageLog, what string) {
	t.Helper()
	inv, m := msgs.Received("INVITE"), msgs.Received(what)
	if len(inv) == 0 || len(m) == 0 {
		return // reported by the counts
	}
	if a, b := topBranch(inv[0]), topBranch(m[0]); a == "" || a != b {
		t.Errorf("%s: %s has Via branch %q, the INVITE %q; want the same", who, what, b, a)
	}
}

// TestStatefulBasicCall (case 1): plain calls through the stateful proxy:
// INVITE, 200, ACK and BYE routed through it (Record-Route), each request
// reaching the callee once.
func TestStatefulBasicCall(t *testing.T) { forEachStateful(t, statefulBasicCall) }

func statefulBasicCall(t *testing.T, srv statefulServer) {
	const calls = 5
	uas := callee(t, "uas.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{uas.Opts.Port}})

	res, msgs := caller(t, "uac.xml", proxy, calls, false)
	wantCallsOK(t, res, msgs, calls)
	wantReceived(t, "caller", msgs, "200 INVITE", calls)

	got := calleeResult(t, "callee", uas, calls)
	wantReceived(t, "callee", got, "INVITE", calls)
	wantReceived(t, "callee", got, "ACK", calls)
	wantReceived(t, "callee", got, "BYE", calls)
	for _, inv := range got.Received("INVITE") {
		if inv.Header("Record-Route") == "" {
			t.Fatalf("INVITE reached the callee without Record-Route:\n%s", inv.Text)
		}
	}
}

// TestStatefulRetransmittedInvite (case 2): the caller sends its INVITE a
// second time, byte for byte, 300 ms after the proxy's 100: the proxy
// answers the retransmission with its last provisional response and does not
// forward it; the slow callee (100, 1 s, 180, 0.5 s, 200) sees a single
// INVITE.
func TestStatefulRetransmittedInvite(t *testing.T) { forEachStateful(t, statefulRetransmittedInvite) }

func statefulRetransmittedInvite(t *testing.T, srv statefulServer) {
	uas := callee(t, "stateful/uas_slow.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{uas.Opts.Port}})

	// -nr: see uac_retrans.xml (SIPp's retransmission detection would
	// loop on the proxy's identical 100).
	res, msgs := caller(t, "stateful/uac_retrans.xml", proxy, 1, false, "-nr")
	wantCallsOK(t, res, msgs, 1)
	if inv := msgs.SentMsgs("INVITE"); len(inv) != 2 || inv[0].Text != inv[1].Text {
		t.Fatalf("scenario error: the caller must send 2 identical INVITEs; messages:\n%s", msgs.Summary())
	}
	// RFC 3261 17.2.1: a retransmission in Proceeding gets the most
	// recent provisional response again.
	wantReceived(t, "caller", msgs, "100 INVITE", 2)
	wantReceived(t, "caller", msgs, "200 INVITE", 1)

	got := calleeResult(t, "callee", uas, 1)
	wantReceived(t, "callee", got, "INVITE", 1)
}

// TestStatefulCallerCancel (case 3): the caller CANCELs while the callee
// rings: 200 to the CANCEL from the proxy, CANCEL forwarded to the callee,
// its 487 relayed to the caller, ACKed hop by hop on both sides.
func TestStatefulCallerCancel(t *testing.T) { forEachStateful(t, statefulCallerCancel) }

func statefulCallerCancel(t *testing.T, srv statefulServer) {
	uas := callee(t, "stateful/uas_cancel.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{uas.Opts.Port}})

	res, msgs := caller(t, "stateful/uac_cancel.xml", proxy, 1, false)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "200 CANCEL", 1)
	wantReceived(t, "caller", msgs, "487 INVITE", 1)
	wantReceived(t, "caller", msgs, "200 INVITE", 0)

	got := calleeResult(t, "callee", uas, 1)
	wantReceived(t, "callee", got, "INVITE", 1)
	wantReceived(t, "callee", got, "CANCEL", 1)
	wantReceived(t, "callee", got, "ACK", 1)
	wantSameBranch(t, "callee", got, "CANCEL")
	wantSameBranch(t, "callee", got, "ACK")
}

// TestStatefulFailoverBusy (case 4): serial failover on a busy destination:
// the first callee answers 486 (and gets the proxy's ACK), the second
// answers; the caller sees only the 200.
func TestStatefulFailoverBusy(t *testing.T) { forEachStateful(t, statefulFailoverBusy) }

func statefulFailoverBusy(t *testing.T, srv statefulServer) {
	busy := callee(t, "stateful/uas_busy.xml")
	ok := callee(t, "uas.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{busy.Opts.Port, ok.Opts.Port}})

	res, msgs := caller(t, "uac.xml", proxy, 1, false)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "486", 0)
	wantReceived(t, "caller", msgs, "200 INVITE", 1)

	b := calleeResult(t, "busy callee", busy, 1)
	wantReceived(t, "busy callee", b, "INVITE", 1)
	wantReceived(t, "busy callee", b, "ACK", 1)
	wantSameBranch(t, "busy callee", b, "ACK")

	o := calleeResult(t, "second callee", ok, 1)
	wantReceived(t, "second callee", o, "INVITE", 1)
	wantReceived(t, "second callee", o, "BYE", 1)
}

// TestStatefulFailoverTimeout (case 5): serial failover on a dead
// destination: the first callee never answers; after the final-response
// timer (2 s) the second is tried and answers.
func TestStatefulFailoverTimeout(t *testing.T) { forEachStateful(t, statefulFailoverTimeout) }

func statefulFailoverTimeout(t *testing.T, srv statefulServer) {
	const fr = 2 * time.Second
	silent := callee(t, "stateful/uas_silent.xml")
	ok := callee(t, "uas.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{silent.Opts.Port, ok.Opts.Port}, fr: fr})

	res, msgs := caller(t, "uac.xml", proxy, 1, true)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "200 INVITE", 1)
	wantReceived(t, "caller", msgs, "408", 0)
	// Response time 1 of uac.xml is INVITE -> 200.
	if l, found := res.RTT[1]; !found || l.Count != 1 {
		t.Errorf("no INVITE->200 response time measured: %+v", res.RTT)
	} else {
		t.Logf("INVITE->200 took %.0f ms (final-response timer %v)", l.Max, fr)
		if min, max := float64(fr.Milliseconds())*3/4, float64(fr.Milliseconds())+1000; l.Max < min || l.Max > max {
			t.Errorf("INVITE->200 took %.0f ms, want about the %v timer (%.0f..%.0f ms)", l.Max, fr, min, max)
		}
	}

	s := calleeResult(t, "silent callee", silent, 1)
	if n := len(s.Received("INVITE")); n < 1 || n != countReceived(s) {
		t.Errorf("silent callee: want only INVITEs (retransmissions allowed; no CANCEL before a provisional response, RFC 3261 9.1); messages:\n%s", s.Summary())
	}

	o := calleeResult(t, "second callee", ok, 1)
	wantReceived(t, "second callee", o, "INVITE", 1)
}

// countReceived returns how many messages of the log were received.
func countReceived(msgs sipptest.MessageLog) int {
	n := 0
	for _, m := range msgs {
		if !m.Sent {
			n++
		}
	}
	return n
}

// TestStatefulParallelFork (case 6): parallel forking: both callees get the
// INVITE; the first rings then answers after 1.5 s, the second rings and
// must be CANCELled once the first answered; the caller gets a single 200
// and never the 487.
func TestStatefulParallelFork(t *testing.T) { forEachStateful(t, statefulParallelFork) }

func statefulParallelFork(t *testing.T, srv statefulServer) {
	answers := callee(t, "stateful/uas_slow.xml")
	rings := callee(t, "stateful/uas_cancel.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{
		dests: []int{answers.Opts.Port, rings.Opts.Port}, parallel: true})

	res, msgs := caller(t, "uac.xml", proxy, 1, false)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "487", 0)

	a := calleeResult(t, "answering callee", answers, 1)
	wantReceived(t, "answering callee", a, "INVITE", 1)
	wantReceived(t, "answering callee", a, "ACK", 1)
	wantReceived(t, "answering callee", a, "BYE", 1)
	wantReceived(t, "answering callee", a, "CANCEL", 0)
	// The callee resends its 200 until the ACK arrives: the caller
	// sees each copy the proxy forwards, so allow those.
	retrans := len(a.SentMsgs("200 INVITE")) - 1
	if got := len(msgs.Received("200 INVITE")); got < 1 || got > 1+retrans {
		t.Errorf("caller received %d 200 to the INVITE, want 1 (callee retransmitted it %d times); messages:\n%s",
			got, retrans, msgs.Summary())
	}

	r := calleeResult(t, "ringing callee", rings, 1)
	wantReceived(t, "ringing callee", r, "INVITE", 1)
	wantReceived(t, "ringing callee", r, "CANCEL", 1)
	wantReceived(t, "ringing callee", r, "ACK", 1)
	wantSameBranch(t, "ringing callee", r, "CANCEL")
	wantSameBranch(t, "ringing callee", r, "ACK")
}

// TestStatefulNoAnswerTimeout (case 7): no answer: the callee rings forever;
// when the INVITE timer (2 s) fires the proxy CANCELs it and answers the
// caller 408.
func TestStatefulNoAnswerTimeout(t *testing.T) { forEachStateful(t, statefulNoAnswerTimeout) }

func statefulNoAnswerTimeout(t *testing.T, srv statefulServer) {
	const frInv = 2 * time.Second
	uas := callee(t, "stateful/uas_cancel.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{uas.Opts.Port}, frInv: frInv})

	res, msgs := caller(t, "stateful/uac_noanswer.xml", proxy, 1, true)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "408 INVITE", 1)
	if res.Elapsed > 6*time.Second {
		t.Errorf("caller ran %v, want < 6s with a %v INVITE timer", res.Elapsed, frInv)
	}
	// Response time 1 of uac_noanswer.xml is 180 -> 408.
	if l, found := res.RTT[1]; !found || l.Count != 1 {
		t.Errorf("no 180->408 response time measured: %+v", res.RTT)
	} else {
		t.Logf("180->408 took %.0f ms (INVITE timer %v)", l.Max, frInv)
		if min, max := float64(frInv.Milliseconds())*3/4, float64(frInv.Milliseconds())+1000; l.Max < min || l.Max > max {
			t.Errorf("180->408 took %.0f ms, want about the %v timer (%.0f..%.0f ms)", l.Max, frInv, min, max)
		}
	}

	got := calleeResult(t, "callee", uas, 1)
	wantReceived(t, "callee", got, "INVITE", 1)
	wantReceived(t, "callee", got, "CANCEL", 1)
	wantReceived(t, "callee", got, "ACK", 1)
	wantSameBranch(t, "callee", got, "CANCEL")
}

// TestStatefulFailoverUnreachable: the first destination has no socket, so
// the kernel answers the INVITE with ICMP port unreachable; the branch must
// fail at once (RFC 3261 §16.9) and the second destination answer, long
// before the 10 s final-response timer.
func TestStatefulFailoverUnreachable(t *testing.T) { forEachStateful(t, statefulFailoverUnreachable) }

func statefulFailoverUnreachable(t *testing.T, srv statefulServer) {
	if srv.name == "kamailio" {
		t.Skip("Kamailio does not act on ICMP errors for UDP: it waits for fr_timer")
	}
	const fr = 10 * time.Second
	dead := sipptest.UDPPort(t) // free, and nothing binds it
	ok := callee(t, "uas.xml")
	proxy := startStatefulProxy(t, srv, statefulSetup{dests: []int{dead, ok.Opts.Port}, fr: fr})

	res, msgs := caller(t, "uac.xml", proxy, 1, true)
	wantCallsOK(t, res, msgs, 1)
	wantReceived(t, "caller", msgs, "200 INVITE", 1)
	if l, found := res.RTT[1]; !found || l.Count != 1 {
		t.Errorf("no INVITE->200 response time measured: %+v", res.RTT)
	} else if t.Logf("INVITE->200 took %.0f ms", l.Max); l.Max > 1000 {
		t.Errorf("INVITE->200 took %.0f ms: the unreachable branch was not failed at once", l.Max)
	}
}
