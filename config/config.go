// Package config loads Velox's YAML configuration: the listeners and the
// request pipeline. Every problem found is reported with its file, line and
// column, and all of them are reported at once.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultYAML is the embedded default configuration.
//
//go:embed default.yaml
var DefaultYAML []byte

// Config is a loaded configuration.
type Config struct {
	Log       LogConfig
	Listeners []Listener
	Request   []Step // the request pipeline, in order
	// Failure is the pipeline run when a stateful relay ends without a
	// 2xx and without a destination left (Kamailio's failure_route).
	Failure      []Step
	Transactions Transactions
	Connections  Connections
	Process      Process
	File         string // where it was loaded from
}

// Process configures the server process.
type Process struct {
	// Scheduling is the Linux scheduling policy of the server's threads:
	// "batch" (SCHED_BATCH, the default: threads woken up do not preempt
	// the one running) or "normal" (SCHED_OTHER).
	Scheduling string
}

// Connections configures the stream transports (TCP, TLS, WS, WSS): the
// connection table shared by their listeners. Zero values take the
// transport's defaults.
type Connections struct {
	Workers        int           // messages handled at once; 0: number of CPUs
	Max            int           // open connections; beyond it new ones are refused
	IdleTimeout    time.Duration // a connection silent this long is closed
	MaxMessage     int           // bytes; a larger message closes the connection
	ConnectTimeout time.Duration // outgoing connect and TLS handshake
	MaxQueue       int           // bytes waiting to be written to one connection
}

// Transactions configures the transaction layer (the relay module).
type Transactions struct {
	T1, T2, T4    time.Duration // RFC 3261 timer bases; 0: 500ms, 4s, 5s
	NoTrying      bool          // trying: false turns off the automatic 100 Trying
	Timeout       time.Duration // fr_timer default
	InviteTimeout time.Duration // fr_inv_timer default
	Buckets       int           // transaction table size
	TimerWorkers  int
}

// LogConfig configures logging.
type LogConfig struct {
	Level string // debug, info, warn, error
}

// Listener is one listening socket.
type Listener struct {
	Proto         string // "udp", "tcp", "tls", "ws" or "wss"
	Addr          netip.AddrPort
	Workers       int      // UDP: 0 is 1 (workers take turns; see transport/README.md)
	RecvBuffer    int      // bytes; 0: default
	SendBuffer    int      // bytes; 0: OS default
	Advertise     string   // host put in Via/Record-Route instead of the bound address
	AdvertisePort uint16   // port for Advertise; 0: the bound port
	TLS           TLS      // tls and wss listeners
	Origins       []string // ws and wss: allowed Origin values; empty: any
	Pos           Pos
}

// TLS is a tls or wss listener's certificate setup. File names are
// relative to the config file.
type TLS struct {
	Cert, Key         string               // PEM files of the default certificate
	SNI               map[string][2]string // server name → cert and key files
	ClientCA          string               // PEM CA bundle: verify client certificates
	RequireClientCert bool                 // with ClientCA: refuse clients without one
}

// Step is one entry of a pipeline: a module, its condition and its options.
type Step struct {
	Module string
	If     string // condition source; empty: always
	IfPos  Pos
	Pos    Pos
	node   *yaml.Node // the step's mapping
	file   string
}

// Pos is a place in a config file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is a problem at a place in a config file.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errorf returns an *Error at pos.
func Errorf(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// Errors is every problem found in a config, one per line.
type Errors []error

func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Default returns the embedded default config.
func Default() *Config {
	c, err := Parse("default.yaml", DefaultYAML)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error())
	}
	return c
}

type parser struct {
	file string
	errs Errors
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, Errorf(p.pos(n), format, args...))
}

