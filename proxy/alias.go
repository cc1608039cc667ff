package proxy

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Contact aliases: a WebSocket client's Contact names a host no one can
// reach ("df7jal23ls0d.invalid", RFC 7118 §5.2), so an in-dialog request
// sent to it must go back over the client's connection. As Kamailio's
// nathelper does (add_contact_alias / handle_ruri_alias), the proxy appends
// ";alias=ip~port~proto" to the Contact of dialog-forming requests and
// responses that arrive over WebSocket; a request whose Request-URI is the
// next hop and carries that parameter goes to the connection it names, and
// loses the parameter on the way. Proto is Kamailio's number, so the two
// servers understand each other's aliases.

// aliasProtoIDs maps a transport to Kamailio's protocol number.
var aliasProtoIDs = [...]byte{transport.UDP: '1', transport.TCP: '2', transport.TLS: '3', transport.WS: '5', transport.WSS: '6'}

// aliasContact adds the alias of src to the first Contact of m, a message
// that arrived over WebSocket: a request other than REGISTER (whose
// binding keeps the connection itself), or a 101–299 response.
func aliasContact(m *sip.Message, src netip.AddrPort, proto transport.Proto) {
	if m.IsRequest() {
		if m.Method() == sip.REGISTER {
			return
		}
	} else if c := m.StatusCode(); c <= 100 || c >= 300 {
		return
	}
	it := m.NameAddrs(sip.HdrContact)
	var na sip.NameAddr
	if ok, err := it.Next(&na); !ok || err != nil || len(na.URI.Raw) == 0 {
		return
	}
	if _, has := na.URI.Param("alias"); has {
		return
	}
	t := append(m.Scratch(), ";alias="...)
	t = appendAddr(t, src.Addr())
	t = append(t, '~')
	t = strconv.AppendUint(t, uint64(src.Port()), 10)
	t = append(t, '~', aliasProtoIDs[proto])
	_, _, v := m.HeaderAt(it.Line())
	if bytes.IndexByte(v, '<') < 0 {
		// A bare URI: its parameters would read as the header's, so the
		// URI gets angle brackets.
		m.InsertAt(na.URI.Raw, false, []byte("<"))
		t = append(t, '>')
	}
	m.InsertAt(na.URI.Raw, true, t)
}

// uriAlias returns the connection an alias parameter of u names, and the
// URI text without that parameter (built in m's scratch space).
func uriAlias(m *sip.Message, u *sip.URI) (d Dest, stripped []byte, ok bool) {
	v, has := u.Param("alias")
	if !has {
		return d, nil, false
	}
	ip, rest, ok1 := bytes.Cut(v, []byte("~"))
	portText, protoID, ok2 := bytes.Cut(rest, []byte("~"))
	if !ok1 || !ok2 || len(protoID) != 1 {
		return d, nil, false
	}
	a, isIP := ParseIP(ip)
	port, okPort := parsePort(portText)
	if !isIP || !okPort {
		return d, nil, false
	}
	for p, id := range aliasProtoIDs {
		if id != 0 && id == protoID[0] {
			d = Dest{netip.AddrPortFrom(a, port), transport.Proto(p)}
		}
	}
	if d.Proto == 0 {
		return d, nil, false
	}
	// Cut ";alias=value" out of the URI.
	raw := u.Raw
	i := bytes.Index(raw, []byte(";alias="))
	if i < 0 {
		return d, nil, false
	}
	end := i + len(";alias=") + len(v)
	t := append(m.Scratch(), raw[:i]...)
	t = append(t, raw[end:]...)
	return d, t, true
}
