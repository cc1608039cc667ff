package sip

import (
	"bytes"
	"testing"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		in                                string
		scheme                            URIScheme
		user, pass, host, params, headers string
		port                              uint16
	}{
		{"sip:alice@atlanta.com", SchemeSIP, "alice", "", "atlanta.com", "", "", 0},
		{"SIPS:alice:secret@atlanta.com:5061;transport=tcp?subject=project", SchemeSIPS, "alice", "secret", "atlanta.com", "transport=tcp", "subject=project", 5061},
		{"sip:+1-212-555-1212:1234@gateway.com;user=phone", SchemeSIP, "+1-212-555-1212", "1234", "gateway.com", "user=phone", "", 0},
		{"sip:192.0.2.4", SchemeSIP, "", "", "192.0.2.4", "", "", 0},
		{"sip:[2001:db8::10]:5070;maddr=[2001:db8::20]", SchemeSIP, "", "", "[2001:db8::10]", "maddr=[2001:db8::20]", "", 5070},
		{"sip:user;par=u%40example.net@example.com", SchemeSIP, "user;par=u%40example.net", "", "example.com", "", "", 0},
		{"sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", SchemeSIP, "", "", "atlanta.com", "method=REGISTER", "to=alice%40atlanta.com", 0},
		{"tel:+358-555-1234567;postd=pp22", SchemeTel, "+358-555-1234567", "", "", "postd=pp22", "", 0},
		{"sip:p1.example.com;lr", SchemeSIP, "", "", "p1.example.com", "lr", "", 0},
	}
	for _, c := range cases {
		var u URI
		if err := ParseURI([]byte(c.in), &u); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if u.Scheme != c.scheme || string(u.User) != c.user || string(u.Password) != c.pass || string(u.Host) != c.host ||
			string(u.Params) != c.params || string(u.Headers) != c.headers || u.Port != c.port {
			t.Errorf("%s: got %+v", c.in, u)
		}
		if string(u.AppendTo(nil)) != c.in && u.Scheme != SchemeSIPS {
			t.Errorf("%s: AppendTo gives %s", c.in, u.AppendTo(nil))
		}
	}
	var u URI
	if ParseURI([]byte("http://x.example/a"), &u) != nil || u.Scheme != SchemeUnknown {
		t.Error("absolute URI of another scheme")
	}
	for _, bad := range []string{"", "sip:", "sip:a@", "sip:host:99999", "sip:host:", "sip:[::1", "sip:a b@c", "1sip:x", "sip:@host", "sip:host:50x", "sip:[zz]"} {
		if err := ParseURI([]byte(bad), &u); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestURIHelpers(t *testing.T) {
	var u URI
	ParseURI([]byte("sip:[::1]:5060;LR;Transport=TCP;maddr=10.0.0.1"), &u)
	if !u.LR() || string(u.Transport()) != "TCP" || string(u.MAddr()) != "10.0.0.1" {
		t.Fatalf("%+v", u)
	}
	if a, ok := u.HostAddr(); !ok || a.String() != "::1" {
		t.Fatal("HostAddr")
	}
}

func TestEqualURI(t *testing.T) {
	eq := [][2]string{
		{"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"},
		{"sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"},
		{"sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com", "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"},
	}
	ne := [][2]string{
		{"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"},
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"},
		{"sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;newparam=6"},
		{"sip:alice@atlanta.com", "sips:alice@atlanta.com"},
	}
	for _, p := range eq {
		var a, b URI
		ParseURI([]byte(p[0]), &a)
		ParseURI([]byte(p[1]), &b)
		if !EqualURI(&a, &b) || !EqualURI(&b, &a) {
			t.Errorf("%s should equal %s", p[0], p[1])
		}
	}
	for _, p := range ne {
		var a, b URI
		ParseURI([]byte(p[0]), &a)
		ParseURI([]byte(p[1]), &b)
		if EqualURI(&a, &b) {
			t.Errorf("%s should not equal %s", p[0], p[1])
		}
	}
}

func TestParseNameAddr(t *testing.T) {
	cases := []struct{ in, display, uri, params, rest string }{
		{`"Bob \"B\" Smith" <sip:bob@biloxi.com>;tag=a48s`, `Bob \"B\" Smith`, "sip:bob@biloxi.com", "tag=a48s", ""},
		{`Bob Smith <sip:bob@biloxi.com;transport=tcp>;tag=1 ;x=y`, "Bob Smith", "sip:bob@biloxi.com;transport=tcp", "tag=1 ;x=y", ""},
		{`sip:alice@atlanta.com;tag=88sja8x`, "", "sip:alice@atlanta.com", "tag=88sja8x", ""},
		{`<sip:p1;lr>, <sip:p2;lr>`, "", "sip:p1;lr", "", " <sip:p2;lr>"},
		{`<sip:a@[2001:db8::1]:5060>;expires=60;q=0.5, "x,y" <sip:b@c>`, "", "sip:a@[2001:db8::1]:5060", "expires=60;q=0.5", ` "x,y" <sip:b@c>`},
		{`<sip:a@b>;p="quoted;semi,comma"`, "", "sip:a@b", `p="quoted;semi,comma"`, ""},
	}
	for _, c := range cases {
		var na NameAddr
		rest, err := ParseNameAddr([]byte(c.in), &na)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(na.Display) != c.display || string(na.URI.Raw) != c.uri || string(na.Params) != c.params || string(rest) != c.rest {
			t.Errorf("%s: got display=%q uri=%q params=%q rest=%q", c.in, na.Display, na.URI.Raw, na.Params, rest)
		}
	}
	var na NameAddr
	if _, err := ParseNameAddr([]byte(" * "), &na); err != ErrStar {
		t.Error("star")
	}
	for _, bad := range []string{`"unterminated <sip:a@b>`, `<sip:a@b`, `sip:a@b junk`, ``, `<sip:a@b> x`} {
		if _, err := ParseNameAddr([]byte(bad), &na); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if v, ok := ParamValue([]byte(" lr ; maddr = 1.2.3.4 ;x=\"a;b\""), "MADDR"); !ok || string(v) != "1.2.3.4" {
		t.Errorf("ParamValue %q", v)
	}
}

func TestURIAllocs(t *testing.T) {
	in := []byte(`"Bob" <sip:bob@[2001:db8::1]:5060;transport=udp;lr>;tag=1928301774;expires=3600`)
	var na NameAddr
	n := testing.AllocsPerRun(100, func() {
		ParseNameAddr(in, &na)
		na.Tag()
		na.URI.LR()
		na.URI.HostAddr()
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkParseNameAddr(b *testing.B) {
	in := []byte(`"Bob" <sip:bob@biloxi.example.com:5060;transport=udp>;tag=1928301774`)
	var na NameAddr
	b.ReportAllocs()
	for b.Loop() {
		ParseNameAddr(in, &na)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"sip:alice@atlanta.com", "sips:a:b@[::1]:5061;lr?x=y", "tel:+1-555;ext=1", "sip:%61@h", "mailto:a@b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u URI
		if err := ParseURI(data, &u); err != nil {
			return
		}
		for _, s := range [][]byte{u.User, u.Password, u.Host, u.Params, u.Headers} {
			if len(s) > 0 && !within(data, s) {
				t.Fatalf("field not inside the input: %q", s)
			}
		}
		if u.Scheme == SchemeSIP || u.Scheme == SchemeSIPS {
			var u2 URI
			out := u.AppendTo(nil)
			if err := ParseURI(out, &u2); err != nil || !EqualURI(&u, &u2) {
				t.Fatalf("%q re-serialised as %q: %v", data, out, err)
			}
		}
		u.LR()
		u.HostAddr()
	})
}

func FuzzParseNameAddr(f *testing.F) {
	for _, s := range []string{`"A" <sip:a@b>;tag=1, <sip:c@d;lr>`, `sip:a@b;tag=x`, `*`, `Bob <sips:[::1]>;q=0.1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var na NameAddr
		rest := data
		for n := 0; n < 50 && len(rest) > 0; n++ {
			r, err := ParseNameAddr(rest, &na)
			if err != nil {
				return
			}
			if len(na.Raw) > 0 && !within(data, na.Raw) {
				t.Fatalf("Raw not inside the input")
			}
			na.Tag()
			rest = r
		}
	})
}

func within(outer, inner []byte) bool {
	if len(inner) == 0 {
		return true
	}
	return bytes.Contains(outer, inner)
}
