package proxy

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
	"github.com/veloxsip/velox/txn"
)

// MaxBranches is the number of branches (forks and serial attempts) one
// transaction can hold.
const MaxBranches = 12

// maxDests is the length of a transaction's destination list.
const maxDests = 16

// Server transaction states (RFC 3261 §17.2, RFC 6026).
const (
	sProceeding uint8 = iota // no final response sent yet
	sCompleted               // non-2xx final sent; INVITE: waiting for ACK (G, H), non-INVITE: J
	sConfirmed               // INVITE: ACK received (I)
	sAccepted                // INVITE: 2xx sent (L)
	sTerminated
)

// Client transaction (branch) states.
const (
	bCalling    uint8 = iota // request sent, nothing heard (INVITE Calling / non-INVITE Trying)
	bProceeding              // provisional received
	bCompleted               // non-2xx final received (D, K)
	bAccepted                // INVITE 2xx received (M)
	bTerminated
)

// Timer kinds: the low 4 bits of Kind carry the branch index.
const (
	kSrvRetr    uint8 = 0x10 // G: retransmit the final response
	kSrvWait    uint8 = 0x20 // H, I, J, L: end of the server transaction
	kBrRetr     uint8 = 0x30 // A, E: retransmit the request
	kBrTimeout  uint8 = 0x40 // B, F, fr, fr_inv; D, K, M once final
	kCancelRetr uint8 = 0x50 // retransmit our CANCEL
)

// cancel states of a branch.
const (
	cNone    uint8 = iota
	cPending       // wanted, waiting for a provisional (§9.1)
	cSent          // CANCEL sent, retransmitted until answered
	cDone          // CANCEL answered or given up
)

// RelayOptions shape one stateful relay.
type RelayOptions struct {
	// Parallel rings every destination at once; otherwise they are tried
	// one after the other while the previous ends in a failover code.
	Parallel bool
	// ByQ rings the targets of the highest q-value at once, then those of
	// the next q-value when they all fail, and so on (RFC 3261 §16.6,
	// Kamailio's t_load_contacts/t_next_contacts).
	ByQ bool
	// FinalTimeout and InviteTimeout override the server's defaults for
	// this transaction when > 0.
	FinalTimeout, InviteTimeout time.Duration
	// FailoverOn decides which final codes of a branch make a serial relay
	// try the next destination; nil: 408, 480, 486, 5xx and unreachable.
	FailoverOn func(code int) bool
}

// DefaultFailover is the failover rule used when RelayOptions.FailoverOn
// is nil: a timeout, a temporary unavailability, busy here, or a server
// error.
func DefaultFailover(code int) bool {
	return code == 408 || code == 480 || code == 486 || (code >= 500 && code < 600)
}

// branch is one client transaction of a cell.
type branch struct {
	dst      netip.AddrPort
	li       *listenerInfo // the listener it is sent from
	req      *msgBuf       // the request as sent; the ACK once a non-2xx final came
	rsp      *msgBuf       // the final response held for §16.7 selection
	cancel   *msgBuf       // our CANCEL while it is retransmitted
	state    uint8
	cancelSt uint8
	code     int // the final (or last provisional) status; 408 for a local timeout
	local    bool
	interval time.Duration
	cancelIv time.Duration
	tRetr    txn.Timer
	tTimeout txn.Timer
	tCancel  txn.Timer
}

