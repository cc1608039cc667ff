package sipptest

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Message is one SIP message from a SIPp -trace_msg log.
type Message struct {
	// Sent is true for a message SIPp sent (retransmissions included),
	// false for one it received.
	Sent bool
	// Text is the message, lines separated by "\n" (CRs removed).
	Text string
}

// FirstLine returns the request or status line.
func (m Message) FirstLine() string {
	line, _, _ := strings.Cut(m.Text, "\n")
	return line
}

// Method returns the request method, or "" for a response.
func (m Message) Method() string {
	f := strings.Fields(m.FirstLine())
	if len(f) < 3 || strings.HasPrefix(f[0], "SIP/") {
		return ""
	}
	return f[0]
}

// Status returns the response status code, or 0 for a request.
func (m Message) Status() int {
	f := strings.Fields(m.FirstLine())
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Header returns the value of the first header named name (case
// insensitive, compact forms not expanded), or "".
func (m Message) Header(name string) string {
	lines := strings.Split(m.Text, "\n")
	for _, l := range lines[1:] {
		if l == "" {
			break // end of headers
		}
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Headers returns the values of every header line named name, joined
// with ", " as one comma-separated list (RFC 3261 §7.3.1).
func (m Message) Headers(name string) string {
	var vals []string
	for _, l := range strings.Split(m.Text, "\n")[1:] {
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return strings.Join(vals, ", ")
}

// CSeqMethod returns the method of the CSeq header.
func (m Message) CSeqMethod() string {
	f := strings.Fields(m.Header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// Is reports whether m is the request "METHOD" (e.g. "INVITE") or the
// response "CODE METHOD" (e.g. "200 CANCEL": status 200, CSeq method
// CANCEL; "487" alone matches any CSeq method).
func (m Message) Is(what string) bool {
	f := strings.Fields(what)
	if len(f) == 0 {
		return false
	}
	if code, err := strconv.Atoi(f[0]); err == nil {
		return m.Status() == code && (len(f) < 2 || strings.EqualFold(m.CSeqMethod(), f[1]))
	}
	return m.Method() == f[0]
}

// MessageLog is the content of a SIPp -trace_msg log.
type MessageLog []Message

// Received returns the messages SIPp received that match what (see
// Message.Is).
func (l MessageLog) Received(what string) MessageLog { return l.filter(false, what) }

// SentMsgs returns the messages SIPp sent that match what (see Message.Is).
func (l MessageLog) SentMsgs(what string) MessageLog { return l.filter(true, what) }

func (l MessageLog) filter(sent bool, what string) MessageLog {
	var out MessageLog
	for _, m := range l {
		if m.Sent == sent && m.Is(what) {
			out = append(out, m)
		}
	}
	return out
}

// Summary lists the first lines of the messages, "> " for sent and "< "
// for received, one per line (for test failure messages).
func (l MessageLog) Summary() string {
	var b strings.Builder
	for _, m := range l {
		dir := "< "
		if m.Sent {
			dir = "> "
		}
		b.WriteString(dir + m.FirstLine())
		if c := m.Header("CSeq"); c != "" && m.Status() != 0 {
			b.WriteString(" (" + c + ")")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseMessageLogFile reads a SIPp message log (-trace_msg, -message_file).
func ParseMessageLogFile(path string) (MessageLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMessageLog(f)
}

// ParseMessageLog parses SIPp -trace_msg output: blocks that start with a
// line of dashes, then "UDP message sent (N bytes):" or "UDP message
// received [N] bytes :", an empty line and the message. Other blocks
// (SIPp notes such as "Ignoring provisional ...") are skipped.
func ParseMessageLog(r io.Reader) (MessageLog, error) {
	var (
		out   MessageLog
		cur   *Message
		lines []string
		state int // 0: outside, 1: after separator, 2: in a message
	)
	flush := func() {
		if cur != nil {
			for len(lines) > 0 && lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			for len(lines) > 0 && lines[0] == "" {
				lines = lines[1:]
			}
			if len(lines) > 0 {
				cur.Text = strings.Join(lines, "\n")
				out = append(out, *cur)
			}
		}
		cur, lines = nil, nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "-----------------------------------------------") {
			flush()
			state = 1
			continue
		}
		switch state {
		case 1:
			if line == "" {
				continue
			}
			switch {
			case strings.Contains(line, " message sent "):
				cur, state = &Message{Sent: true}, 2
			case strings.Contains(line, " message received "):
				cur, state = &Message{Sent: false}, 2
			default:
				state = 0
			}
		case 2:
			lines = append(lines, line)
		}
	}
	flush()
	return out, sc.Err()
}

// TraceMsgArgs returns the SIPp arguments that log every message sent and
// received to path (read it with ParseMessageLogFile once SIPp exited).
func TraceMsgArgs(path string) []string {
	return []string{"-trace_msg", "-message_file", path}
}

// StartUASWithArgsForTest is StartUASForTest with extra SIPp arguments;
// extra may contain the token "{dir}", replaced by the UAS's directory
// (u.Opts.Dir), e.g. TraceMsgArgs("{dir}/uas_messages.log").
func StartUASWithArgsForTest(t testing.TB, scenario string, extra ...string) *UAS {
	t.Helper()
	return StartUASOverForTest(t, "u1", scenario, extra...)
}

// StartUASOverForTest is StartUASWithArgsForTest over SIPp transport mode
// transport ("u1" or "t1"); the port is free for UDP and TCP.
func StartUASOverForTest(t testing.TB, transport, scenario string, extra ...string) *UAS {
	t.Helper()
	return StartUASOnForTest(t, "", transport, scenario, extra...)
}

// StartUASOnForTest is StartUASOverForTest on local address ip ("" for
// 127.0.0.1, "::1" for IPv6).
func StartUASOnForTest(t testing.TB, ip, transport, scenario string, extra ...string) *UAS {
	t.Helper()
	sipp := RequireSipp(t)
	dir := t.TempDir()
	args := make([]string, len(extra))
	for i, a := range extra {
		args[i] = strings.ReplaceAll(a, "{dir}", dir)
	}
	var lastErr error
	for range 3 { // the kernel may hand the port to someone else meanwhile
		u, err := StartUAS(UASOptions{Sipp: sipp, Scenario: scenario, Port: Port(t), Transport: transport, IP: ip, Dir: dir, ExtraArgs: args})
		if err == nil {
			t.Cleanup(u.Stop)
			return u
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// UASMessageLogPath is where StartTracedUASForTest's UAS logs its messages.
func UASMessageLogPath(u *UAS) string { return filepath.Join(u.Opts.Dir, "uas_messages.log") }

// StartTracedUASForTest starts a UAS like StartUASForTest that also logs
// every SIP message to UASMessageLogPath(u).
func StartTracedUASForTest(t testing.TB, scenario string, extra ...string) *UAS {
	t.Helper()
	args := append(TraceMsgArgs(filepath.Join("{dir}", "uas_messages.log")), extra...)
	return StartUASWithArgsForTest(t, scenario, args...)
}

// UASMessages stops the UAS (letting its calls finish, see UAS.Stop) and
// returns its final statistics and message log (StartTracedUASForTest).
func UASMessages(u *UAS) (Stats, MessageLog, error) {
	u.Stop()
	st, err := u.Stats()
	if err != nil {
		return st, nil, err
	}
	log, err := ParseMessageLogFile(UASMessageLogPath(u))
	return st, log, err
}