// Parse validates a config document; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{p.yamlError(err)}
	}
	cfg := &Config{File: name, Log: LogConfig{Level: "info"}, Process: Process{Scheduling: "batch"}}
	if len(doc.Content) == 0 {
		return nil, Errors{Errorf(Pos{File: name, Line: 1, Col: 1}, "empty config")}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "the config must be a mapping with listeners and request")
		return nil, p.errs
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, "%s given twice", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "log":
			p.parseLog(v, &cfg.Log)
		case "listeners":
			p.parseListeners(v, cfg)
		case "request":
			cfg.Request = p.parseSteps(v, "request")
		case "failure":
			cfg.Failure = p.parseSteps(v, "failure")
		case "transactions":
			p.parseTransactions(v, &cfg.Transactions)
		case "connections":
			p.parseConnections(v, &cfg.Connections)
		case "process":
			p.parseProcess(v, &cfg.Process)
		default:
			p.errorf(k, "unknown key %q (known: log, listeners, transactions, connections, process, request, failure)", k.Value)
		}
	}
	if !seen["listeners"] {
		p.errorf(root, "no listeners: add e.g. `listeners: [{address: \"udp:0.0.0.0:5060\"}]`")
	}
	if !seen["request"] {
		p.errorf(root, "no request pipeline: add `request:` with at least one module")
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return cfg, nil
}

// yamlError turns a YAML syntax error ("yaml: line 3: …") into one that
// names the file.
func (p *parser) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if strings.HasPrefix(msg, "line ") {
		rest := msg[len("line "):]
		if i := strings.Index(rest, ":"); i > 0 {
			if n, e := strconv.Atoi(rest[:i]); e == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return Errorf(Pos{File: p.file, Line: line, Col: 1}, "YAML: %s", msg)
}

func (p *parser) parseLog(n *yaml.Node, lc *LogConfig) {
	p.parseChoice(n, "log", "level", "log level", []string{"debug", "info", "warn", "error"}, &lc.Level)
}

func (p *parser) parseProcess(n *yaml.Node, pc *Process) {
	p.parseChoice(n, "process", "scheduling", "scheduling", []string{"batch", "normal"}, &pc.Scheduling)
}

// parseChoice parses a section that is a mapping with the one key key,
// whose value must be one of choices (what names it in errors).
func (p *parser) parseChoice(n *yaml.Node, section, key, what string, choices []string, dst *string) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", section)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Value != key:
			p.errorf(k, "unknown %s key %q (known: %s)", section, k.Value, key)
		case !slices.Contains(choices, v.Value):
			last := len(choices) - 1
			p.errorf(v, "%s %q: want %s or %s", what, v.Value, strings.Join(choices[:last], ", "), choices[last])
		default:
			*dst = v.Value
		}
	}
}

func (p *parser) parseTransactions(n *yaml.Node, tc *Transactions) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "transactions must be a mapping")
		return
	}
	num := func(v *yaml.Node, d *int) {
		x, err := strconv.Atoi(v.Value)
		if err != nil || x <= 0 {
			p.errorf(v, "%q is not a positive number", v.Value)
			return
		}
		*d = x
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "t1":
			p.duration(v, &tc.T1)
		case "t2":
			p.duration(v, &tc.T2)
		case "t4":
			p.duration(v, &tc.T4)
		case "timeout":
			p.duration(v, &tc.Timeout)
		case "invite_timeout":
			p.duration(v, &tc.InviteTimeout)
		case "buckets":
			num(v, &tc.Buckets)
		case "timer_workers":
			num(v, &tc.TimerWorkers)
		case "trying":
			switch v.Value {
			case "true":
				tc.NoTrying = false
			case "false":
				tc.NoTrying = true
			default:
				p.errorf(v, "trying: want true or false")
			}
		default:
			p.errorf(k, "unknown transactions key %q (known: t1, t2, t4, trying, timeout, invite_timeout, buckets, timer_workers)", k.Value)
		}
	}
}

