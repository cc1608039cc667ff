package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Identity is the set of addresses a server answers to: its listeners, the
// host names they advertise and configured aliases. It is filled before the
// workers start and only read afterwards.
type Identity struct {
	hosts     []selfHost
	listeners []*listenerInfo
}

type selfHost struct {
	host string // lower-case; IPv6 in brackets
	port uint16 // 0: any port
}

// listenerInfo holds the ready-made text a listener puts into messages
// and the Conn that sends from it.
type listenerInfo struct {
	local     netip.AddrPort
	proto     transport.Proto
	viaPrefix string // "Via: SIP/2.0/UDP host:port;branch="
	rr        string // "Record-Route: <sip:host:port;lr>\r\n"
	rr2       string // the same with ;r2=on, for the double Record-Route of RFC 5658
	host      string // advertised host (IPv6 in brackets)
	port      uint16
	conn      Conn // nil until AddConn
}

// AddAlias adds a host or host:port the server answers to.
func (id *Identity) AddAlias(a string) {
	host, port := a, uint16(0)
	if h, p, err := net.SplitHostPort(a); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			host, port = h, uint16(n)
		}
	}
	id.addHost(host, port)
}

func (id *Identity) addHost(host string, port uint16) {
	host = strings.ToLower(host)
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	for _, h := range id.hosts {
		if h.host == host && h.port == port {
			return
		}
	}
	id.hosts = append(id.hosts, selfHost{host, port})
}

// AddListener records a listener; advertise is the host[:port] to put in
// Via and Record-Route instead of the bound address ("" for none).
func (id *Identity) AddListener(proto transport.Proto, local netip.AddrPort, advertise string) {
	host, port := local.Addr().String(), local.Port()
	if local.Addr().Is6() {
		host = "[" + host + "]"
	}
	if local.Addr().IsUnspecified() {
		// Bound to every address: answer to each interface address.
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, ok := a.(*net.IPNet); ok {
					id.addHost(p.IP.String(), port)
				}
			}
		}
	}
	id.addHost(host, port)
	if advertise != "" {
		if h, p, err := net.SplitHostPort(advertise); err == nil {
			n, _ := strconv.Atoi(p)
			host, port = h, uint16(n)
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
		} else {
			host = advertise
		}
		id.addHost(host, port)
	}
	hp := host + ":" + strconv.Itoa(int(port))
	uri := "<sip:" + hp
	switch proto {
	case transport.UDP:
	case transport.WSS:
		uri += ";transport=ws" // RFC 7118 §5.2 defines only "ws" for URIs
	default:
		uri += ";transport=" + proto.String()
	}
	li := &listenerInfo{
		local:     local,
		proto:     proto,
		viaPrefix: "Via: SIP/2.0/" + proto.ViaName() + " " + hp + ";branch=",
		rr:        "Record-Route: " + uri + ";lr>\r\n",
		rr2:       "Record-Route: " + uri + ";r2=on;lr>\r\n",
		host:      host,
		port:      port,
	}
	id.listeners = append(id.listeners, li)
}

// servedBy reports whether out is a worker's sender on this listener, so
// that a message from li can join out's batch.
func (li *listenerInfo) servedBy(out Sender) bool {
	return out != nil && out.Local() == li.local && out.Proto() == li.proto
}

// listener returns the listener of proto bound to local (the first one
// when none matches).
func (id *Identity) listener(proto transport.Proto, local netip.AddrPort) *listenerInfo {
	if proto == 0 {
		proto = transport.UDP
	}
	for _, li := range id.listeners {
		if li.local == local && li.proto == proto {
			return li
		}
	}
	if len(id.listeners) == 0 {
		id.AddListener(transport.UDP, local, "")
	}
	return id.listeners[0]
}

// outListener chooses the listener a request leaves from when it goes to
// dst over proto: the one it arrived on when that fits, else the first
// listener of that transport and address family (a wildcard IPv6 one
// serves both families). nil when no listener has that transport.
func (id *Identity) outListener(in *listenerInfo, proto transport.Proto, dst netip.AddrPort) *listenerInfo {
	if proto == 0 {
		proto = transport.UDP
	}
	if in != nil && in.proto == proto && familyFits(in.local.Addr(), dst.Addr()) {
		return in
	}
	var any *listenerInfo
	for _, li := range id.listeners {
		if li.proto != proto {
			continue
		}
		if familyFits(li.local.Addr(), dst.Addr()) {
			return li
		}
		if any == nil {
			any = li
		}
	}
	return any
}

// familyFits reports whether a socket bound to local can send to dst.
func familyFits(local, dst netip.Addr) bool {
	if local.Is4() || local.Is4In6() {
		return dst.Is4() || dst.Is4In6()
	}
	return local.IsUnspecified() || !(dst.Is4() || dst.Is4In6())
}

// IsSelf reports whether host:port names this server. Port 0 means the
// scheme's default (5060, or 5061 when secure).
func (id *Identity) IsSelf(host []byte, port uint16, secure bool) bool {
	if port == 0 {
		port = 5060
		if secure {
			port = 5061
		}
	}
	for i := range id.hosts {
		h := &id.hosts[i]
		if (h.port == 0 || h.port == port) && sip.EqualFold(host, h.host) {
			return true
		}
	}
	return false
}

// IsSelfURI reports whether the URI's host (or maddr) and port name this
// server.
func (id *Identity) IsSelfURI(u *sip.URI) bool {
	return id.IsSelf(u.Host, u.Port, u.Scheme == sip.SchemeSIPS)
}

// IsLocal reports whether dst is one of the server's own sockets (sending
// there would loop).
func (id *Identity) IsLocal(dst netip.AddrPort) bool {
	for _, li := range id.listeners {
		l := li.local
		if l.Port() != dst.Port() {
			continue
		}
		if l.Addr() == dst.Addr() || (l.Addr().IsUnspecified() && (dst.Addr().IsLoopback() || dst.Addr().IsUnspecified())) {
			return true
		}
	}
	return false
}
