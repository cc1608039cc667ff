package proxy_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloxsip/velox/module/forward"
	"github.com/veloxsip/velox/module/maxforwards"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/sanity"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// tortureCases says what a stateless proxy does with each message of
// RFC 4475 and RFC 5118 (sip/testdata): "forward", "drop" (a response not
// for us, or garbage) or the status code of the answer.
var tortureCases = map[string]string{
	// RFC 4475 §3.1.1: valid messages.
	"rfc4475/wsinv.dat":      "forward", // short tortuous INVITE: LWS, folding, compact forms
	"rfc4475/intmeth.dat":    "forward", // unusual method, URI and header characters
	"rfc4475/esc01.dat":      "forward", // % escapes
	"rfc4475/escnull.dat":    "forward", // escaped NULs in URIs
	"rfc4475/esc02.dat":      "forward", // % that is not an escape
	"rfc4475/lwsdisp.dat":    "forward", // no LWS between display name and <
	"rfc4475/longreq.dat":    "forward", // long values, 34 Vias
	"rfc4475/dblreq.dat":     "forward", // second request in the datagram is ignored
	"rfc4475/semiuri.dat":    "forward", // ';' in the user part
	"rfc4475/transports.dat": "forward", // unknown transports in Via
	"rfc4475/unreason.dat":   "drop",    // valid response, UTF-8 reason; not ours
	"rfc4475/noreason.dat":   "drop",    // valid response with an empty reason; not ours
	// RFC 4475 §3.1.2: invalid messages.
	"rfc4475/badinv01.dat":   "400", // extraneous header field separators
	"rfc4475/clerr.dat":      "400", // Content-Length larger than the body
	"rfc4475/scalar02.dat":   "400", // CSeq and Max-Forwards out of range
	"rfc4475/scalarlg.dat":   "drop",
	"rfc4475/quotbal.dat":    "400",  // unterminated quoted string
	"rfc4475/ltgtruri.dat":   "400",  // <> around the Request-URI
	"rfc4475/lwsruri.dat":    "400",  // LWS inside the Request-URI
	"rfc4475/lwsstart.dat":   "400",  // several SP in the request line
	"rfc4475/trws.dat":       "400",  // trailing SP after the SIP version (RFC allows 400)
	"rfc4475/escruri.dat":    "400",  // escaped headers in the Request-URI
	"rfc4475/badaspec.dat":   "400",  // spaces inside <addr-spec>
	"rfc4475/baddn.dat":      "400",  // unquoted display name with a comma
	"rfc4475/badvers.dat":    "505",  // SIP/7.0
	"rfc4475/mismatch01.dat": "400",  // CSeq method differs
	"rfc4475/mismatch02.dat": "400",  // unknown method, CSeq differs
	"rfc4475/bigcode.dat":    "drop", // status code out of range in a response
	// RFC 4475 §3.3: semantic tests.
	"rfc4475/insuf.dat":    "400",     // missing To, From, Call-ID, Max-Forwards
	"rfc4475/unkscm.dat":   "416",     // unknown Request-URI scheme
	"rfc4475/novelsc.dat":  "416",     // unknown scheme with a dot
	"rfc4475/unksm2.dat":   "forward", // unknown schemes in To/From/Contact are fine for a proxy
	"rfc4475/zeromf.dat":   "483",     // Max-Forwards 0
	"rfc4475/inv2543.dat":  "forward", // RFC 2543 request: no branch, no Max-Forwards
	"rfc4475/mcl01.dat":    "400",     // two Content-Length values
	"rfc4475/multi01.dat":  "400",     // several single-value headers
	"rfc4475/bext01.dat":   "420",     // Proxy-Require we do not support
	"rfc4475/regaut01.dat": "forward", // unknown authorization scheme
	"rfc4475/cparam01.dat": "forward",
	"rfc4475/cparam02.dat": "forward",
	// RFC 5118 §4: IPv6.
	"rfc5118/ipv6-good.dat":            "forward",
	"rfc5118/ipv6-bad.dat":             "400", // IPv6 reference without brackets
	"rfc5118/port-ambiguous.dat":       "forward",
	"rfc5118/port-unambiguous.dat":     "forward",
	"rfc5118/via-received-delim.dat":   "forward",
	"rfc5118/via-received-nodelim.dat": "forward",
	"rfc5118/ipv4-mapped.dat":          "forward",
	"rfc5118/mult-ip-in-header.dat":    "forward",
}

func TestTortureMessages(t *testing.T) {
	mf, _ := maxforwards.New(maxforwards.Options{})
	fwd, _ := forward.New(forward.Options{To: uasAddr.String()})
	srv := proxy.NewServer(proxy.Pipeline{
		{Name: "sanity", Handler: sanity.New()},
		{Name: "max-forwards", Handler: mf},
		{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		{Name: "forward", Handler: fwd},
	}, proxy.Options{})
	srv.AddListener(transport.UDP, proxyAddr, "")
	w := srv.NewWorker(0).(*proxy.Worker)
	r := &recorder{buf: make([]byte, 0, 65535)}

	files, _ := filepath.Glob("../sip/testdata/rfc*/*.dat")
	if len(files) != len(tortureCases) {
		t.Errorf("%d torture files, %d cases", len(files), len(tortureCases))
	}
	for _, f := range files {
		name := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
		want, ok := tortureCases[name]
		if !ok {
			t.Errorf("%s: no expectation", name)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r.sent = r.sent[:0]
		w.Handle(data, uacAddr, r)
		got := outcome(t, r)
		if got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}

// outcome names what the proxy did: forward (and the message it wrote
// parses, with our Via on top), drop, or the status it answered.
func outcome(t *testing.T, r *recorder) string {
	switch len(r.sent) {
	case 0:
		return "drop"
	case 1:
	default:
		return fmt.Sprintf("%d messages", len(r.sent))
	}
	s := r.sent[0]
	if strings.HasPrefix(s.data, "SIP/2.0 ") {
		if s.dst.Addr() != uacAddr.Addr() {
			return "answer to " + s.dst.String()
		}
		return s.data[8:11]
	}
	var m sip.Message
	if err := m.Parse([]byte(s.data)); err != nil {
		return "forwarded unparseable message: " + err.Error()
	}
	if v, err := m.TopVia(); err != nil || string(v.Host) != proxyAddr.Addr().String() {
		return "forwarded without our Via"
	}
	if s.dst != netip.AddrPort(uasAddr) {
		return "forwarded to " + s.dst.String()
	}
	return "forward"
}