func (p *parser) parseListeners(n *yaml.Node, cfg *Config) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "listeners must be a non-empty list")
		return
	}
	seen := map[string]Pos{}
	for _, item := range n.Content {
		l := Listener{Pos: p.pos(item)}
		switch item.Kind {
		case yaml.ScalarNode:
			p.parseAddress(item, &l)
			p.checkListener(item, &l)
		case yaml.MappingNode:
			hasAddr := false
			for i := 0; i+1 < len(item.Content); i += 2 {
				k, v := item.Content[i], item.Content[i+1]
				switch k.Value {
				case "address":
					hasAddr = true
					p.parseAddress(v, &l)
				case "workers":
					l.Workers = p.intIn(v, "workers", 1, 1024)
				case "recv_buffer":
					l.RecvBuffer = p.size(v, "recv_buffer")
				case "send_buffer":
					l.SendBuffer = p.size(v, "send_buffer")
				case "advertise":
					p.parseAdvertise(v, &l)
				case "tls_cert":
					l.TLS.Cert = p.fileName(v, "tls_cert")
				case "tls_key":
					l.TLS.Key = p.fileName(v, "tls_key")
				case "tls_client_ca":
					l.TLS.ClientCA = p.fileName(v, "tls_client_ca")
				case "tls_require_client_cert":
					l.TLS.RequireClientCert = p.boolean(v, "tls_require_client_cert")
				case "tls_sni":
					l.TLS.SNI = p.parseSNI(v)
				case "origins":
					l.Origins = p.strings(v, "origins")
				default:
					p.errorf(k, "unknown listener key %q (known: address, workers, recv_buffer, send_buffer, advertise, tls_cert, tls_key, tls_client_ca, tls_require_client_cert, tls_sni, origins)", k.Value)
				}
			}
			if !hasAddr {
				p.errorf(item, "listener without address")
			}
			p.checkListener(item, &l)
		default:
			p.errorf(item, "a listener is an address string or a mapping with address")
			continue
		}
		if l.Addr.IsValid() {
			key := l.Proto + ":" + l.Addr.String()
			if first, dup := seen[key]; dup {
				p.errorf(item, "listener %s is already defined at line %d", key, first.Line)
			}
			seen[key] = l.Pos
			cfg.Listeners = append(cfg.Listeners, l)
		}
	}
}

// parseAddress parses "proto:ip:port" (IPv6: "udp:[::1]:5060").
func (p *parser) parseAddress(v *yaml.Node, l *Listener) {
	proto, rest, ok := strings.Cut(v.Value, ":")
	if !ok || rest == "" {
		p.errorf(v, "listener address %q: want proto:ip:port, e.g. udp:127.0.0.1:5060", v.Value)
		return
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "udp", "tcp", "tls", "ws", "wss":
	default:
		p.errorf(v, "listener address %q: unknown transport %q (want udp, tcp, tls, ws or wss)", v.Value, proto)
		return
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		if _, aerr := netip.ParseAddr(strings.Trim(rest, "[]")); aerr == nil {
			p.errorf(v, "listener address %q: missing port", v.Value)
		} else {
			p.errorf(v, "listener address %q: want an IP address and port (%v)", v.Value, err)
		}
		return
	}
	if ap.Port() == 0 {
		p.errorf(v, "listener address %q: port 0", v.Value)
		return
	}
	l.Proto, l.Addr = proto, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *parser) parseAdvertise(v *yaml.Node, l *Listener) {
	s := v.Value
	if s == "" {
		p.errorf(v, "advertise is empty")
		return
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			p.errorf(v, "advertise %q: unterminated IPv6 reference", s)
			return
		}
		host = s[:end+1]
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				p.errorf(v, "advertise %q: want host[:port]", s)
				return
			}
			port = rest[1:]
		}
	} else if i := strings.LastIndex(s, ":"); i >= 0 && strings.Count(s, ":") == 1 {
		host, port = s[:i], s[i+1:]
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			p.errorf(v, "advertise %q: bad port", s)
			return
		}
		l.AdvertisePort = uint16(n)
	}
	l.Advertise = host
}

