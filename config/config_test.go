package config

import (
	"strings"
	"testing"
)

func TestDefaultParses(t *testing.T) {
	c := Default()
	if len(c.Listeners) != 1 || c.Listeners[0].Addr.String() != "127.0.0.1:5060" || c.Listeners[0].Proto != "udp" {
		t.Fatalf("listeners %+v", c.Listeners)
	}
	var mods []string
	for _, s := range c.Request {
		mods = append(mods, s.Module)
	}
	if strings.Join(mods, ",") != "sanity,max-forwards,reply,record-route,loose-route,relay" {
		t.Fatalf("pipeline %v", mods)
	}
	if c.Request[2].If == "" || c.Request[2].IfPos.Line != 17 {
		t.Fatalf("reply condition %q at %v", c.Request[2].If, c.Request[2].IfPos)
	}
	if c.Process.Scheduling != "batch" {
		t.Fatalf("default scheduling %q, want batch", c.Process.Scheduling)
	}
	n, err := Parse("v.yaml", []byte("process: {scheduling: normal}\nlisteners: [\"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n"))
	if err != nil || n.Process.Scheduling != "normal" {
		t.Fatalf("scheduling normal: %v, %+v", err, n)
	}
}

func TestFullConfig(t *testing.T) {
	c, err := Parse("v.yaml", []byte(`log:
  level: debug
listeners:
  - address: udp:0.0.0.0:5060
    workers: 4
    recv_buffer: 8MiB
    send_buffer: 512KiB
    advertise: sip.example.com:5080
  - udp:[::1]:5062
request:
  - module: forward
    to: 10.0.0.1:5060
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.Workers != 4 || l.RecvBuffer != 8<<20 || l.SendBuffer != 512<<10 || l.Advertise != "sip.example.com" || l.AdvertisePort != 5080 {
		t.Fatalf("listener %+v", l)
	}
	if c.Listeners[1].Addr.String() != "[::1]:5062" || c.Log.Level != "debug" {
		t.Fatalf("%+v %v", c.Listeners[1], c.Log)
	}
	var o struct {
		To string `yaml:"to"`
	}
	if err := c.Request[0].Decode(&o); err != nil || o.To != "10.0.0.1:5060" {
		t.Fatalf("decode: %v %+v", err, o)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"missing port", "listeners:\n  - address: udp:1.2.3.4\nrequest:\n  - module: forward\n",
			`v.yaml:2:14: listener address "udp:1.2.3.4": missing port`},
		{"unknown transport", "listeners: [\"sctp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:13: listener address "sctp:1.2.3.4:5060": unknown transport "sctp" (want udp, tcp, tls, ws or wss)`},
		{"tls without cert", "listeners: [\"tls:1.2.3.4:5061\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:13: tls listener needs tls_cert and tls_key`},
		{"tls key on udp", "listeners:\n  - {address: \"udp:1.2.3.4:5060\", tls_cert: config_test.go}\nrequest: [{module: forward}]\n",
			`v.yaml:2:5: tls_* keys apply to tls and wss listeners only (this one is udp)`},
		{"missing cert file", "listeners:\n  - {address: \"wss:1.2.3.4:443\", tls_cert: /nonexistent/c.pem, tls_key: config_test.go}\nrequest: [{module: forward}]\n",
			`v.yaml:2:44: tls_cert: stat /nonexistent/c.pem: no such file or directory`},
		{"origins on tcp", "listeners:\n  - {address: \"tcp:1.2.3.4:5060\", origins: [\"https://a\"]}\nrequest: [{module: forward}]\n",
			`v.yaml:2:5: origins apply to ws and wss listeners only (this one is tcp)`},
		{"connections key", "listeners: [\"tcp:1.2.3.4:5060\"]\nconnections: {idle: 3}\nrequest: [{module: forward}]\n",
			`v.yaml:2:15: unknown connections key "idle" (known: workers, max, idle_timeout, connect_timeout, max_message, max_queue)`},
		{"unknown top key", "listeners: [\"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\nroutes: 1\n",
			`v.yaml:3:1: unknown key "routes" (known: log, listeners, transactions, connections, process, request, failure)`},
		{"bad scheduling", "process: {scheduling: fifo}\nlisteners: [\"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:23: scheduling "fifo": want batch or normal`},
		{"process key", "process: {nice: 3}\nlisteners: [\"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:11: unknown process key "nice" (known: scheduling)`},
		{"no module", "listeners: [\"udp:1.2.3.4:5060\"]\nrequest:\n  - if: method == \"X\"\n",
			`v.yaml:3:5: step without module`},
		{"duplicate listener", "listeners: [\"udp:1.2.3.4:5060\", \"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:33: listener udp:1.2.3.4:5060 is already defined at line 1`},
		{"bad size", "listeners:\n  - address: udp:1.2.3.4:5060\n    recv_buffer: lots\nrequest: [{module: forward}]\n",
			`v.yaml:3:18: recv_buffer: "lots" is not a size (bytes, or a number with KiB, MiB or GiB)`},
		{"syntax", "listeners: [\nrequest: x\n",
			`v.yaml:2:1: YAML: did not find expected ',' or ']'`},
		{"no request", "listeners: [\"udp:1.2.3.4:5060\"]\n",
			`v.yaml:1:1: no request pipeline: add ` + "`request:`" + ` with at least one module`},
		{"bad level", "log: {level: loud}\nlisteners: [\"udp:1.2.3.4:5060\"]\nrequest: [{module: forward}]\n",
			`v.yaml:1:14: log level "loud": want debug, info, warn or error`},
	}
	for _, c := range cases {
		_, err := Parse("v.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v\nwant %s", c.name, err, c.want)
		}
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Parse("v.yaml", []byte("listeners:\n  - address: udp:1.2.3.4\n  - address: foo:1.2.3.4:5\nrequest:\n  - {}\n"))
	errs, ok := err.(Errors)
	if !ok || len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

func TestDecodeUnknownOption(t *testing.T) {
	c, err := Parse("v.yaml", []byte("listeners: [\"udp:1.2.3.4:5060\"]\nrequest:\n  - module: reply\n    code: 404\n    reson: Gone\n"))
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Code   int    `yaml:"code"`
		Reason string `yaml:"reason"`
	}
	err = c.Request[0].Decode(&o)
	if err == nil || err.Error() != `v.yaml:5:5: reply: unknown option "reson" (known: code, reason)` {
		t.Fatalf("got %v", err)
	}
	c, _ = Parse("v.yaml", []byte("listeners: [\"udp:1.2.3.4:5060\"]\nrequest:\n  - module: reply\n    code: many\n"))
	if err := c.Request[0].Decode(&o); err == nil || !strings.Contains(err.Error(), "v.yaml:3:5: reply: line 4: cannot unmarshal") {
		t.Fatalf("got %v", err)
	}
}

func TestTransactionsAndFailure(t *testing.T) {
	c, err := Parse("v.yaml", []byte(`listeners: [udp:127.0.0.1:5060]
transactions:
  t1: 250ms
  trying: false
  invite_timeout: 60s
request:
  - module: relay
    to: [10.0.0.1, 10.0.0.2]
failure:
  - module: reply
    code: 503
`))
	if err != nil {
		t.Fatal(err)
	}
	tc := c.Transactions
	if tc.T1.String() != "250ms" || !tc.NoTrying || tc.InviteTimeout.String() != "1m0s" || tc.T2 != 0 {
		t.Fatalf("transactions %+v", tc)
	}
	if len(c.Failure) != 1 || c.Failure[0].Module != "reply" {
		t.Fatalf("failure %+v", c.Failure)
	}
	_, err = Parse("v.yaml", []byte(`listeners: [udp:127.0.0.1:5060]
transactions:
  t1: soon
request:
  - module: relay
`))
	if err == nil || !strings.Contains(err.Error(), `v.yaml:3:7: "soon" is not a positive duration`) {
		t.Fatalf("err = %v", err)
	}
}
