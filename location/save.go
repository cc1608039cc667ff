package location

import (
	"net/netip"
	"strings"
	"time"

	"github.com/veloxsip/velox/sip"
)

// Error is a REGISTER the table refuses. Code is the status code the
// registrar would normally answer with and Reason its reason phrase; the
// registrar may choose otherwise (e.g. 503 for ErrTooManyContacts).
type Error struct {
	Code   int
	Reason string
}

// Error returns "location: " and the reason.
func (e *Error) Error() string { return "location: " + e.Reason }

// Errors of Save. They are package values: compare with == or errors.Is.
var (
	// ErrCSeqOrder: a binding has the request's Call-ID and a CSeq not
	// lower than the request's (RFC 3261 §10.3 step 7, a reordered or
	// replayed REGISTER). Nothing was changed.
	ErrCSeqOrder = &Error{Code: 500, Reason: "Out of Order CSeq"}
	// ErrInvalidStar: Contact: * with other contacts or a non-zero
	// Expires (RFC 3261 §10.3 step 6).
	ErrInvalidStar = &Error{Code: 400, Reason: "Invalid Contact *"}
	// ErrTooManyContacts: the AOR would exceed Options.MaxContacts.
	ErrTooManyContacts = &Error{Code: 403, Reason: "Too Many Contacts"}
	// ErrIntervalTooBrief: a non-zero expiry below Options.MinExpires;
	// the registrar answers 423 with a Min-Expires header.
	ErrIntervalTooBrief = &Error{Code: 423, Reason: "Interval Too Brief"}
	// ErrBadContact: a Contact URI that does not parse, a q-value out of
	// 0..1000 or a reg-id out of range.
	ErrBadContact = &Error{Code: 400, Reason: "Invalid Contact"}
	// ErrTooLong: more than 65535 bytes of text or 255 Path URIs in one
	// binding.
	ErrTooLong = &Error{Code: 400, Reason: "Binding Too Large"}
	// ErrNoAOR: an empty address-of-record.
	ErrNoAOR = &Error{Code: 404, Reason: "Not Found"}
	// ErrTooManySockets: more than 65535 distinct local sockets.
	ErrTooManySockets = &Error{Code: 500, Reason: "Too Many Sockets"}
)

// NoValue marks an absent Expires header, expires parameter or q-value.
// Note that 0 is a value: expires 0 removes a binding, q 0 is the lowest
// priority; start from NewContact and Register.Reset (or ParseRegister).
const NoValue = -1

// Contact is one Contact value of a REGISTER. Byte slices may alias the
// request; the table copies what it keeps.
type Contact struct {
	URI      []byte // the Contact URI (without <>)
	Expires  int    // expires parameter in seconds, NoValue when absent
	Q        int    // q in thousandths, NoValue when absent
	Instance []byte // +sip.instance without <>, nil when absent
	RegID    int    // reg-id, 0 when absent; ignored without Instance
}

// NewContact returns a Contact for uri with no expires, q, instance or
// reg-id.
func NewContact(uri []byte) Contact { return Contact{URI: uri, Expires: NoValue, Q: NoValue} }

// Register is what Save needs from one REGISTER request (ParseRegister
// fills it from a sip.Message). Byte slices may alias the request.
type Register struct {
	AOR       []byte // normalised AOR (AppendAOR)
	CallID    []byte
	CSeq      uint32
	Expires   int  // Expires header in seconds, NoValue when absent (Reset sets it)
	Star      bool // Contact: *
	Contacts  []Contact
	Path      [][]byte // Path URIs, top first
	Received  netip.AddrPort
	Transport []byte
	Socket    netip.AddrPort
	UserAgent []byte

	aorBuf []byte
}

// Reset empties r, keeping its slices' storage.
func (r *Register) Reset() {
	*r = Register{Contacts: r.Contacts[:0], Path: r.Path[:0], aorBuf: r.aorBuf[:0], Expires: NoValue}
}

