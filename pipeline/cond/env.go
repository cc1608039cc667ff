// Package cond compiles the `if:` conditions of pipeline steps. A condition
// is parsed once, at load, with expr-lang's parser, then compiled into a
// tree of typed Go closures that read the request through Env; evaluating
// it allocates nothing.
package cond

import "net/netip"

// Var names a string-valued field of the request.
type Var uint8

// String fields.
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

// IntVar names an integer field of the request.
type IntVar uint8

// Integer fields.
const (
	IntRURIPort IntVar = iota
	IntSrcPort
	IntMaxForwards // -1 when absent
	IntBodyLength
	IntFailureCode // in the failure pipeline: the best final status; else 0
)

// BoolVar names a boolean property of the request.
type BoolVar uint8

// Boolean properties.
const (
	BoolToSelf   BoolVar = iota // the Request-URI names this server
	BoolInDialog                // the To header has a tag
)

// Env is the request as conditions see it. Implementations must not
// allocate: conditions run for every message.
type Env interface {
	Str(v Var) []byte
	Int(v IntVar) int
	Bool(v BoolVar) bool
	Header(name string) ([]byte, bool)
	SrcIP() netip.Addr
}

var strVars = map[string]Var{
	"method":     VarMethod,
	"ruri":       VarRURI,
	"call_id":    VarCallID,
	"user_agent": VarUserAgent,
	"proto":      VarProto,
}

var memberStrVars = map[string]map[string]Var{
	"ruri": {"user": VarRURIUser, "host": VarRURIHost, "scheme": VarRURIScheme},
	"from": {"user": VarFromUser, "host": VarFromHost, "tag": VarFromTag},
	"to":   {"user": VarToUser, "host": VarToHost, "tag": VarToTag},
}

var intVars = map[string]IntVar{
	"max_forwards": IntMaxForwards,
	"body_length":  IntBodyLength,
	"failure_code": IntFailureCode,
}

var memberIntVars = map[string]map[string]IntVar{
	"ruri": {"port": IntRURIPort},
	"src":  {"port": IntSrcPort},
}

var boolVars = map[string]BoolVar{
	"to_self":   BoolToSelf,
	"in_dialog": BoolInDialog,
}
