package registrar_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/veloxsip/velox/transport"
)

// nullOut discards what the worker sends.
type nullOut struct{ buf []byte }

func (o *nullOut) Buffer() []byte                    { return o.buf[:0] }
func (o *nullOut) Send(b []byte, dst netip.AddrPort) {}
func (o *nullOut) Local() netip.AddrPort             { return self }
func (o *nullOut) Proto() transport.Proto            { return transport.UDP }

// BenchmarkRegisterRefresh is the registrar's hot path as the load test
// drives it: a REGISTER refreshing one of 10,000 users' bindings, parsed,
// saved and answered with 200 through a worker.
func BenchmarkRegisterRefresh(b *testing.B) {
	w, _ := setup(b, false)
	const users = 10000
	msgs := make([][]byte, users)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-r%d;rport\r\n"+
			"From: <sip:u%d@example.com>;tag=r1\r\nTo: <sip:u%d@example.com>\r\n"+
			"Call-ID: reg-%d@10.0.0.7\r\nCSeq: %06d REGISTER\r\nMax-Forwards: 70\r\n"+
			"Contact: <sip:u%d@10.0.0.7:5060>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n", i, i, i, i, 1, i))
	}
	out := &nullOut{buf: make([]byte, 0, 65535)}
	buf := make([]byte, 4096)
	cseq := 1
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%users]
		if i%users == 0 {
			cseq++ // a new round: refreshes need a higher CSeq
		}
		n := copy(buf, m)
		bumpCSeq(buf[:n], cseq)
		w.Handle(buf[:n], phone, out)
	}
}

// bumpCSeq overwrites the six-digit CSeq number in place.
func bumpCSeq(m []byte, n int) {
	for i := 0; i+12 < len(m); i++ {
		if string(m[i:i+6]) == "CSeq: " {
			for j := 11; j >= 6; j-- {
				m[i+j] = byte('0' + n%10)
				n /= 10
			}
			return
		}
	}
}

// BenchmarkRegisterNew registers a new user per REGISTER, as the SIPp
// load suite does (bench/scenarios/register): every Save adds an AOR, so
// the allocations reported are the new record's and its binding's.
func BenchmarkRegisterNew(b *testing.B) {
	w, _ := setup(b, false)
	out := &nullOut{buf: make([]byte, 0, 65535)}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	var num [20]byte
	for i := 0; i < b.N; i++ {
		n := strconv.AppendInt(num[:0], int64(i), 10)
		buf = append(buf[:0], "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-n"...)
		buf = append(append(buf, n...), ";rport\r\nFrom: <sip:n"...)
		buf = append(append(buf, n...), "@example.com>;tag=r1\r\nTo: <sip:n"...)
		buf = append(append(buf, n...), "@example.com>\r\nCall-ID: new-"...)
		buf = append(append(buf, n...), "@10.0.0.7\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContact: <sip:n"...)
		buf = append(append(buf, n...), "@10.0.0.7:5060>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"...)
		w.Handle(buf, phone, out)
	}
}
