package transport

// TEMPORARY stand-in for the transport branch; deleted at merge.

import "net/netip"

type Handler interface {
	HandlePacket(data []byte, src netip.AddrPort, out *Out)
}

type Out struct {
	local netip.AddrPort
	bufs  [][]byte
	dsts  []netip.AddrPort
}

func (o *Out) Buffer() []byte {
	return make([]byte, 0, 65535)
}
func (o *Out) Send(b []byte, dst netip.AddrPort) { o.bufs = append(o.bufs, b); o.dsts = append(o.dsts, dst) }
func (o *Out) Local() netip.AddrPort             { return o.local }
