package cond

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// Cond is a compiled condition.
type Cond struct {
	src  string
	eval func(Env) bool
}

// Eval reports whether the condition holds for the request.
func (c *Cond) Eval(env Env) bool { return c.eval(env) }

// String returns the source of the condition.
func (c *Cond) String() string { return c.src }

// kind is the type of a compiled sub-expression.
type kind uint8

const (
	kBool kind = iota + 1
	kStr
	kInt
	kIP
	kStrList  // a literal list of strings
	kPrefixes // cidr(...) or a literal list of addresses/prefixes
	kRegexp   // a literal string used with matches
)

var kindNames = map[kind]string{kBool: "bool", kStr: "string", kInt: "int", kIP: "address", kStrList: "list", kPrefixes: "address list"}

// value is a compiled sub-expression. Exactly the field of its kind is set;
// constants also keep their value.
type value struct {
	kind     kind
	b        func(Env) bool
	s        func(Env) []byte
	i        func(Env) int
	ip       func(Env) netip.Addr
	isConst  bool
	str      string
	num      int
	list     []string
	prefixes []netip.Prefix
	node     ast.Node
}

// Compile parses and compiles a condition. Errors name the column.
func Compile(src string) (*Cond, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("column %d: %s", fe.Column+1, fe.Message)
		}
		return nil, err
	}
	v, err := compile(tree.Node)
	if err != nil {
		return nil, err
	}
	if v.kind != kBool {
		return nil, errAt(tree.Node, "the condition is a %s, not true or false", kindNames[v.kind])
	}
	return &Cond{src: src, eval: v.b}, nil
}

func errAt(n ast.Node, format string, args ...any) error {
	return fmt.Errorf("column %d: %s", n.Location().From+1, fmt.Sprintf(format, args...))
}

func compile(n ast.Node) (value, error) {
	switch n := n.(type) {
	case *ast.BoolNode:
		b := n.Value
		return value{kind: kBool, b: func(Env) bool { return b }, isConst: true, node: n}, nil
	case *ast.StringNode:
		s := []byte(n.Value)
		return value{kind: kStr, s: func(Env) []byte { return s }, isConst: true, str: n.Value, node: n}, nil
	case *ast.IntegerNode:
		i := n.Value
		return value{kind: kInt, i: func(Env) int { return i }, isConst: true, num: i, node: n}, nil
	case *ast.IdentifierNode:
		return identifier(n)
	case *ast.MemberNode:
		return member(n)
	case *ast.UnaryNode:
		return unary(n)
	case *ast.BinaryNode:
		return binary(n)
	case *ast.CallNode:
		return call(n)
	case *ast.ArrayNode:
		return array(n)
	case *ast.ChainNode:
		return compile(n.Node)
	}
	return value{}, errAt(n, "%s is not supported in conditions", describe(n))
}

func describe(n ast.Node) string {
	return strings.TrimPrefix(strings.TrimSuffix(fmt.Sprintf("%T", n), "Node"), "*ast.")
}

func identifier(n *ast.IdentifierNode) (value, error) {
	if v, ok := strVars[n.Value]; ok {
		return value{kind: kStr, s: func(e Env) []byte { return e.Str(v) }, node: n}, nil
	}
	if v, ok := intVars[n.Value]; ok {
		return value{kind: kInt, i: func(e Env) int { return e.Int(v) }, node: n}, nil
	}
	if v, ok := boolVars[n.Value]; ok {
		return value{kind: kBool, b: func(e Env) bool { return e.Bool(v) }, node: n}, nil
	}
	return value{}, errAt(n, "unknown variable %q (known: %s)", n.Value, knownVariables())
}

func knownVariables() string {
	return "method, ruri, ruri.user, ruri.host, ruri.port, ruri.scheme, from.user, from.host, from.tag, to.user, to.host, to.tag, " +
		"call_id, user_agent, proto, src.ip, src.port, to_self, in_dialog, max_forwards, body_length"
}