// op is the plan for one Contact of a REGISTER, made before anything
// changes so that the request applies entirely or not at all.
type op struct {
	uri   sip.URI
	match int   // index of the existing binding it refers to, -1: none
	exp   int64 // absolute expiry, 0: remove
	q     uint16
	regID uint32
	skip  bool // a later contact of the same request names the same binding
}

const (
	fateKeep = iota
	fateUpdate
	fateRemove
)

// Save applies one REGISTER to its AOR atomically (RFC 3261 §10.3 steps
// 6–8, RFC 5626 §6) and appends the AOR's resulting bindings to dst, in
// Lookup order, for the 200 OK. A REGISTER without contacts is a query.
// On error no binding changed (bindings already past their expiry may have
// been removed) and dst is returned as it was.
//
// For each contact: the binding with the same +sip.instance and reg-id,
// else with an equal URI (RFC 3261 §19.1.4), is refreshed, or removed when
// the expiry is 0; otherwise a binding is added. A binding whose Call-ID
// is the request's must have a lower CSeq, else the request fails with
// ErrCSeqOrder. Contact: * with Expires: 0 removes every binding under the
// same Call-ID/CSeq rule.
func (t *Table) Save(reg *Register, now time.Time, dst []Binding) ([]Binding, error) {
	if len(reg.AOR) == 0 {
		return dst, ErrNoAOR
	}
	if reg.Star && (len(reg.Contacts) > 0 || reg.Expires != 0) {
		return dst, ErrInvalidStar
	}
	ns := now.UnixNano()
	var opsBuf [4]op
	ops := opsBuf[:0]
	if len(reg.Contacts) > len(opsBuf) {
		ops = make([]op, 0, len(reg.Contacts))
	}
	// Validation that needs no lock.
	for i := range reg.Contacts {
		c := &reg.Contacts[i]
		ops = append(ops, op{match: -1})
		o := &ops[i]
		if err := sip.ParseURI(c.URI, &o.uri); err != nil {
			return dst, ErrBadContact
		}
		secs := c.Expires
		if secs < 0 {
			secs = reg.Expires
		}
		d := t.opt.DefaultExpires
		if secs >= 0 {
			d = time.Duration(secs) * time.Second
		}
		if d > 0 {
			if d < t.opt.MinExpires {
				return dst, ErrIntervalTooBrief
			}
			if t.opt.MaxExpires > 0 && d > t.opt.MaxExpires {
				d = t.opt.MaxExpires
			}
			o.exp = ns + int64(d)
		}
		q := c.Q
		if q < 0 {
			q = t.opt.DefaultQ
		}
		if q > 1000 || c.RegID < 0 || int64(c.RegID) > 1<<31-1 {
			return dst, ErrBadContact
		}
		o.q = uint16(q)
		if len(c.Instance) > 0 {
			o.regID = uint32(c.RegID)
		}
		if len(reg.Path) > maxPath {
			return dst, ErrTooLong
		}
		x := t.textOf(reg, c)
		if x.size() > maxText {
			return dst, ErrTooLong
		}
		// A later value naming the same binding wins.
		for k := range i {
			if ops[k].skip {
				continue
			}
			pc := &reg.Contacts[k]
			if len(c.Instance) > 0 && len(pc.Instance) > 0 {
				if strings.EqualFold(str(c.Instance), str(pc.Instance)) && c.RegID == pc.RegID {
					ops[k].skip = true
				}
			} else if sip.EqualURI(&ops[k].uri, &o.uri) {
				ops[k].skip = true
			}
		}
	}
	sock, err := t.sockIndex(reg.Socket)
	if err != nil {
		return dst, err
	}

	aor := str(reg.AOR)
	bi, tag := t.hash(aor)
	b := &t.buckets[bi]
	b.mu.Lock()
	defer b.mu.Unlock()
	ri := b.find(tag, aor)
	var r *record
	if ri >= 0 {
		r = &b.recs[ri]
		if t.purge(r, ns); r.len() == 0 {
			t.remove(b, ri)
			r = nil
		}
	}
	nb := 0 // bindings before
	if r != nil {
		nb = r.len()
	}
	callID := str(reg.CallID)
	// Check every rule before changing anything.
	if reg.Star {
		for i := range nb {
			if e := r.at(i); e.callID() == callID && reg.CSeq <= e.cseq {
				return dst, ErrCSeqOrder
			}
		}
		if r != nil {
			t.deleteAll(b, ri)
		}
		return dst, nil
	}
	var fateBuf [8]uint8
	fate := fateBuf[:0]
	if nb > len(fateBuf) {
		fate = make([]uint8, 0, nb)
	}
	fate = fate[:nb]
	adds := 0
	for i := range ops {
		o := &ops[i]
		if o.skip {
			continue
		}
		if r != nil {
			o.match = matchBinding(r, &reg.Contacts[i], &o.uri)
		}
		if o.match < 0 {
			if o.exp > 0 {
				adds++
			}
			continue
		}
		e := r.at(o.match)
		if e.callID() == callID && reg.CSeq <= e.cseq {
			return dst, ErrCSeqOrder
		}
		if o.exp == 0 {
			fate[o.match] = fateRemove
		} else {
			fate[o.match] = fateUpdate
		}
	}
	final := adds
	for _, f := range fate {
		if f != fateRemove {
			final++
		}
	}
	drop := 0
	if lim := t.opt.MaxContacts; lim > 0 && adds > 0 && final > lim {
		drop = final - lim
		if !t.opt.DropOldest {
			return dst, ErrTooManyContacts
		}
		spare := 0
		for _, f := range fate {
			if f == fateKeep {
				spare++
			}
		}
		if spare < drop {
			return dst, ErrTooManyContacts
		}
	}
	if r == nil {
		if final == 0 {
			return dst, nil // nothing stored, nothing to store
		}
		ri, r = len(b.recs), t.add(b, tag, string(reg.AOR))
	}

	// Apply.
	socks := *t.socks.Load()
	for ; drop > 0; drop-- { // least recently modified of the untouched ones
		old := -1
		for i, f := range fate {
			if f == fateKeep && (old < 0 || r.at(i).modified < r.at(old).modified) {
				old = i
			}
		}
		fate[old] = fateRemove
	}
	for i, f := range fate {
		if f == fateRemove {
			e := r.at(i)
			if t.opt.OnChange != nil {
				t.opt.OnChange(Event{Kind: EventDelete, Binding: t.view(r, e, socks)})
			}
			e.expires = -1
		}
	}
	first := int64(0) // earliest new expiry
	for i := range ops {
		o := &ops[i]
		if o.skip || o.exp == 0 || (o.match >= 0 && fate[o.match] == fateRemove) {
			continue
		}
		var e *entry
		kind := EventUpdate
		if o.match >= 0 {
			e = r.at(o.match)
		} else {
			e = r.push()
			kind = EventInsert
		}
		x := t.textOf(reg, &reg.Contacts[i])
		e.setText(&x)
		e.expires, e.modified = o.exp, ns
		e.received, e.sock = reg.Received, sock
		e.cseq, e.q, e.regID = reg.CSeq, o.q, o.regID
		if first == 0 || o.exp < first {
			first = o.exp
		}
		if t.opt.OnChange != nil {
			t.opt.OnChange(Event{Kind: kind, Binding: t.view(r, e, socks)})
		}
	}
	// Compact out the removed bindings, then sort.
	n, k := r.len(), 0
	for i := range n {
		if e := r.at(i); e.expires >= 0 {
			if k != i {
				*r.at(k) = *e
			}
			k++
		}
	}
	r.truncate(k)
	t.nbind.Add(int64(k - nb))
	if k == 0 {
		t.remove(b, ri)
		return dst, nil
	}
	r.sort()
	if first != 0 {
		t.arm(b, first)
	}
	for i := range k {
		dst = append(dst, t.view(r, r.at(i), socks))
	}
	return dst, nil
}

