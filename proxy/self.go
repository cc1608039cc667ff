package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/veloxsip/velox/sip"
)

// Identity is the set of addresses a server answers to: its listeners, the
// host names they advertise and configured aliases. It is filled before the
// workers start and only read afterwards.
type Identity struct {
	hosts     []selfHost
	listeners []listenerInfo
}

type selfHost struct {
	host string // lower-case; IPv6 in brackets
	port uint16 // 0: any port
}

// listenerInfo holds the ready-made text a listener puts into messages.
type listenerInfo struct {
	local     netip.AddrPort
	proto     string
	viaPrefix string // "Via: SIP/2.0/UDP host:port;branch="
	rr        string // "Record-Route: <sip:host:port;lr>\r\n"
	host      string // advertised host (IPv6 in brackets)
	port      uint16
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
func (id *Identity) AddListener(proto string, local netip.AddrPort, advertise string) {
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
	up := strings.ToUpper(proto)
	li := listenerInfo{
		local:     local,
		proto:     proto,
		viaPrefix: "Via: SIP/2.0/" + up + " " + hp + ";branch=",
		rr:        "Record-Route: <sip:" + hp + ";lr>\r\n",
		host:      host,
		port:      port,
	}
	if proto != "udp" {
		li.rr = "Record-Route: <sip:" + hp + ";transport=" + proto + ";lr>\r\n"
	}
	id.listeners = append(id.listeners, li)
}

// listener returns the text of the listener bound to local (the first one
// when none matches).
func (id *Identity) listener(local netip.AddrPort) *listenerInfo {
	for i := range id.listeners {
		if id.listeners[i].local == local {
			return &id.listeners[i]
		}
	}
	if len(id.listeners) == 0 {
		id.AddListener("udp", local, "")
	}
	return &id.listeners[0]
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
	for i := range id.listeners {
		l := id.listeners[i].local
		if l.Port() != dst.Port() {
			continue
		}
		if l.Addr() == dst.Addr() || (l.Addr().IsUnspecified() && (dst.Addr().IsLoopback() || dst.Addr().IsUnspecified())) {
			return true
		}
	}
	return false
}
