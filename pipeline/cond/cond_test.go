package cond

import (
	"net/netip"
	"strings"
	"testing"
)

type fakeEnv struct {
	str     map[Var]string
	ints    map[IntVar]int
	bools   map[BoolVar]bool
	headers map[string]string
	src     netip.Addr
	// bytes are prepared once so that Str does not allocate.
	b map[Var][]byte
}

func newEnv() *fakeEnv {
	e := &fakeEnv{
		str: map[Var]string{
			VarMethod: "INVITE", VarRURI: "sip:+15551234@carrier.example", VarRURIUser: "+15551234", VarRURIHost: "carrier.example",
			VarRURIScheme: "sip", VarFromUser: "alice", VarFromHost: "a.example", VarFromTag: "f1", VarToUser: "bob",
			VarToHost: "b.example", VarCallID: "abc@x", VarUserAgent: "Phone/1.0", VarProto: "udp",
		},
		ints:    map[IntVar]int{IntRURIPort: 0, IntSrcPort: 5062, IntMaxForwards: 70, IntBodyLength: 142},
		bools:   map[BoolVar]bool{BoolToSelf: false, BoolInDialog: false},
		headers: map[string]string{"x-customer": "gold"},
		src:     netip.MustParseAddr("10.1.2.3"),
		b:       map[Var][]byte{},
	}
	for k, v := range e.str {
		e.b[k] = []byte(v)
	}
	return e
}

func (e *fakeEnv) Str(v Var) []byte    { return e.b[v] }
func (e *fakeEnv) Int(v IntVar) int    { return e.ints[v] }
func (e *fakeEnv) Bool(v BoolVar) bool { return e.bools[v] }
func (e *fakeEnv) SrcIP() netip.Addr   { return e.src }
func (e *fakeEnv) Header(name string) ([]byte, bool) {
	for k, v := range e.headers {
		if strings.EqualFold(k, name) {
			return hdrBytes[v], true
		}
	}
	return nil, false
}

var hdrBytes = map[string][]byte{"gold": []byte("gold")}

var cases = []struct {
	src  string
	want bool
}{
	{`method == "INVITE"`, true},
	{`method != "INVITE"`, false},
	{`method == "invite"`, false},
	{`method in ["INVITE", "SUBSCRIBE"]`, true},
	{`method not in ["INVITE", "SUBSCRIBE"]`, false},
	{`ruri.user startsWith "+1"`, true},
	{`ruri.user endsWith "34"`, true},
	{`ruri contains "@carrier"`, true},
	{`ruri.user matches "^\\+1[0-9]{7}$"`, true},
	{`from.user == to.user`, false},
	{`max_forwards > 69 && max_forwards <= 70`, true},
	{`max_forwards < 0`, false},
	{`src.port == 5062 and body_length >= 100`, true},
	{`src.ip in cidr("10.0.0.0/8")`, true},
	{`src.ip in ["192.168.0.0/16", "10.1.2.3"]`, true},
	{`src.ip in ["192.168.0.0/16"]`, false},
	{`src.ip == "10.1.2.3"`, true},
	{`hdr("X-Customer") == "gold"`, true},
	{`has_hdr("X-Other")`, false},
	{`!in_dialog && !to_self`, true},
	{`not (to_self || in_dialog)`, true},
	{`proto == "udp" && user_agent startsWith "Phone"`, true},
	{`ruri.port == 0`, true},
	{`true`, true},
}

func TestEval(t *testing.T) {
	env := newEnv()
	for _, c := range cases {
		cond, err := Compile(c.src)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if got := cond.Eval(env); got != c.want {
			t.Errorf("%s = %v, want %v", c.src, got, c.want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	env := newEnv()
	for _, c := range cases {
		cond, err := Compile(c.src)
		if err != nil {
			t.Fatal(err)
		}
		var e Env = env
		if n := testing.AllocsPerRun(100, func() { cond.Eval(e) }); n != 0 {
			t.Errorf("%s: %v allocs", c.src, n)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	errs := []struct{ src, want string }{
		{`methd == "INVITE"`, `column 1: unknown variable "methd"`},
		{`method == 5`, `column 8: == cannot compare a string with a int`},
		{`method`, `column 1: the condition is a string, not true or false`},
		{`method ==`, `column 9: unexpected token EOF`},
		{`src.ip in cidr("10.0.0.0/33")`, `column 16: "10.0.0.0/33" is not an address prefix`},
		{`ruri.user matches "("`, `column 19: bad regular expression`},
		{`lookup("x")`, `column 1: unknown function lookup()`},
		{`max_forwards && true`, `column 14: && needs true or false on both sides`},
	}
	for _, c := range errs {
		_, err := Compile(c.src)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %s…", c.src, err, c.want)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	cond, err := Compile(`method == "OPTIONS" && to_self && ruri.user == "" || src.ip in cidr("10.0.0.0/8") && ruri.user matches "^\\+1"`)
	if err != nil {
		b.Fatal(err)
	}
	var env Env = newEnv()
	b.ReportAllocs()
	for b.Loop() {
		cond.Eval(env)
	}
}

func FuzzCompile(f *testing.F) {
	for _, c := range cases {
		f.Add(c.src)
	}
	f.Add(`a.b.c(1)[2] ?? 3`)
	f.Add(`let x = 1; x`)
	env := newEnv()
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Compile(src)
		if err == nil {
			c.Eval(env)
		}
	})
}
