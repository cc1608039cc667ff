package sip

import (
	"strings"
	"testing"
)

func msg(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const typicalInvite = `INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Type: application/sdp
Content-Length: 149

v=0
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com
s=-
c=IN IP4 192.0.2.101
t=0 0
m=audio 49172 RTP/AVP 0
a=rtpmap:0 PCMU/8000
`

func TestParseTypicalInvite(t *testing.T) {
	var m Message
	buf := msg(typicalInvite)
	if err := m.Parse(buf); err != nil {
		t.Fatal(err)
	}
	if !m.IsRequest() || m.Method() != INVITE || string(m.RequestURI()) != "sip:bob@biloxi.example.com" {
		t.Fatalf("start line: %v %s", m.Method(), m.RequestURI())
	}
	v, err := m.TopVia()
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Transport) != "UDP" || string(v.Host) != "pc33.atlanta.example.com" || v.Port != 5060 ||
		string(v.Branch) != "z9hG4bK776asdhds" || !v.HasRPort || len(v.RPort) != 0 {
		t.Fatalf("via: %+v", v)
	}
	from, err := m.From()
	if err != nil || string(from.Tag()) != "1928301774" {
		t.Fatalf("from: %v %s", err, from.Tag())
	}
	to, err := m.To()
	if err != nil || len(to.Tag()) != 0 || string(to.URI.User) != "bob" {
		t.Fatalf("to: %v %+v", err, to)
	}
	n, meth, err := m.CSeq()
	if err != nil || n != 314159 || string(meth) != "INVITE" {
		t.Fatalf("cseq %d %s %v", n, meth, err)
	}
	mf, ok, err := m.MaxForwards()
	if mf != 70 || !ok || err != nil {
		t.Fatal("max-forwards")
	}
	if string(m.CallID()) != "a84b4c76e66710@pc33.atlanta.example.com" {
		t.Fatal("call-id")
	}
	if len(m.Body()) != 149 {
		t.Fatalf("body len %d", len(m.Body()))
	}
	out, err := m.AppendTo(nil)
	if err != nil || string(out) != string(buf) {
		t.Fatalf("unedited write differs: %v", err)
	}
}

func TestParseCompactAndFolded(t *testing.T) {
	var m Message
	buf := msg("OPTIONS sip:x@y SIP/2.0\nv: SIP/2.0/UDP a.b;branch=z9hG4bK1, SIP / 2.0 / TCP [2001:db8::1]:5070;branch=z9hG4bK2\nf: <sip:a@b>\n ;tag=77\nt: sip:x@y\ni: abc\nCSeq: 1 OPTIONS\nl: 0\n\n")
	if err := m.Parse(buf); err != nil {
		t.Fatal(err)
	}
	from, err := m.From()
	if err != nil || string(from.Tag()) != "77" {
		t.Fatalf("folded from: %v %q", err, from.Tag())
	}
	it := m.Vias()
	var v Via
	var hosts []string
	for {
		ok, err := it.Next(&v)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		hosts = append(hosts, string(v.Host)+"/"+string(v.Transport))
	}
	if strings.Join(hosts, ",") != "a.b/UDP,[2001:db8::1]/TCP" {
		t.Fatalf("vias %v", hosts)
	}
	if string(m.CallID()) != "abc" {
		t.Fatal("compact call-id")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in  string
		err error
	}{
		{"", ErrEmpty},
		{"INVITE sip:a@b SIP/2.0\nVia SIP/2.0/UDP x\n\n", ErrHeaderLine},
		{"INVITE sip:a@b SIP/3.0\n\n", ErrVersion},
		{"INVITE  sip:a@b SIP/2.0\n\n", ErrRequestURI},
		{"SIP/2.0 99 Weird\n\n", ErrStatus},
		{"INVITE sip:a@b SIP/2.0\nContent-Length: 10\n\nabc", ErrBodyTruncated},
		{"INVITE sip:a@b SIP/2.0\nTo: x\n", ErrNoHeaderEnd},
		{"INV@TE sip:a@b SIP/2.0\n\n", ErrMethod},
	}
	for _, c := range cases {
		var m Message
		if err := m.Parse(msg(c.in)); err != c.err {
			t.Errorf("%q: got %v want %v", c.in, err, c.err)
		}
	}
}

func TestEdits(t *testing.T) {
	var m Message
	if err := m.Parse(msg(typicalInvite)); err != nil {
		t.Fatal(err)
	}
	s := append(m.Scratch(), "Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\n"...)
	m.InsertHeaderFirst(s)
	v, _ := m.TopVia()
	m.InsertAt(v.Raw, true, append(m.Scratch(), ";received=192.0.2.1"...))
	m.ReplaceHeaderValue(m.MaxForwardsIndex(), append(m.Scratch(), "69"...))
	m.SetRequestURI([]byte("sip:bob@192.0.2.4"))
	m.RemoveHeader(m.Index(HdrContact, -1))
	out, err := m.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(typicalInvite, "INVITE sip:bob@biloxi.example.com SIP/2.0\n", "INVITE sip:bob@192.0.2.4 SIP/2.0\nVia: SIP/2.0/UDP proxy;branch=z9hG4bKp\n", 1)
	want = strings.Replace(want, ";rport\n", ";rport;received=192.0.2.1\n", 1)
	want = strings.Replace(want, "Max-Forwards: 70", "Max-Forwards: 69", 1)
	want = strings.Replace(want, "Contact: <sip:alice@pc33.atlanta.example.com>\n", "", 1)
	if string(out) != string(msg(want)) {
		t.Fatalf("got\n%s\nwant\n%s", out, msg(want))
	}
	var m2 Message
	if err := m2.Parse(out); err != nil {
		t.Fatal(err)
	}
}

func TestAuthParse(t *testing.T) {
	var a AuthHeader
	if err := ParseAuth([]byte(`Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"`), &a); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Param("nc"); string(v) != "00000001" {
		t.Fatal("nc", string(v))
	}
	if v, _ := a.Param("USERNAME"); string(v) != "bob" {
		t.Fatal("username")
	}
	if string(a.Scheme) != "Digest" {
		t.Fatal("scheme")
	}
}

func TestParseAllocs(t *testing.T) {
	buf := msg(typicalInvite)
	var m Message
	n := testing.AllocsPerRun(100, func() { readProxyHeaders(t, &m, buf) })
	if n != 0 {
		t.Fatalf("%v allocs per parse", n)
	}
}

func readProxyHeaders(tb testing.TB, m *Message, buf []byte) {
	if err := m.Parse(buf); err != nil {
		tb.Fatal(err)
	}
	if _, err := m.TopVia(); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := m.MaxForwards(); err != nil {
		tb.Fatal(err)
	}
	if _, err := m.RURI(); err != nil {
		tb.Fatal(err)
	}
	if _, err := m.From(); err != nil {
		tb.Fatal(err)
	}
	if _, err := m.To(); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := m.CSeq(); err != nil {
		tb.Fatal(err)
	}
	_ = m.CallID()
	it := m.NameAddrs(HdrRoute)
	var na NameAddr
	for {
		ok, err := it.Next(&na)
		if err != nil {
			tb.Fatal(err)
		}
		if !ok {
			break
		}
	}
}

func BenchmarkParseInvite(b *testing.B) {
	buf := msg(typicalInvite)
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		readProxyHeaders(b, &m, buf)
	}
}

func BenchmarkIndexInvite(b *testing.B) {
	buf := msg(typicalInvite)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}