func member(n *ast.MemberNode) (value, error) {
	id, ok := n.Node.(*ast.IdentifierNode)
	prop, ok2 := n.Property.(*ast.StringNode)
	if !ok || !ok2 {
		return value{}, errAt(n, "unknown field (known: %s)", knownVariables())
	}
	if m, ok := memberStrVars[id.Value]; ok {
		if v, ok := m[prop.Value]; ok {
			return value{kind: kStr, s: func(e Env) []byte { return e.Str(v) }, node: n}, nil
		}
	}
	if m, ok := memberIntVars[id.Value]; ok {
		if v, ok := m[prop.Value]; ok {
			return value{kind: kInt, i: func(e Env) int { return e.Int(v) }, node: n}, nil
		}
	}
	if id.Value == "src" && prop.Value == "ip" {
		return value{kind: kIP, ip: func(e Env) netip.Addr { return e.SrcIP() }, node: n}, nil
	}
	return value{}, errAt(n, "unknown variable %s.%s (known: %s)", id.Value, prop.Value, knownVariables())
}

func unary(n *ast.UnaryNode) (value, error) {
	x, err := compile(n.Node)
	if err != nil {
		return value{}, err
	}
	switch n.Operator {
	case "!", "not":
		if x.kind != kBool {
			return value{}, errAt(n, "%s needs true or false, not a %s", n.Operator, kindNames[x.kind])
		}
		f := x.b
		return value{kind: kBool, b: func(e Env) bool { return !f(e) }, node: n}, nil
	case "-":
		if x.kind == kInt && x.isConst {
			v := -x.num
			return value{kind: kInt, i: func(Env) int { return v }, isConst: true, num: v, node: n}, nil
		}
	}
	return value{}, errAt(n, "operator %s is not supported here", n.Operator)
}

func call(n *ast.CallNode) (value, error) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return value{}, errAt(n, "only hdr(), has_hdr() and cidr() can be called")
	}
	arg := func() (string, error) {
		if len(n.Arguments) != 1 {
			return "", errAt(n, "%s() takes one string", id.Value)
		}
		s, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			return "", errAt(n.Arguments[0], "%s() takes a literal string", id.Value)
		}
		return s.Value, nil
	}
	switch id.Value {
	case "hdr":
		name, err := arg()
		if err != nil {
			return value{}, err
		}
		return value{kind: kStr, s: func(e Env) []byte { v, _ := e.Header(name); return v }, node: n}, nil
	case "has_hdr":
		name, err := arg()
		if err != nil {
			return value{}, err
		}
		return value{kind: kBool, b: func(e Env) bool { _, ok := e.Header(name); return ok }, node: n}, nil
	case "cidr":
		s, err := arg()
		if err != nil {
			return value{}, err
		}
		p, err := parsePrefix(s)
		if err != nil {
			return value{}, errAt(n.Arguments[0], "%v", err)
		}
		return value{kind: kPrefixes, prefixes: []netip.Prefix{p}, node: n}, nil
	}
	return value{}, errAt(n, "unknown function %s() (known: hdr, has_hdr, cidr)", id.Value)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func array(n *ast.ArrayNode) (value, error) {
	v := value{kind: kStrList, node: n}
	for _, e := range n.Nodes {
		s, ok := e.(*ast.StringNode)
		if !ok {
			return value{}, errAt(e, "lists may only hold literal strings")
		}
		v.list = append(v.list, s.Value)
	}
	return v, nil
}