// cell is one transaction of the stateful proxy: the server transaction of
// the incoming request and the client transactions (branches) it forked.
// Every field is guarded by the lock of the cell's bucket.
type cell struct {
	next   *cell
	bucket atomic.Uint32 // written only while the cell is in no bucket (alloc)
	label  uint32
	hash   uint64
	key    []byte
	keyArr [80]byte

	method     sip.Method
	methodName []byte // for MethodOther (points into nameArr)
	nameArr    [16]byte
	invite     bool
	state      uint8
	canceled   bool
	finalSent  bool
	code       int // status of the last response sent upstream

	src    netip.AddrPort
	li     *listenerInfo // the listener the request came in on
	rspDst netip.AddrPort
	req    *msgBuf // the request as received
	rsp    *msgBuf // the last response sent upstream
	retrIv time.Duration

	// What building a further branch from req needs.
	recordRoute bool
	mfLimit     int
	loop        uint64
	opt         RelayOptions
	dests       []target // capacity kept when the cell is recycled
	nextDest    int
	tbuf        *msgBuf // the targets' URIs and Route lines
	failureRun  bool

	// br holds the branches; they never move (their timers are linked
	// into a wheel). The first lives in the cell, more are allocated once
	// and kept when the cell is recycled.
	br    [MaxBranches]*branch
	nbr   int
	first branch
	dArr  [1]target

	wheel *txn.Wheel
	tw    *timerWorker
	tRetr txn.Timer
	tWait txn.Timer
}

func (c *cell) clear() {
	for i := 0; i < c.nbr; i++ {
		b := c.br[i]
		dropBuf(&b.req)
		dropBuf(&b.rsp)
		dropBuf(&b.cancel)
		b.state, b.cancelSt, b.code, b.local = 0, 0, 0, false
	}
	dropBuf(&c.req)
	dropBuf(&c.rsp)
	c.key = nil
	c.methodName = nil
	c.nbr, c.nextDest = 0, 0
	c.dests = c.dests[:0]
	dropBuf(&c.tbuf)
	c.state, c.canceled, c.finalSent, c.code, c.failureRun = 0, false, false, 0, false
	c.opt = RelayOptions{}
}

func (c *cell) stopTimers() {
	c.wheel.Stop(&c.tRetr)
	c.wheel.Stop(&c.tWait)
	for i := 0; i < c.nbr; i++ {
		b := c.br[i]
		c.wheel.Stop(&b.tRetr)
		c.wheel.Stop(&b.tTimeout)
		c.wheel.Stop(&b.tCancel)
	}
}

// Target is one destination of a stateful relay.
type Target struct {
	Addr  netip.AddrPort  // where the branch is sent
	Proto transport.Proto // over which transport; 0 is UDP
	URI   []byte          // its Request-URI; nil keeps the request's
	// Route holds complete header lines (each ending in CRLF) put at the
	// top of this branch's request, e.g. the Route set from a Path.
	Route []byte
	Q     int // q-value in thousandths, for RelayOptions.ByQ
}

// target is a Target stored in a cell; uri and route point into the
// cell's tbuf.
type target struct {
	addr       netip.AddrPort
	proto      transport.Proto
	uri, route []byte
	q, group   int
}

// setDests stores the targets (at most maxDests) and numbers the groups
// that are started together: one per target for a serial relay, one for
// all in a parallel one, one per q-value (highest first) with ByQ.
func (c *cell) setDests(ts []Target, opt RelayOptions) {
	if len(ts) > maxDests {
		ts = ts[:maxDests]
	}
	if c.dests == nil {
		c.dests = c.dArr[:0]
	}
	c.dests = c.dests[:0]
	c.nextDest = 0
	n := 0
	for i := range ts {
		n += len(ts[i].URI) + len(ts[i].Route)
	}
	dropBuf(&c.tbuf)
	if n > 0 {
		c.tbuf = getBuf(n) // never grows below: the slices stay valid
	}
	for i := range ts {
		t := target{addr: ts[i].Addr, proto: ts[i].Proto, q: ts[i].Q}
		if len(ts[i].URI) > 0 {
			s := len(c.tbuf.b)
			c.tbuf.b = append(c.tbuf.b, ts[i].URI...)
			t.uri = c.tbuf.b[s:len(c.tbuf.b):len(c.tbuf.b)]
		}
		if len(ts[i].Route) > 0 {
			s := len(c.tbuf.b)
			c.tbuf.b = append(c.tbuf.b, ts[i].Route...)
			t.route = c.tbuf.b[s:len(c.tbuf.b):len(c.tbuf.b)]
		}
		c.dests = append(c.dests, t)
	}
	switch {
	case opt.ByQ:
		// Stable sort by q, highest first (insertion sort: at most 16).
		for i := 1; i < len(c.dests); i++ {
			for j := i; j > 0 && c.dests[j].q > c.dests[j-1].q; j-- {
				c.dests[j], c.dests[j-1] = c.dests[j-1], c.dests[j]
			}
		}
		g := 0
		for i := range c.dests {
			if i > 0 && c.dests[i].q != c.dests[i-1].q {
				g++
			}
			c.dests[i].group = g
		}
	case opt.Parallel:
		for i := range c.dests {
			c.dests[i].group = 0
		}
	default:
		for i := range c.dests {
			c.dests[i].group = i
		}
	}
}