// textOf gathers the text a binding stores for contact c of reg.
func (t *Table) textOf(reg *Register, c *Contact) text {
	return text{contact: str(c.URI), callID: str(reg.CallID), instance: str(c.Instance),
		userAgent: str(reg.UserAgent), transport: str(reg.Transport), pathB: reg.Path}
}

// matchBinding returns the index of the binding contact c refers to: the
// one with its +sip.instance and reg-id (RFC 5626 §6; compared without
// case, as the instance is normally a UUID URN), else the one with an
// equal URI (RFC 3261 §10.3 step 7, §19.1.4) — for a contact with an
// instance, only among bindings without one, so that two flows never
// merge; -1 when there is none.
func matchBinding(r *record, c *Contact, u *sip.URI) int {
	n := r.len()
	inst := len(c.Instance) > 0
	if inst {
		for i := range n {
			e := r.at(i)
			if e.regID == uint32(c.RegID) && strings.EqualFold(e.instance(), str(c.Instance)) {
				return i
			}
		}
	}
	for i := range n {
		if e := r.at(i); (!inst || e.instance() == "") && uriEqual(e.contact(), c.URI, u) {
			return i
		}
	}
	return -1
}

// uriEqual compares a stored contact with a parsed one.
func uriEqual(stored string, raw []byte, u *sip.URI) bool {
	if stored == str(raw) {
		return true
	}
	var su sip.URI
	if sip.ParseURI(bytesOf(stored), &su) != nil {
		return false
	}
	return sip.EqualURI(&su, u)
}

