package sip

import "testing"

func TestContactParams(t *testing.T) {
	var na NameAddr
	if _, err := ParseNameAddr([]byte(`<sip:a@192.0.2.1:5062;transport=udp>;expires=3600;q=0.75;+sip.instance="<urn:uuid:0001>";reg-id=1`), &na); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := na.ExpiresParam(); s != 3600 || !ok || err != nil {
		t.Fatalf("expires %d %v %v", s, ok, err)
	}
	if q, ok, err := na.Q(); q != 750 || !ok || err != nil {
		t.Fatalf("q %d %v %v", q, ok, err)
	}
	if string(na.Instance()) != "urn:uuid:0001" {
		t.Fatalf("instance %q", na.Instance())
	}
	if id, ok, err := na.RegID(); id != 1 || !ok || err != nil {
		t.Fatalf("reg-id %d %v %v", id, ok, err)
	}
	// The URI's own parameters are not the header's.
	ParseNameAddr([]byte(`<sip:a@h;expires=5>`), &na)
	if _, ok, _ := na.ExpiresParam(); ok {
		t.Fatal("expires inside <> taken as the header's")
	}
}

func TestQValues(t *testing.T) {
	for v, want := range map[string]int{"0": 0, "1": 1000, "0.5": 500, "0.001": 1, "1.000": 1000, "0.12": 120} {
		if q, ok := parseQ([]byte(v)); !ok || q != want {
			t.Errorf("q=%s: %d %v, want %d", v, q, ok, want)
		}
	}
	for _, v := range []string{"", "2", "1.5", "0.1234", "0.x", ".5", "1.001"} {
		if _, ok := parseQ([]byte(v)); ok {
			t.Errorf("q=%s accepted", v)
		}
	}
}

func TestContactStar(t *testing.T) {
	for _, c := range []struct {
		contact  string
		star, ok bool
	}{
		{"Contact: *\r\n", true, true},
		{"Contact: <sip:a@h>\r\n", false, true},
		{"Contact: *\r\nContact: <sip:a@h>\r\n", false, false},
		{"Contact: <sip:a@h>, *\r\n", false, false},
		{"Contact: *, <sip:a@h>\r\n", false, false},
		{"", false, true},
	} {
		var m Message
		msg := "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: 1\r\nCSeq: 1 REGISTER\r\n" + c.contact + "Content-Length: 0\r\n\r\n"
		if err := m.Parse([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		star, err := m.ContactStar()
		if star != c.star || (err == nil) != c.ok {
			t.Errorf("%q: star %v err %v", c.contact, star, err)
		}
	}
}