func (c *cell) setKey(key []byte) {
	if len(key) <= len(c.keyArr) {
		c.key = append(c.keyArr[:0], key...)
	} else {
		c.key = append([]byte(nil), key...)
	}
}

// newBranch adds a branch to c that sends to dst from li; nil when the
// cell is full.
func (c *cell) newBranch(dst netip.AddrPort, li *listenerInfo) (*branch, int) {
	if c.nbr == MaxBranches {
		return nil, -1
	}
	if c.br[c.nbr] == nil {
		if c.nbr == 0 {
			c.br[0] = &c.first
		} else {
			c.br[c.nbr] = new(branch)
		}
	}
	i := c.nbr
	c.nbr++
	b := c.br[i]
	b.dst, b.li = dst, li
	b.state, b.cancelSt, b.code, b.local = bCalling, cNone, 0, false
	b.tRetr.Owner, b.tTimeout.Owner, b.tCancel.Owner = c, c, c
	b.tRetr.Kind = kBrRetr | uint8(i)
	b.tTimeout.Kind = kBrTimeout | uint8(i)
	b.tCancel.Kind = kCancelRetr | uint8(i)
	return b, i
}

// pending reports whether some branch has no final response yet.
func (c *cell) pending() bool {
	for i := 0; i < c.nbr; i++ {
		if c.br[i].state <= bProceeding {
			return true
		}
	}
	return false
}

// done reports whether the whole cell can go: the server transaction and
// every branch are over.
func (c *cell) done() bool {
	if c.state != sTerminated {
		return false
	}
	for i := 0; i < c.nbr; i++ {
		if c.br[i].state != bTerminated {
			return false
		}
	}
	return true
}

// appendBranchID writes the branch parameter of branch i of c: our
// prefix, the loop hash, then ".s" and the bucket, label and index in hex,
// so that a response finds its cell without a search.
func appendBranchID(dst []byte, loop uint64, bucket, label uint32, i int) []byte {
	dst = append(dst, branchPrefix...)
	dst = appendHex64(dst, loop)
	dst = append(dst, ".s"...)
	dst = appendHex32(dst, bucket)
	dst = appendHex32(dst, label)
	return append(dst, hexDigits[i&0xf])
}

// statefulBranchLen is the length of a branch made by appendBranchID.
const statefulBranchLen = len(branchPrefix) + loopHashLen + 2 + 8 + 8 + 1

// parseBranchID reverses appendBranchID.
func parseBranchID(b []byte) (bucket, label uint32, i int, ok bool) {
	if len(b) != statefulBranchLen || !hasPrefix(b, branchPrefix) {
		return 0, 0, 0, false
	}
	p := len(branchPrefix) + loopHashLen
	if b[p] != '.' || b[p+1] != 's' {
		return 0, 0, 0, false
	}
	p += 2
	bucket, ok1 := parseHex32(b[p : p+8])
	label, ok2 := parseHex32(b[p+8 : p+16])
	d, ok3 := parseHex32(b[p+16 : p+17])
	return bucket, label, int(d), ok1 && ok2 && ok3
}

func appendHex32(b []byte, v uint32) []byte {
	for s := 28; s >= 0; s -= 4 {
		b = append(b, hexDigits[(v>>uint(s))&0xf])
	}
	return b
}

func parseHex32(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
