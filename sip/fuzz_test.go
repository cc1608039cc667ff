package sip

import (
	"bytes"
	"testing"
)

// FuzzParseMessage parses arbitrary bytes, reads every typed header, applies
// the edits a stateless proxy makes and checks that the result parses again.
func FuzzParseMessage(f *testing.F) {
	f.Add(msg(typicalInvite))
	f.Add(msg("SIP/2.0 200 OK\nVia: SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4;rport=5\nv: SIP/2.0/TCP [::1]:5\nf: <sip:a@b>;tag=1\nt: <sip:c@d>;tag=2\ni: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n"))
	f.Add(msg("REGISTER sip:r SIP/2.0\nVia: SIP/2.0/UDP h\nContact: *\nContact: \"A, B\" <sip:a@b;lr>;expires=60, <sips:[2001:db8::1]:5061>;q=0.5\nRoute: <sip:p1;lr>,<sip:p2>\nAuthorization: Digest username=\"a\", nc=00000001\nExpires: 3600\n\n"))
	f.Add(msg("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\n x\nSubject: a\n\tb\n\n"))
	for _, c := range tortureSeeds(f) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		var m Message
		if err := m.Parse(data); err != nil {
			return
		}
		exerciseAccessors(&m)
		v, err := m.TopVia()
		if err != nil || !m.IsRequest() {
			return
		}
		m.InsertAt(v.Raw, true, append(m.Scratch(), ";received=192.0.2.1"...))
		m.InsertHeaderFirst(append(m.Scratch(), "Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKx\r\n"...))
		if i := m.MaxForwardsIndex(); i >= 0 {
			m.ReplaceHeaderValue(i, append(m.Scratch(), "9"...))
		}
		out, err := m.AppendTo(nil)
		if err != nil {
			return
		}
		var m2 Message
		if err := m2.Parse(out); err != nil {
			t.Fatalf("forwarded message does not parse: %v\nin: %q\nout: %q", err, orig, out)
		}
		if v2, err := m2.TopVia(); err != nil || string(v2.Host) != "192.0.2.2" {
			t.Fatalf("our Via is not on top: %v %q", err, out)
		}
	})
}

func exerciseAccessors(m *Message) {
	m.TopVia()
	m.From()
	m.To()
	m.RURI()
	m.CSeq()
	m.MaxForwards()
	m.Expires()
	m.ContentLength()
	m.InDialog()
	m.HeaderByName("X-Unknown")
	var v Via
	it := m.Vias()
	for n := 0; n < 100; n++ {
		if ok, _ := it.Next(&v); !ok {
			break
		}
	}
	var na NameAddr
	for _, id := range []HeaderID{HdrContact, HdrRoute, HdrRecordRoute} {
		it := m.NameAddrs(id)
		for n := 0; n < 100; n++ {
			if ok, _ := it.Next(&na); !ok {
				break
			}
		}
	}
	vi := m.Values(HdrSupported)
	for n := 0; n < 100; n++ {
		if _, ok := vi.Next(); !ok {
			break
		}
	}
	var a AuthHeader
	m.Authorization(HdrAuthorization, &a)
	a.Param("nonce")
	AppendResponse(nil, m, 400, "Bad", []byte("t"), nil)
}