func binary(n *ast.BinaryNode) (value, error) {
	l, err := compile(n.Left)
	if err != nil {
		return value{}, err
	}
	if n.Operator == "matches" {
		return matches(n, l)
	}
	r, err := compile(n.Right)
	if err != nil {
		return value{}, err
	}
	bad := func() (value, error) {
		return value{}, errAt(n, "%s cannot compare a %s with a %s", n.Operator, kindNames[l.kind], kindNames[r.kind])
	}
	out := value{kind: kBool, node: n}
	switch n.Operator {
	case "&&", "and", "||", "or":
		if l.kind != kBool || r.kind != kBool {
			return value{}, errAt(n, "%s needs true or false on both sides", n.Operator)
		}
		lf, rf := l.b, r.b
		if n.Operator == "&&" || n.Operator == "and" {
			out.b = func(e Env) bool { return lf(e) && rf(e) }
		} else {
			out.b = func(e Env) bool { return lf(e) || rf(e) }
		}
		return out, nil
	case "==", "!=":
		var eq func(Env) bool
		switch {
		case l.kind == kStr && r.kind == kStr:
			eq = strEqual(l, r)
		case l.kind == kInt && r.kind == kInt:
			lf, rf := l.i, r.i
			eq = func(e Env) bool { return lf(e) == rf(e) }
		case l.kind == kBool && r.kind == kBool:
			lf, rf := l.b, r.b
			eq = func(e Env) bool { return lf(e) == rf(e) }
		case l.kind == kIP && r.kind == kStr && r.isConst:
			a, err := netip.ParseAddr(r.str)
			if err != nil {
				return value{}, errAt(n.Right, "%q is not an address", r.str)
			}
			a = a.Unmap()
			lf := l.ip
			eq = func(e Env) bool { return lf(e).Unmap() == a }
		default:
			return bad()
		}
		if n.Operator == "!=" {
			out.b = func(e Env) bool { return !eq(e) }
		} else {
			out.b = eq
		}
		return out, nil
	case "<", "<=", ">", ">=":
		if l.kind != kInt || r.kind != kInt {
			return bad()
		}
		lf, rf := l.i, r.i
		switch n.Operator {
		case "<":
			out.b = func(e Env) bool { return lf(e) < rf(e) }
		case "<=":
			out.b = func(e Env) bool { return lf(e) <= rf(e) }
		case ">":
			out.b = func(e Env) bool { return lf(e) > rf(e) }
		default:
			out.b = func(e Env) bool { return lf(e) >= rf(e) }
		}
		return out, nil
	case "in":
		return in(n, l, r)
	case "startsWith", "endsWith", "contains":
		if l.kind != kStr || r.kind != kStr {
			return bad()
		}
		lf, rf := l.s, r.s
		switch n.Operator {
		case "startsWith":
			out.b = func(e Env) bool { return bytes.HasPrefix(lf(e), rf(e)) }
		case "endsWith":
			out.b = func(e Env) bool { return bytes.HasSuffix(lf(e), rf(e)) }
		default:
			out.b = func(e Env) bool { return bytes.Contains(lf(e), rf(e)) }
		}
		return out, nil
	}
	return value{}, errAt(n, "operator %s is not supported in conditions", n.Operator)
}

// strEqual compares two strings without allocating.
func strEqual(l, r value) func(Env) bool {
	switch {
	case r.isConst:
		lf, c := l.s, r.str
		return func(e Env) bool { return string(lf(e)) == c }
	case l.isConst:
		rf, c := r.s, l.str
		return func(e Env) bool { return string(rf(e)) == c }
	}
	lf, rf := l.s, r.s
	return func(e Env) bool { return bytes.Equal(lf(e), rf(e)) }
}

func in(n *ast.BinaryNode, l, r value) (value, error) {
	out := value{kind: kBool, node: n}
	switch {
	case l.kind == kStr && r.kind == kStrList:
		lf, list := l.s, r.list
		out.b = func(e Env) bool {
			s := lf(e)
			for _, x := range list {
				if string(s) == x {
					return true
				}
			}
			return false
		}
		return out, nil
	case l.kind == kIP && (r.kind == kPrefixes || r.kind == kStrList):
		prefixes := r.prefixes
		for i, s := range r.list {
			p, err := parsePrefix(s)
			if err != nil {
				return value{}, errAt(n.Right, "list item %d: %v", i+1, err)
			}
			prefixes = append(prefixes, p)
		}
		lf := l.ip
		out.b = func(e Env) bool {
			a := lf(e).Unmap()
			for _, p := range prefixes {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}
		return out, nil
	}
	return value{}, errAt(n, "in needs a string and a list of strings, or src.ip and cidr(\"…\") or a list of addresses")
}

func matches(n *ast.BinaryNode, l value) (value, error) {
	if l.kind != kStr {
		return value{}, errAt(n, "matches needs a string on the left")
	}
	pat, ok := n.Right.(*ast.StringNode)
	if !ok {
		return value{}, errAt(n.Right, "matches needs a literal regular expression")
	}
	re, err := regexp.Compile(pat.Value)
	if err != nil {
		return value{}, errAt(n.Right, "bad regular expression: %v", err)
	}
	lf := l.s
	return value{kind: kBool, b: func(e Env) bool { return re.Match(lf(e)) }, node: n}, nil
}