func (p *parser) intIn(v *yaml.Node, what string, lo, hi int) int {
	n, err := strconv.Atoi(v.Value)
	if err != nil || v.Kind != yaml.ScalarNode {
		p.errorf(v, "%s: %q is not a number", what, v.Value)
		return 0
	}
	if n < lo || n > hi {
		p.errorf(v, "%s: %d is outside %d..%d", what, n, lo, hi)
		return 0
	}
	return n
}

// size parses bytes with an optional KiB/MiB/GiB (or K/M/G) suffix.
func (p *parser) size(v *yaml.Node, what string) int {
	s := strings.TrimSpace(v.Value)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<31)/mult {
		p.errorf(v, "%s: %q is not a size (bytes, or a number with KiB, MiB or GiB)", what, v.Value)
		return 0
	}
	return n * mult
}

func (p *parser) parseSteps(n *yaml.Node, pipeline string) []Step {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "%s must be a non-empty list of steps (- module: NAME)", pipeline)
		return nil
	}
	var steps []Step
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			p.errorf(item, "a step is a mapping with module: NAME")
			continue
		}
		st := Step{Pos: p.pos(item), node: item, file: p.file}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			switch k.Value {
			case "module":
				if v.Kind != yaml.ScalarNode || v.Value == "" {
					p.errorf(v, "module must be a name")
				}
				st.Module = v.Value
			case "if":
				if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
					p.errorf(v, "if must be a condition, e.g. method == \"INVITE\"")
				}
				st.If, st.IfPos = v.Value, p.pos(v)
			}
		}
		if st.Module == "" {
			p.errorf(item, "step without module")
			continue
		}
		steps = append(steps, st)
	}
	return steps
}

// Decode decodes the step's options (its keys other than module and if)
// into v, a pointer to a struct with yaml tags. An unknown key or a value
// of the wrong type is an error naming its line.
func (s *Step) Decode(v any) error {
	if s.node == nil {
		return nil
	}
	known := yamlKeys(v)
	opts := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: s.node.Line, Column: s.node.Column}
	var errs Errors
	for i := 0; i+1 < len(s.node.Content); i += 2 {
		k, val := s.node.Content[i], s.node.Content[i+1]
		if k.Value == "module" || k.Value == "if" {
			continue
		}
		if !known[k.Value] {
			errs = append(errs, Errorf(Pos{s.file, k.Line, k.Column}, "%s: unknown option %q (known: %s)", s.Module, k.Value, keyList(known)))
			continue
		}
		opts.Content = append(opts.Content, k, val)
	}
	if len(errs) > 0 {
		return errs
	}
	if err := opts.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			for _, m := range te.Errors {
				errs = append(errs, Errorf(s.Pos, "%s: %s", s.Module, strings.TrimPrefix(m, "yaml: ")))
			}
			return errs
		}
		return Errorf(s.Pos, "%s: %v", s.Module, err)
	}
	return nil
}

// yamlKeys returns the yaml keys of the struct v points to.
func yamlKeys(v any) map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return keys
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys[name] = true
	}
	return keys
}