// Restore puts a binding back as it was stored, without the REGISTER rules
// and without an event: for loading persisted bindings at start-up. It
// replaces the AOR's binding with the same instance and reg-id or the same
// contact URI. An expired binding is ignored.
func (t *Table) Restore(bd Binding) error {
	if bd.AOR == "" {
		return ErrNoAOR
	}
	now := t.opt.Clock().UnixNano()
	exp := bd.Expires.UnixNano()
	if exp <= now {
		return nil
	}
	if bd.Instance == "" {
		bd.RegID = 0
	}
	c := Contact{URI: bytesOf(bd.Contact), Instance: bytesOf(bd.Instance), RegID: bd.RegID}
	var u sip.URI
	if sip.ParseURI(c.URI, &u) != nil || bd.Q < 0 || bd.Q > 1000 || bd.RegID < 0 || int64(bd.RegID) > 1<<31-1 {
		return ErrBadContact
	}
	x := text{contact: bd.Contact, callID: bd.CallID, instance: bd.Instance, userAgent: bd.UserAgent,
		transport: bd.Transport, pathS: bd.Path}
	if x.size() > maxText || x.npath() > maxPath {
		return ErrTooLong
	}
	sock, err := t.sockIndex(bd.Socket)
	if err != nil {
		return err
	}
	bi, tag := t.hash(bd.AOR)
	b := &t.buckets[bi]
	b.mu.Lock()
	defer b.mu.Unlock()
	var r *record
	if i := b.find(tag, bd.AOR); i >= 0 {
		r = &b.recs[i]
	} else {
		r = t.add(b, tag, strings.Clone(bd.AOR))
	}
	var e *entry
	if i := matchBinding(r, &c, &u); i >= 0 {
		e = r.at(i)
	} else {
		e = r.push()
		t.nbind.Add(1)
	}
	e.setText(&x)
	e.expires, e.modified = exp, bd.LastModified.UnixNano()
	e.received, e.sock = bd.Received, sock
	e.cseq, e.q, e.regID = bd.CSeq, uint16(bd.Q), uint32(bd.RegID)
	r.sort()
	t.arm(b, exp)
	return nil
}
