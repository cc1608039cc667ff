package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Resolver turns the host of a URI or Via into an address. IP literals are
// parsed in place; host names are looked up with the system resolver and
// cached. Reads of the cache take no lock (the map is replaced on change).
//
// A miss blocks the calling worker for the lookup (up to two seconds). Full
// RFC 3263 resolution (NAPTR/SRV, failover) is a separate component.
type Resolver struct {
	cache atomic.Pointer[map[string]resolved]
	mu    sync.Mutex // serialises cache writers
	ttl   time.Duration
	now   func() time.Time
}

type resolved struct {
	addr    netip.Addr
	expires time.Time
}

// ErrUnresolvable is returned for hosts that do not resolve.
var ErrUnresolvable = errors.New("proxy: host does not resolve")

// NewResolver returns a resolver that keeps answers for a minute.
func NewResolver() *Resolver {
	r := &Resolver{ttl: time.Minute, now: time.Now}
	m := map[string]resolved{}
	r.cache.Store(&m)
	return r
}

// ParseIP parses an IPv4 address or an IPv6 reference with or without
// brackets, without allocating.
func ParseIP(host []byte) (netip.Addr, bool) {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if len(host) == 0 {
		return netip.Addr{}, false
	}
	c := host[0]
	if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') && c != ':' {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(unsafe.String(&host[0], len(host)))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Resolve returns the address of host.
func (r *Resolver) Resolve(host []byte) (netip.Addr, error) {
	if a, ok := ParseIP(host); ok {
		return a, nil
	}
	if len(host) == 0 {
		return netip.Addr{}, ErrUnresolvable
	}
	if e, ok := (*r.cache.Load())[string(host)]; ok && r.now().Before(e.expires) {
		if !e.addr.IsValid() {
			return e.addr, ErrUnresolvable
		}
		return e.addr, nil
	}
	name := string(host)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
	var a netip.Addr
	if err == nil && len(addrs) > 0 {
		a = addrs[0].Unmap()
		for _, x := range addrs {
			if x.Unmap().Is4() { // prefer IPv4 like most SIP stacks
				a = x.Unmap()
				break
			}
		}
	}
	r.mu.Lock()
	old := *r.cache.Load()
	m := make(map[string]resolved, len(old)+1)
	now := r.now()
	for k, v := range old {
		if now.Before(v.expires) {
			m[k] = v
		}
	}
	ttl := r.ttl
	if !a.IsValid() {
		ttl = 5 * time.Second // remember failures briefly
	}
	m[name] = resolved{addr: a, expires: now.Add(ttl)}
	r.cache.Store(&m)
	r.mu.Unlock()
	if !a.IsValid() {
		return a, ErrUnresolvable
	}
	return a, nil
}

// ResolveHostPort turns "host[:port]" (IPv6 in brackets, port 5060 when
// absent) into an address, looking the host name up once. Modules use it
// for fixed destinations at load time.
func ResolveHostPort(s string) (netip.AddrPort, error) {
	host, port := s, "5060"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.LookupIP(host)
		if lerr != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("cannot resolve %q: %v", host, lerr)
		}
		a, _ = netip.AddrFromSlice(ips[0])
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
}

// ParseDest turns a fixed destination into a Dest: "host[:port]" (UDP),
// "proto:host[:port]" with proto udp, tcp, tls, ws or wss, or a SIP URI
// ("sip:host:port;transport=tcp", "sips:host"). The port defaults to 5060,
// 5061 over TLS. The host name is looked up once.
func ParseDest(s string) (Dest, error) {
	low := strings.ToLower(s)
	if strings.HasPrefix(low, "sip:") || strings.HasPrefix(low, "sips:") {
		var u sip.URI
		if err := sip.ParseURI([]byte(s), &u); err != nil {
			return Dest{}, fmt.Errorf("%q: %v", s, err)
		}
		proto, ok := URIProto(&u)
		if !ok {
			return Dest{}, fmt.Errorf("%q: unsupported transport", s)
		}
		hp := string(u.Host)
		if u.Port != 0 {
			hp = net.JoinHostPort(strings.Trim(hp, "[]"), strconv.Itoa(int(u.Port)))
		} else if proto.Secure() {
			hp = net.JoinHostPort(strings.Trim(hp, "[]"), "5061")
		}
		a, err := ResolveHostPort(hp)
		return Dest{a, proto}, err
	}
	proto := transport.UDP
	if p, rest, ok := strings.Cut(s, ":"); ok {
		if pp, known := transport.ParseProto(p); known {
			proto, s = pp, rest
			if _, _, err := net.SplitHostPort(s); err != nil && proto.Secure() {
				s = net.JoinHostPort(strings.Trim(s, "[]"), "5061")
			}
		}
	}
	a, err := ResolveHostPort(s)
	return Dest{a, proto}, err
}
