package location

import (
	"net/netip"
	"strings"
	"time"
	"unsafe"
)

// Binding is one contact of an address-of-record as the registrar sees it.
// Lookup, Save, Range and events hand out Bindings whose strings and Path
// share the table's stored copy: they stay valid after the call (the table
// never writes into a string it handed out), but Path must not be modified.
type Binding struct {
	AOR          string         // normalised address-of-record, e.g. "alice@example.com"
	Contact      string         // the Contact URI as registered
	Expires      time.Time      // absolute expiry
	Q            int            // q-value in thousandths (q=0.5 → 500)
	CallID       string         // Call-ID of the REGISTER that last changed the binding
	CSeq         uint32         // its CSeq number
	Path         []string       // Path URIs (RFC 3327), top first; read-only
	Received     netip.AddrPort // source address of that REGISTER
	Transport    string         // its transport ("udp", "tcp" …)
	Socket       netip.AddrPort // local address it arrived on
	Instance     string         // +sip.instance without <> (RFC 5626), "" when absent
	RegID        int            // reg-id (RFC 5626), 0 when absent
	UserAgent    string         // User-Agent header
	LastModified time.Time      // time of the last add or refresh
}

// ExpiresIn returns the seconds left before b expires, rounded up (what a
// registrar puts in the expires parameter of its 200 OK); 0 once expired.
func (b *Binding) ExpiresIn(now time.Time) int {
	d := b.Expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// EventKind says what happened to a binding.
type EventKind uint8

// Event kinds.
const (
	EventInsert EventKind = iota + 1 // a new binding
	EventUpdate                      // a refresh or change of an existing binding
	EventDelete                      // removed by expires=0, Contact: *, Delete or DropOldest
	EventExpire                      // removed because its time ran out
)

var kindNames = [...]string{"?", "insert", "update", "delete", "expire"}

// String returns "insert", "update", "delete" or "expire".
func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return kindNames[0]
}

// Event is one change of the table, given to Options.OnChange.
type Event struct {
	Kind    EventKind
	Binding Binding // the binding after the change (before it, for delete and expire)
}

// entry is the stored form of a binding: 96 bytes plus one string holding
// all its text and, when there is a Path, one array of strings into it.
// The AOR is stored once per record.
type entry struct {
	s        string         // contact, call-id, instance, user-agent, transport, path URIs
	path     *string        // first of npath Path strings (substrings of s), nil when none
	expires  int64          // Unix nanoseconds; removed (<0) while a Save compacts
	modified int64          // Unix nanoseconds
	received netip.AddrPort // 32 bytes: keeps an IPv6 zone
	cseq     uint32
	regID    uint32
	q        uint16
	sock     uint16    // index+1 in Table.socks, 0 when none
	off      [5]uint16 // ends of contact, call-id, instance, user-agent, transport in s
	npath    uint8
}

const (
	maxText = 1<<16 - 1 // bytes of text per binding (URIs, Call-ID, User-Agent, Path)
	maxPath = 255       // Path URIs per binding
)

func (e *entry) contact() string   { return e.s[:e.off[0]] }
func (e *entry) callID() string    { return e.s[e.off[0]:e.off[1]] }
func (e *entry) instance() string  { return e.s[e.off[1]:e.off[2]] }
func (e *entry) userAgent() string { return e.s[e.off[2]:e.off[3]] }
func (e *entry) transport() string { return e.s[e.off[3]:e.off[4]] }

func (e *entry) paths() []string {
	if e.npath == 0 {
		return nil
	}
	return unsafe.Slice(e.path, e.npath)
}

// text is the variable-length part of a binding being stored, viewed as
// strings that may alias a request buffer (never retained).
type text struct {
	contact, callID, instance, userAgent, transport string
	pathB                                           [][]byte // Path from a Register
	pathS                                           []string // Path from a Binding
}

func (x *text) npath() int { return len(x.pathB) + len(x.pathS) }

func (x *text) pathAt(i int) string {
	if x.pathS != nil {
		return x.pathS[i]
	}
	return str(x.pathB[i])
}

func (x *text) size() int {
	n := len(x.contact) + len(x.callID) + len(x.instance) + len(x.userAgent) + len(x.transport)
	for i := range x.npath() {
		n += len(x.pathAt(i))
	}
	return n
}

// same reports whether e already holds exactly this text, so that a
// refresh keeps the stored string and allocates nothing.
func (e *entry) same(x *text) bool {
	if e.contact() != x.contact || e.callID() != x.callID || e.instance() != x.instance ||
		e.userAgent() != x.userAgent || e.transport() != x.transport || int(e.npath) != x.npath() {
		return false
	}
	for i, p := range e.paths() {
		if p != x.pathAt(i) {
			return false
		}
	}
	return true
}

// setText copies x into e (one string, plus the Path array when there is
// one). x.size() <= maxText and x.npath() <= maxPath were checked.
func (e *entry) setText(x *text) {
	if e.same(x) {
		return
	}
	var sb strings.Builder
	sb.Grow(x.size())
	parts := [...]string{x.contact, x.callID, x.instance, x.userAgent, x.transport}
	for i, p := range parts {
		sb.WriteString(p)
		e.off[i] = uint16(sb.Len())
	}
	np := x.npath()
	for i := range np {
		sb.WriteString(x.pathAt(i))
	}
	e.s = sb.String()
	e.path, e.npath = nil, uint8(np)
	if np > 0 {
		arr := make([]string, np)
		at := int(e.off[4])
		for i := range arr {
			n := len(x.pathAt(i))
			arr[i] = e.s[at : at+n]
			at += n
		}
		e.path = &arr[0]
	}
}

// str views b as a string for comparison or copying; the string must not
// be kept.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// bytesOf views s as bytes for read-only parsing.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
