// Package registrar is the REGISTER step (RFC 3261 §10.3, RFC 3327,
// RFC 5626): it saves the bindings of a REGISTER in the server's location
// table and answers 200 with every current binding.
package registrar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/location"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
)

// Options configure the registrar step and, for the first step that uses
// it, the location table.
type Options struct {
	// Domains are the domains served (the host of the To URI); empty:
	// every domain. A REGISTER for another domain goes on down the
	// pipeline (a proxy forwards it).
	Domains []string `yaml:"domains"`
	// DefaultExpires, MinExpires and MaxExpires are in seconds
	// (defaults 3600, 60, 86400); a shorter non-zero expiry gets 423 with
	// Min-Expires.
	DefaultExpires int `yaml:"default_expires"`
	MinExpires     int `yaml:"min_expires"`
	MaxExpires     int `yaml:"max_expires"`
	// MaxContacts caps the bindings of one address-of-record (default 10;
	// a REGISTER beyond it gets 403).
	MaxContacts int `yaml:"max_contacts"`
	// Buckets sizes the location table (about the expected AORs / 4).
	Buckets int `yaml:"buckets"`
	// Persistence is memory (default), write-through or write-back (see
	// persist.go); DB is the database file for the last two. A restart in
	// either restores every live binding.
	Persistence string `yaml:"persistence"`
	DB          string `yaml:"db"`
}

func (o Options) tableOptions() location.Options {
	if o.DefaultExpires == 0 {
		o.DefaultExpires = 3600
	}
	if o.MinExpires == 0 {
		o.MinExpires = 60
	}
	if o.MaxExpires == 0 {
		o.MaxExpires = 86400
	}
	if o.MaxContacts == 0 {
		o.MaxContacts = 10
	}
	return location.Options{
		Buckets:        o.Buckets,
		MaxContacts:    o.MaxContacts,
		DefaultExpires: time.Duration(o.DefaultExpires) * time.Second,
		MinExpires:     time.Duration(o.MinExpires) * time.Second,
		MaxExpires:     time.Duration(o.MaxExpires) * time.Second,
	}
}

