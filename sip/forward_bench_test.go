package sip

import (
	"strconv"
	"testing"
)

// statelessForward does what a stateless proxy does to a request: read the
// headers it needs, add received/rport, its Via and Record-Route, decrement
// Max-Forwards and write the result.
func statelessForward(tb testing.TB, m *Message, in, out []byte) []byte {
	readProxyHeaders(tb, m, in)
	v, _ := m.TopVia()
	t := append(m.Scratch(), ";received=192.0.2.1"...)
	m.InsertAt(v.Raw, true, t)
	if v.HasRPort {
		m.InsertAt(v.RPortName(), true, append(m.Scratch(), "=5060"...))
	}
	t = append(m.Scratch(), "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKVx0123456789abcdef.0123456789abcdef\r\n"...)
	t = append(t, "Record-Route: <sip:192.0.2.2:5060;lr>\r\n"...)
	m.InsertHeaderFirst(t)
	mf, _, _ := m.MaxForwards()
	m.ReplaceHeaderValue(m.MaxForwardsIndex(), strconv.AppendInt(m.Scratch(), int64(mf-1), 10))
	b, err := m.AppendTo(out[:0])
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestStatelessForwardAllocs(t *testing.T) {
	in := msg(typicalInvite)
	out := make([]byte, 0, 4096)
	var m Message
	if n := testing.AllocsPerRun(100, func() { statelessForward(t, &m, in, out) }); n != 0 {
		t.Fatalf("%v allocs per forward", n)
	}
	var m2 Message
	if err := m2.Parse(statelessForward(t, &m, in, out)); err != nil {
		t.Fatal(err)
	}
	if v, _ := m2.TopVia(); string(v.Host) != "192.0.2.2" {
		t.Fatal("our Via is not on top")
	}
}

func BenchmarkStatelessForward(b *testing.B) {
	in := msg(typicalInvite)
	out := make([]byte, 0, 4096)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		statelessForward(b, &m, in, out)
	}
}