func keyList(keys map[string]bool) string {
	if len(keys) == 0 {
		return "none"
	}
	var s []string
	for k := range keys {
		s = append(s, k)
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return strings.Join(s, ", ")
}

// checkListener checks the keys that depend on the listener's transport.
func (p *parser) checkListener(n *yaml.Node, l *Listener) {
	secure := l.Proto == "tls" || l.Proto == "wss"
	hasTLS := l.TLS.Cert != "" || l.TLS.Key != "" || l.TLS.ClientCA != "" || l.TLS.RequireClientCert || len(l.TLS.SNI) > 0
	switch {
	case l.Proto == "":
	case secure && (l.TLS.Cert == "" || l.TLS.Key == ""):
		p.errorf(n, "%s listener needs tls_cert and tls_key", l.Proto)
	case !secure && hasTLS:
		p.errorf(n, "tls_* keys apply to tls and wss listeners only (this one is %s)", l.Proto)
	}
	if l.TLS.RequireClientCert && l.TLS.ClientCA == "" {
		p.errorf(n, "tls_require_client_cert needs tls_client_ca")
	}
	if len(l.Origins) > 0 && l.Proto != "ws" && l.Proto != "wss" {
		p.errorf(n, "origins apply to ws and wss listeners only (this one is %s)", l.Proto)
	}
	if l.Proto != "udp" && l.Proto != "" && (l.RecvBuffer != 0 || l.SendBuffer != 0 || l.Workers != 0) {
		p.errorf(n, "workers, recv_buffer and send_buffer apply to udp listeners (stream listeners share the workers set under connections:)")
	}
}

// file2 returns a file name relative to the config file's folder, and
// reports a file that cannot be read.
func (p *parser) fileName(v *yaml.Node, what string) string {
	name := v.Value
	if name == "" {
		p.errorf(v, "%s is empty", what)
		return ""
	}
	if !filepath.IsAbs(name) && p.file != "" && p.file != "<default>" {
		name = filepath.Join(filepath.Dir(p.file), name)
	}
	if _, err := os.Stat(name); err != nil {
		p.errorf(v, "%s: %v", what, err)
	}
	return name
}

func (p *parser) boolean(v *yaml.Node, what string) bool {
	switch v.Value {
	case "true":
		return true
	case "false":
		return false
	}
	p.errorf(v, "%s: want true or false", what)
	return false
}

func (p *parser) strings(v *yaml.Node, what string) []string {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, e := range v.Content {
		if e.Kind != yaml.ScalarNode || e.Value == "" {
			p.errorf(e, "%s: want non-empty strings", what)
			continue
		}
		out = append(out, e.Value)
	}
	return out
}

// parseSNI parses `tls_sni: {name: {cert: FILE, key: FILE}, …}`.
func (p *parser) parseSNI(v *yaml.Node) map[string][2]string {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "tls_sni must be a mapping of server name to {cert, key}")
		return nil
	}
	out := map[string][2]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := v.Content[i], v.Content[i+1]
		if e.Kind != yaml.MappingNode {
			p.errorf(e, "tls_sni %s: want {cert: FILE, key: FILE}", k.Value)
			continue
		}
		var ck [2]string
		for j := 0; j+1 < len(e.Content); j += 2 {
			kk, vv := e.Content[j], e.Content[j+1]
			switch kk.Value {
			case "cert":
				ck[0] = p.fileName(vv, "tls_sni cert")
			case "key":
				ck[1] = p.fileName(vv, "tls_sni key")
			default:
				p.errorf(kk, "unknown tls_sni key %q (known: cert, key)", kk.Value)
			}
		}
		if ck[0] == "" || ck[1] == "" {
			p.errorf(e, "tls_sni %s: needs cert and key", k.Value)
		}
		out[strings.ToLower(k.Value)] = ck
	}
	return out
}

func (p *parser) parseConnections(n *yaml.Node, cc *Connections) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "connections must be a mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "workers":
			cc.Workers = p.intIn(v, "workers", 1, 1024)
		case "max":
			cc.Max = p.intIn(v, "max", 1, 10_000_000)
		case "idle_timeout":
			p.duration(v, &cc.IdleTimeout)
		case "connect_timeout":
			p.duration(v, &cc.ConnectTimeout)
		case "max_message":
			cc.MaxMessage = p.size(v, "max_message")
		case "max_queue":
			cc.MaxQueue = p.size(v, "max_queue")
		default:
			p.errorf(k, "unknown connections key %q (known: workers, max, idle_timeout, connect_timeout, max_message, max_queue)", k.Value)
		}
	}
}

// duration parses a positive duration (500ms, 30s, 10m) into *d.
func (p *parser) duration(v *yaml.Node, d *time.Duration) {
	x, err := time.ParseDuration(v.Value)
	if err != nil || x <= 0 {
		p.errorf(v, "%q is not a positive duration (e.g. 500ms, 30s)", v.Value)
		return
	}
	*d = x
}