// Table returns the server's location table, created and started with o
// the first time.
func Table(srv *proxy.Server, o Options) (*location.Table, error) {
	v, err := srv.Shared("location", func() (any, error) {
		p, err := openPersistence(srv, o)
		if err != nil {
			return nil, err
		}
		opt := o.tableOptions()
		if p != nil {
			opt.OnChange = p.onChange
		}
		t := location.New(opt)
		if p != nil {
			if _, err := p.restore(t); err != nil {
				return nil, fmt.Errorf("registrar: restoring bindings from %s: %v", o.DB, err)
			}
		}
		t.Start()
		return closer{t}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(closer).Table, nil
}

// closer adapts Table.Close to the io.Closer shape Server.Close calls.
type closer struct{ *location.Table }

func (c closer) Close() error { c.Table.Close(); return nil }

// Domains is a set of served domains (lower case); empty serves all.
type Domains map[string]struct{}

// NewDomains builds the set.
func NewDomains(ds []string) Domains {
	if len(ds) == 0 {
		return nil
	}
	s := Domains{}
	for _, d := range ds {
		s[strings.ToLower(d)] = struct{}{}
	}
	return s
}

// Serves reports whether host (any case) is served.
func (d Domains) Serves(host []byte) bool {
	if d == nil {
		return true
	}
	var b [256]byte
	if len(host) > len(b) {
		return false
	}
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	_, ok := d[string(b[:len(host)])] // no allocation: map lookup by converted bytes
	return ok
}

// Registrar is a configured registrar step.
type Registrar struct {
	table   *location.Table
	domains Domains
	minExp  int
	pool    sync.Pool // *state
}

// state is the per-request working space, pooled.
type state struct {
	reg      location.Register
	bindings []location.Binding
	extra    []byte
}

// New returns a registrar saving into srv's location table.
func New(o Options, srv *proxy.Server) (*Registrar, error) {
	if o.MinExpires < 0 || o.MaxExpires < 0 || o.DefaultExpires < 0 || o.MaxContacts < 0 {
		return nil, errors.New("registrar: expires and max_contacts must not be negative")
	}
	if o.MaxExpires > 0 && o.MinExpires > o.MaxExpires {
		return nil, fmt.Errorf("registrar: min_expires %d is above max_expires %d", o.MinExpires, o.MaxExpires)
	}
	t, err := Table(srv, o)
	if err != nil {
		return nil, err
	}
	r := &Registrar{table: t, domains: NewDomains(o.Domains), minExp: int(t.Options().MinExpires / time.Second)}
	r.pool.New = func() any { return &state{bindings: make([]location.Binding, 0, 16), extra: make([]byte, 0, 2048)} }
	return r, nil
}

// Handle saves the bindings of a REGISTER for a served domain and ends the
// pipeline; other requests go on.
func (r *Registrar) Handle(c *proxy.Context) proxy.Action {
	m := c.Msg
	if m.Method() != sip.REGISTER {
		return proxy.Continue
	}
	to, err := m.To()
	if err != nil {
		c.Reply(400, "Malformed To header")
		return proxy.Stop
	}
	if !r.domains.Serves(to.URI.Host) {
		return proxy.Continue
	}
	st := r.pool.Get().(*state)
	defer r.pool.Put(st)
	if err := location.ParseRegister(m, &st.reg); err != nil {
		code, reason := 400, "Bad Request"
		var se *sip.Error
		var le *location.Error
		switch {
		case errors.As(err, &le):
			code, reason = le.Code, le.Reason
		case errors.As(err, &se):
			code, reason = se.Code, se.Reason
		}
		c.Reply(code, reason)
		return proxy.Stop
	}
	st.reg.Received, st.reg.Socket = c.Src, c.Local
	st.reg.Transport = append(st.reg.Transport[:0], c.Proto.String()...)
	now := r.table.Now()
	bs, err := r.table.Save(&st.reg, now, st.bindings[:0])
	if err == location.ErrCSeqOrder {
		// A retransmission (same Call-ID and CSeq as stored) gets the
		// same answer again; a reordered request gets 500.
		bs = r.table.LookupBytes(st.reg.AOR, now, st.bindings[:0])
		if !sameRequest(bs, &st.reg) {
			c.Reply(500, "Out of Order CSeq")
			return proxy.Stop
		}
		err = nil
	}
	if err != nil {
		var le *location.Error
		if errors.As(err, &le) {
			if le == location.ErrIntervalTooBrief {
				x := append(st.extra[:0], "Min-Expires: "...)
				x = strconv.AppendInt(x, int64(r.minExp), 10)
				c.ReplyWith(423, le.Reason, append(x, "\r\n"...))
				return proxy.Stop
			}
			c.Reply(le.Code, le.Reason)
			return proxy.Stop
		}
		c.Reply(500, "Server Internal Error")
		return proxy.Stop
	}
	st.bindings = bs[:0]
	c.ReplyWith(200, "OK", appendContacts(st.extra[:0], bs, now, m))
	return proxy.Stop
}

// sameRequest reports whether a binding was last changed by this very
// REGISTER (same Call-ID and CSeq): the request is a retransmission.
func sameRequest(bs []location.Binding, reg *location.Register) bool {
	for i := range bs {
		if bs[i].CSeq == reg.CSeq && bs[i].CallID == string(reg.CallID) {
			return true
		}
	}
	return false
}

// appendContacts writes the header lines of the 200 OK (§10.3 step 8):
// one Contact per binding with its remaining expiry and q, the Path of
// the request when the UA supports it (RFC 3327 §5.3), and Date.
func appendContacts(dst []byte, bs []location.Binding, now time.Time, m *sip.Message) []byte {
	for i := range bs {
		b := &bs[i]
		dst = append(dst, "Contact: <"...)
		dst = append(dst, b.Contact...)
		dst = append(dst, ">;expires="...)
		dst = strconv.AppendInt(dst, int64(b.ExpiresIn(now)), 10)
		if b.Q != 1000 {
			dst = append(dst, ";q="...)
			dst = AppendQ(dst, b.Q)
		}
		if b.Instance != "" {
			dst = append(dst, `;+sip.instance="<`...)
			dst = append(dst, b.Instance...)
			dst = append(dst, `>"`...)
			if b.RegID > 0 {
				dst = append(dst, ";reg-id="...)
				dst = strconv.AppendInt(dst, int64(b.RegID), 10)
			}
		}
		dst = append(dst, "\r\n"...)
	}
	if m.HasValue(sip.HdrSupported, "path") {
		for i := m.Index(sip.HdrPath, -1); i >= 0; i = m.Index(sip.HdrPath, i) {
			_, _, v := m.HeaderAt(i)
			dst = append(dst, "Path: "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	dst = append(dst, "Date: "...)
	dst = dates.append(dst, now)
	return append(dst, "\r\n"...)
}

// dates caches the Date value of the current second: formatting it per
// REGISTER cost a tenth of the registrar's time.
var dates dateCache

type dateCache struct{ cur atomic.Pointer[dateText] }

type dateText struct {
	sec  int64
	text []byte
}

func (d *dateCache) append(dst []byte, now time.Time) []byte {
	sec := now.Unix()
	t := d.cur.Load()
	if t == nil || t.sec != sec {
		t = &dateText{sec: sec, text: now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")}
		d.cur.Store(t)
	}
	return append(dst, t.text...)
}

// AppendQ writes a q-value in thousandths as a qvalue: 1, 0.5, 0.125.
func AppendQ(dst []byte, q int) []byte {
	if q >= 1000 {
		return append(dst, '1')
	}
	if q <= 0 {
		return append(dst, '0')
	}
	dst = append(dst, '0', '.', byte('0'+q/100), byte('0'+q/10%10), byte('0'+q%10))
	for dst[len(dst)-1] == '0' && dst[len(dst)-2] != '.' {
		dst = dst[:len(dst)-1]
	}
	return dst
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "registrar",
		Doc:  "save the bindings of REGISTER requests in the location table (RFC 3261 §10.3) and answer 200",
		New: func(d pipeline.Decoder, srv *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o, srv)
		},
	})
}
