package engine

// This file: the copy-on-write path of origin writes (the take barrier,
// chunk loads from the original, then the write itself).

import (
	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// startOriginWrite passes the take barrier and, with copy-on-write on,
// starts copying the chunks the write touches.
func (q *Queue) startOriginWrite(r *Request) {
	d := r.Device
	if r.holds&holdInflight == 0 {
		d.inflight.Add(1)
		if d.barrier.Load() {
			d.endWrite()
			if r.NoWait {
				q.finish(r, ErrWouldBlock)
				return
			}
			d.takeMu.Lock()
			if d.barrier.Load() {
				r.to(reqParked)
				r.parkedOn = parkTake
				d.takeWait = append(d.takeWait, r)
				d.takeMu.Unlock()
				return
			}
			d.takeMu.Unlock()
			d.inflight.Add(1)
		}
		r.holds |= holdInflight
		if a := d.area.Load(); a != nil && a.cow.Load() && a.err() == nil && a.snap.acquire() {
			r.holds |= holdSnapshot
			a.snap.gate.wrote()
			r.area = a
			r.first, r.last = r.Off>>a.chunkShift, (r.Off+r.length()-1)>>a.chunkShift
			r.next = r.first
			if r.NoWait && q.wouldBlock(r) {
				q.finish(r, ErrWouldBlock)
				return
			}
		}
	}
	q.advanceCOW(r)
}

// wouldBlock reports whether an origin write must wait for a copy.
func (q *Queue) wouldBlock(r *Request) bool {
	a := r.area
	for n := r.first; n <= r.last; n++ {
		c := &a.chunks[n]
		c.mu.Lock()
		st := c.state
		c.mu.Unlock()
		if st == stateNew || st == stateLoading {
			return true
		}
	}
	return false
}

// advanceCOW walks the chunks of an origin write: a new chunk is read whole
// into a buffer before the write may proceed; a chunk being loaded makes the
// write wait; copied chunks cost nothing.
func (q *Queue) advanceCOW(r *Request) {
	a := r.area
	for a != nil && r.next <= r.last && r.Err == nil {
		if a.snap.destroyed.Load() {
			break // no more copies; the write itself still goes through
		}
		n := r.next
		c := &a.chunks[n]
		c.mu.Lock()
		switch c.state {
		case stateNew:
			if c.readers > 0 {
				a.park(r, n, c)
				c.mu.Unlock()
				return
			}
			idx, ok := a.getBuffer(r)
			if !ok {
				c.mu.Unlock()
				return
			}
			c.to(stateLoading)
			c.data = idx
			c.mu.Unlock()
			r.Copied = true
			a.copied.Add(1)
			if q.mayLink(r, n) {
				q.issueLoadThenWrite(r, n, idx)
				return
			}
			q.issueLoad(r, n, kindLoadOrig, idx, 0)
		case stateLoading:
			a.park(r, n, c)
			c.mu.Unlock()
			return
		default:
			c.mu.Unlock()
		}
		r.next++
	}
	q.maybeIssueWrite(r)
}

// The fallocate modes of discard and write-zeroes (KEEP_SIZE: never grow
// the original).
const (
	punchHole = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	zeroRange = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
)

// mayLink reports whether r's write may go to the kernel linked behind the
// load of chunk n, the last chunk it still had to copy: when nothing else
// of r is in flight, it is a plain write, no injector may replace the load
// with a NOP (which would let the write run after a failed load), and the
// ring can take both SQEs in one submission.
func (q *Queue) mayLink(r *Request, n int64) bool {
	return r.Op == OpOriginWrite && n == r.last && r.pending == 0 && r.Err == nil &&
		r.injector() == nil && q.reserve(2)
}

// issueLoadThenWrite queues the load of chunk n and r's write linked behind
// it (IOSQE_IO_LINK): the kernel starts the write only once the load has
// completed in full, so the first write to a chunk costs one trip through
// the ring, not two. A failed or short load cancels the write (ECANCELED),
// which leaves the original untouched, as an unlinked write that is never
// issued does; the load's error is the write's (complete, loaded).
func (q *Queue) issueLoadThenWrite(r *Request, n int64, idx uint32) {
	q.issueLoad(r, n, kindLoadOrig, idx, 0)
	q.lastSQE.SetFlags(uring.SQEIOLink)
	r.linked = true
	r.next = n + 1
	q.issueOriginIO(r)
}

// reserve makes room for n SQEs in one submission on the queue's ring (or
// its host's, when the host can).
func (q *Queue) reserve(n int) bool {
	if q.host == nil {
		return q.ring.Reserve(uint32(n)) == nil
	}
	lh, ok := q.host.(LinkingHost)
	return ok && lh.Reserve(n) == nil
}

func (q *Queue) maybeIssueWrite(r *Request) {
	if r.pending > 0 {
		return
	}
	if r.linked && r.state == reqIssued {
		// The linked write completed before its load's CQE was handled.
		q.finish(r, r.Err)
		return
	}
	if r.state != reqActive {
		return
	}
	if r.Err != nil {
		q.finish(r, r.Err)
		return
	}
	q.issueOriginIO(r)
}

// issueLoad reads chunk n whole into buffer idx, from the original
// (kindLoadOrig) or from the difference storage at logical (kindLoadDiff).
func (q *Queue) issueLoad(r *Request, n int64, k kind, idx uint32, logical int64) {
	a := r.area
	buf := a.buffer(idx, n)
	fd, fio := a.dev.fd, FaultIO{Op: FaultRead, Target: FaultOrigin, Device: a.dev, Off: n << a.chunkShift, Len: int64(len(buf))}
	if k == kindLoadDiff {
		reg := a.snap.storage.locate(logical)
		fd, fio.Target, fio.Off = reg.fd, FaultDiffStorage, reg.off
	}
	q.prepIO(r, k, n-r.first, fio, fd, buf, 0)
}

// issueOriginIO queues the request's own operation on the original.
func (q *Queue) issueOriginIO(r *Request) {
	r.to(reqIssued)
	d := r.Device
	fio := FaultIO{Target: FaultOrigin, Device: d, Off: r.Off, Len: r.length()}
	var mode uint32
	switch r.Op {
	case OpOriginRead:
		fio.Op = FaultRead
	case OpOriginWrite:
		fio.Op = FaultWrite
	case OpOriginDiscard:
		fio.Op, mode = FaultDiscard, punchHole
	case OpOriginWriteZeroes:
		fio.Op, mode = FaultWriteZeroes, zeroRange
	case OpOriginFlush:
		fio = FaultIO{Op: FaultFlush, Target: FaultOrigin, Device: d}
	}
	q.prepIO(r, kindOriginIO, 0, fio, d.fd, r.Buf, mode)
}
