package cond

// TEMPORARY stand-in for the config branch; deleted at merge.

import "net/netip"

type Var uint8

const (
	VarMethod Var = iota
	VarRURI
	VarRURIUser
	VarRURIHost
	VarRURIScheme
	VarFromUser
	VarFromHost
	VarFromTag
	VarToUser
	VarToHost
	VarToTag
	VarCallID
	VarUserAgent
	VarProto
)

type IntVar uint8

const (
	IntRURIPort IntVar = iota
	IntSrcPort
	IntMaxForwards
	IntBodyLength
)

type BoolVar uint8

const (
	BoolToSelf BoolVar = iota
	BoolInDialog
)

type Env interface {
	Str(v Var) []byte
	Int(v IntVar) int
	Bool(v BoolVar) bool
	Header(name string) ([]byte, bool)
	SrcIP() netip.Addr
}

type Cond struct{ src string }

func Compile(src string) (*Cond, error) { return &Cond{src}, nil }
func (c *Cond) Eval(env Env) bool {
	return string(env.Str(VarMethod)) == "OPTIONS" && env.Bool(BoolToSelf) && len(env.Str(VarRURIUser)) == 0
}
func (c *Cond) String() string { return c.src }
