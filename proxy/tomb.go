package proxy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/txn"
)

// A tomb is what is left of a transaction whose every part only waits out
// its timers: the server side in Accepted (INVITE answered 2xx, timer L)
// or Completed (non-INVITE, timer J), each branch in Accepted (timer M),
// Completed (non-INVITE, timer K) or over. For up to 64*T1 (32 s) such a
// transaction still absorbs request retransmissions (re-sending the final
// response of a non-INVITE), answers a late CANCEL, lets 2xx
// retransmissions through and absorbs other retransmitted responses; it
// needs nothing else of its cell.
//
// At 2,000 calls/s about 130,000 transactions wait out these timers. As
// cells (1 KiB, plus the 2xx of a BYE) they were most of the proxy's
// memory, and the heap growing under them cost page faults and garbage
// collection; a tomb is a fifth of a cell, and the cell goes back to the
// pool after a round trip.
type tomb struct {
	next   *tomb
	bucket atomic.Uint32 // as cell.bucket
	label  uint32        // the cell's label: responses find the tomb by it
	hash   uint64
	keyLen uint8
	nbr    uint8  // branches the cell had
	ok2xx  uint16 // bit i: branch i was answered 2xx (its retransmissions go up)
	invite bool
	method sip.Method
	key    [tombKeyMax]byte

	li     *listenerInfo
	rspDst netip.AddrPort
	rsp    *msgBuf // non-INVITE: the final response, for retransmitted requests
	timer  txn.Timer
	wheel  *txn.Wheel
}

// tombKeyMax is the longest server transaction key a tomb holds; a cell
// with a longer key (an RFC 2543 key, a very long branch) lingers whole.
const tombKeyMax = 80

// kTomb is the timer kind of a tomb's end.
const kTomb uint8 = 0x60

// A tomb's ok2xx has a bit per branch.
var _ [16 - MaxBranches]struct{}

var tombs = sync.Pool{New: func() any {
	tm := &tomb{}
	tm.timer.Owner, tm.timer.Kind = tm, kTomb
	return tm
}}

// quiet reports whether the cell only waits out timers and can become a
// tomb.
func (c *cell) quiet() bool {
	if c.failureRun || c.method == sip.MethodOther || len(c.key) > tombKeyMax {
		return false
	}
	switch c.state {
	case sAccepted, sTerminated:
	case sCompleted:
		if c.invite {
			return false // timer G re-sends the final until the ACK comes
		}
	default:
		return false
	}
	for i := 0; i < c.nbr; i++ {
		switch c.br[i].state {
		case bAccepted, bTerminated:
		case bCompleted:
			if c.invite {
				return false // a retransmitted final gets the ACK again (timer D)
			}
		default:
			return false
		}
	}
	return true
}

// settle ends a cell that is over and entombs one that only waits out its
// timers; st counts for the calling goroutine. The bucket is locked.
func (t *txTable) settle(b *txBucket, cl *cell, st *WorkerStats) {
	if cl.done() {
		t.release(b, cl, st)
	} else if cl.quiet() {
		t.entomb(b, cl, st)
	}
}

// entomb replaces the quiet cell cl of bucket b by a tomb that lives until
// the last of the cell's timers would have fired.
func (t *txTable) entomb(b *txBucket, cl *cell, st *WorkerStats) {
	var timers [MaxBranches + 1]*txn.Timer
	timers[0] = &cl.tWait
	tm := tombs.Get().(*tomb)
	tm.ok2xx = 0
	for i := 0; i < cl.nbr; i++ {
		br := cl.br[i]
		timers[i+1] = &br.tTimeout
		if br.state == bAccepted {
			tm.ok2xx |= 1 << i
		}
	}
	end := cl.wheel.Latest(timers[:cl.nbr+1])
	bi := cl.bucket.Load()
	tm.bucket.Store(bi)
	tm.label, tm.hash, tm.nbr = cl.label, cl.hash, uint8(cl.nbr)
	tm.keyLen = uint8(copy(tm.key[:], cl.key))
	tm.invite, tm.method = cl.invite, cl.method
	tm.li, tm.rspDst = cl.li, cl.rspDst
	if !cl.invite {
		tm.rsp, cl.rsp = cl.rsp, nil
	}
	tm.next = b.tombs
	b.tombs = tm
	tm.wheel = cl.wheel
	tm.wheel.Start(&tm.timer, max(0, time.Duration(end-tm.wheel.Now())))
	st.Entombed.Add(1)
	t.recycle(b, cl)
}

// findTomb is find for the tombs of b (no tomb has MethodOther: such
// transactions linger whole).
func (b *txBucket) findTomb(h uint64, key []byte, invite bool, method sip.Method) *tomb {
	for tm := b.tombs; tm != nil; tm = tm.next {
		if tm.hash == h && tm.invite == invite && (invite || tm.method == method) && string(tm.key[:tm.keyLen]) == string(key) {
			return tm
		}
	}
	return nil
}

// absorbTomb is absorb for a request matching tomb tm.
func (w *Worker) absorbTomb(c *Context, tm *tomb) bool {
	switch c.Msg.Method() {
	case sip.ACK:
		return false // the ACK of a 2xx goes end to end
	case sip.CANCEL:
		c.Reply(200, "OK") // too late to cancel anything
		return true
	}
	w.st.Retransmissions.Add(1)
	c.Done = true
	if tm.rsp != nil {
		w.srv.sendFrom(c.out, tm.li, tm.rsp.b, tm.rspDst)
	}
	return true
}

// findTombLabel is findLabel for the tombs of b.
func (b *txBucket) findTombLabel(label uint32) *tomb {
	for tm := b.tombs; tm != nil; tm = tm.next {
		if tm.label == label {
			return tm
		}
	}
	return nil
}

// absorbs reports whether response m for branch i of the transaction that
// became tm is absorbed: all are, except a 2xx of an answered INVITE
// branch, which (like one after the end of the transaction) the caller
// forwards statelessly.
func (tm *tomb) absorbs(m *sip.Message, i int) bool {
	code := m.StatusCode()
	_, meth, err := m.CSeq()
	return err != nil || string(meth) == "CANCEL" || !tm.invite || code < 200 || code >= 300 ||
		i >= int(tm.nbr) || tm.ok2xx&(1<<i) == 0
}

// bury ends tomb tm when its timer fires.
func (tw *timerWorker) bury(tm *tomb, f txn.Fired) {
	t := tw.tt
	bi := tm.bucket.Load()
	b := &t.buckets[bi]
	b.mu.Lock()
	defer b.mu.Unlock()
	if tm.bucket.Load() != bi || tm.timer.Seq != f.Seq {
		return // recycled meanwhile: a stale firing
	}
	for p := &b.tombs; *p != nil; p = &(*p).next {
		if *p == tm {
			*p = tm.next
			break
		}
	}
	tm.next, tm.li = nil, nil
	dropBuf(&tm.rsp)
	tw.st.Released.Add(1)
	tw.st.Buried.Add(1)
	tombs.Put(tm)
}
