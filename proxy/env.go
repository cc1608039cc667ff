package proxy

import (
	"net/netip"

	"github.com/veloxsip/velox/pipeline/cond"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Context is the environment step conditions are evaluated in.
var _ cond.Env = (*Context)(nil)

// Str returns a string-valued field of the request (nil when absent).
func (c *Context) Str(v cond.Var) []byte {
	m := c.Msg
	switch v {
	case cond.VarMethod:
		return m.MethodName()
	case cond.VarRURI:
		return m.RequestURI()
	case cond.VarRURIUser, cond.VarRURIHost, cond.VarRURIScheme:
		u, err := m.RURI()
		if err != nil {
			return nil
		}
		switch v {
		case cond.VarRURIUser:
			return u.User
		case cond.VarRURIHost:
			return u.Host
		default:
			return u.SchemeRaw
		}
	case cond.VarFromUser, cond.VarFromHost, cond.VarFromTag:
		na, err := m.From()
		return nameAddrField(na, err, v-cond.VarFromUser)
	case cond.VarToUser, cond.VarToHost, cond.VarToTag:
		na, err := m.To()
		return nameAddrField(na, err, v-cond.VarToUser)
	case cond.VarCallID:
		return m.CallID()
	case cond.VarUserAgent:
		b, _ := m.Header(sip.HdrUserAgent)
		return b
	case cond.VarProto:
		return protoBytes(c.Proto)
	}
	return nil
}

// nameAddrField returns the user (0), host (1) or tag (2) of na.
func nameAddrField(na *sip.NameAddr, err error, which cond.Var) []byte {
	if err != nil {
		return nil
	}
	switch which {
	case 0:
		return na.URI.User
	case 1:
		return na.URI.Host
	default:
		return na.Tag()
	}
}

// protoNames holds each transport's name as bytes, so that a condition
// reads it without converting.
var protoNames = func() (n [transport.WSS + 1][]byte) {
	for p := transport.UDP; p <= transport.WSS; p++ {
		n[p] = []byte(p.String())
	}
	return n
}()

func protoBytes(p transport.Proto) []byte {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return nil
}

// Int returns an integer field of the request.
func (c *Context) Int(v cond.IntVar) int {
	m := c.Msg
	switch v {
	case cond.IntRURIPort:
		if u, err := m.RURI(); err == nil {
			return int(u.Port)
		}
	case cond.IntSrcPort:
		return int(c.Src.Port())
	case cond.IntMaxForwards:
		n, present, err := m.MaxForwards()
		if present && err == nil {
			return n
		}
		return -1
	case cond.IntBodyLength:
		return len(m.Body())
	case cond.IntFailureCode:
		return c.FailureCode
	}
	return 0
}

// Bool returns a boolean property of the request.
func (c *Context) Bool(v cond.BoolVar) bool {
	switch v {
	case cond.BoolToSelf:
		u, err := c.Msg.RURI()
		return err == nil && c.srv.self.IsSelfURI(u)
	case cond.BoolInDialog:
		return c.Msg.InDialog()
	}
	return false
}

// Header returns the first value of the named header.
func (c *Context) Header(name string) ([]byte, bool) { return c.Msg.HeaderByName(name) }

// SrcIP returns the source address of the request.
func (c *Context) SrcIP() netip.Addr { return c.Src.Addr() }
