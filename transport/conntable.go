package transport

import (
	"encoding/binary"
	"net/netip"
	"sync"
)

// The connection table maps (transport, remote address) to a connection:
// the address a connection was accepted from or opened to, and the aliases
// registered for it (RFC 5923). It is split into shards, each with its own
// lock, so that lookups from many goroutines rarely meet.
//
// Every live connection is also on the list of the shard of its own
// address, which is how Close and the idle reaper find each connection
// once (aliases are only map entries), including one whose map entry was
// taken over by a newer connection with the same key.

const numShards = 256

// connKey identifies a connection (or an alias of one) in the table.
type connKey struct {
	proto Proto
	addr  netip.AddrPort
}

type shard struct {
	mu   sync.Mutex
	m    map[connKey]*conn
	head *conn // list of the connections whose own key hashes here
	_    [40]byte
}

type connTable struct {
	shards [numShards]shard
}

func (t *connTable) init() {
	for i := range t.shards {
		t.shards[i].m = make(map[connKey]*conn)
	}
}

// shardOf returns the shard of k.
func (t *connTable) shardOf(k connKey) *shard {
	a := k.addr.Addr().As16()
	x := binary.LittleEndian.Uint64(a[:8])
	y := binary.LittleEndian.Uint64(a[8:])
	h := (x*0x9e3779b97f4a7c15 ^ y) * 0xbf58476d1ce4e5b9
	h ^= uint64(k.addr.Port())<<8 | uint64(k.proto)
	h *= 0x94d049bb133111eb
	return &t.shards[h>>56]
}

// get returns the live connection for k, or nil.
func (t *connTable) get(k connKey) *conn {
	sh := t.shardOf(k)
	sh.mu.Lock()
	c := sh.m[k]
	sh.mu.Unlock()
	if c != nil && c.state.Load() == stClosed {
		return nil
	}
	return c
}

// link puts c on its shard's list and under its own key. Called with the
// shard locked.
func (sh *shard) link(c *conn) {
	sh.m[connKey{c.proto, c.key}] = c
	c.next = sh.head
	if sh.head != nil {
		sh.head.prev = c
	}
	sh.head = c
	c.linked = true
}

// unlink removes c from its shard's list and its key. Called with the
// shard locked.
func (sh *shard) unlink(c *conn) {
	if !c.linked {
		return
	}
	c.linked = false
	k := connKey{c.proto, c.key}
	if sh.m[k] == c {
		delete(sh.m, k)
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		sh.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// deleteIf removes k if it maps to c.
func (t *connTable) deleteIf(k connKey, c *conn) {
	sh := t.shardOf(k)
	sh.mu.Lock()
	if sh.m[k] == c {
		delete(sh.m, k)
	}
	sh.mu.Unlock()
}

// each calls f for every connection on the lists, shard by shard, with the
// shard locked (f must not lock a shard).
func (t *connTable) each(f func(c *conn)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for c := sh.head; c != nil; c = c.next {
			f(c)
		}
		sh.mu.Unlock()
	}
}
