package engine

// This file: closing a Queue, which never abandons a request: what has I/O
// in the kernel completes, what waits is failed and releases what it holds.

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// ErrQueueClosed fails the requests a Queue still held when it was closed,
// and Submit on a closed queue.
var ErrQueueClosed = errors.New("engine: queue closed")

// closeTimeout bounds how long Close waits for its requests' I/O.
const closeTimeout = time.Second

// Close releases the queue. Requests still in flight are not abandoned:
// for up to a second Close keeps completing the I/O they have in the
// kernel (a request may still succeed then), and fails every request left
// waiting (parked on a chunk, for a chunk buffer or for Take) with
// ErrQueueClosed, releasing its snapshot reference and its place in Take's
// barrier, so that Snapshot.Done fires. Requests it ended, and completed
// ones Poll had not returned, are the caller's again without a Poll (there
// is none after Close): their Err says how they ended. Close
// returns an error if some request could not be released in time (its I/O
// is still in the kernel: it keeps the snapshot alive rather than let its
// buffers be unmapped under the kernel). A hosted queue's Close, on the
// host's goroutine, fails what waits; its host delivers the completions of
// I/O on its ring first.
func (q *Queue) Close() error {
	if q.closed {
		return nil
	}
	var left int
	if q.host != nil {
		q.runReady()
		left = q.releaseWaiting()
	} else {
		left = q.drainForClose(time.Now().Add(closeTimeout))
	}
	q.closed = true
	// Hand back what is done: those requests may be submitted again.
	for _, r := range q.done {
		r.to(reqIdle)
		q.slots[r.slot] = nil
		q.free = append(q.free, r.slot)
		q.live--
	}
	q.done = q.done[:0]
	var err error
	if left > 0 {
		err = fmt.Errorf("engine: queue closed with %d requests still in flight after %v (I/O in the kernel, or woken and not yet delivered): their snapshot stays referenced", left, closeTimeout)
	}
	if q.host != nil {
		return err
	}
	registerQueue(q, false)
	disarmed := q.disarm()
	if cerr := q.ring.Close(); err == nil {
		err = cerr
	}
	q.readyMu.Lock()
	unix.Close(q.efd)
	q.efd = -1
	q.readyMu.Unlock()
	if disarmed {
		q.arena.Close()
	} // else leave the page mapped: a read may still land in it
	if q.bounce != nil {
		q.bounce.Close()
	}
	return err
}

// drainForClose completes what it can until deadline: it reaps
// completions, resumes woken requests and fails waiting ones, and returns
// how many live requests are left (neither done nor released).
func (q *Queue) drainForClose(deadline time.Time) int {
	for {
		q.runReady()
		q.reap()
		q.runReady()
		left := q.releaseWaiting()
		if left == 0 {
			return 0
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return left
		}
		if !q.armed {
			q.armDoorbell() //nolint:errcheck // without it the wait below is bounded anyway
		}
		// Short waits: a request woken by another goroutine shows up in the
		// ready list, which the doorbell rings for only once per batch.
		q.ring.WaitTimeout(1, min(wait, 10*time.Millisecond)) //nolint:errcheck // timeouts are expected; the loop is bounded
	}
}

// releaseWaiting fails every live request that waits with nothing in the
// kernel and can be taken off its wait list, and returns how many live
// requests remain.
func (q *Queue) releaseWaiting() int {
	left := 0
	for _, r := range q.slots {
		if r == nil || r.state == reqDone {
			continue
		}
		if r.state == reqParked && r.pending == 0 && r.unlink() {
			q.finish(r, ErrQueueClosed)
			continue
		}
		left++
	}
	return left
}

// unlink takes a parked request off the list it waits on and reports
// whether it was there: a request already taken off by a waker is on its
// way to this queue's ready list, and is not the caller's to fail.
func (r *Request) unlink() bool {
	switch r.parkedOn {
	case parkChunk:
		b := &r.area.buckets[r.waitChunk%waitBuckets]
		b.Lock()
		defer b.Unlock()
		for p := &b.head; *p != nil; p = &(*p).waitNext {
			if *p == r {
				*p = r.waitNext
				r.waitNext = nil
				return true
			}
		}
	case parkBuffer:
		a := r.area
		a.pool.Lock()
		defer a.pool.Unlock()
		if !removeRequest(&a.pool.waiters, r) {
			return false
		}
		a.snap.gate.leftBufferWait(r)
		return true
	case parkGate:
		return r.area.snap.gate.unlink(r)
	case parkTake:
		d := r.Device
		d.takeMu.Lock()
		defer d.takeMu.Unlock()
		return removeRequest(&d.takeWait, r)
	}
	return false
}

func removeRequest(list *[]*Request, r *Request) bool {
	for i, x := range *list {
		if x == r {
			l := *list
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			*list = l[:len(l)-1]
			return true
		}
	}
	return false
}

// disarm cancels the doorbell read and waits (up to a second) for its
// completion, reporting whether none is armed any more. The kernel tears a
// closed ring down asynchronously, so a read still armed at Close could land
// in the arena after it is unmapped, or in whatever is mapped there next.
func (q *Queue) disarm() bool {
	if !q.armed {
		return true
	}
	ud := packUD(0, kindEvent, 0)
	s, err := q.ring.NextSQE()
	if err != nil {
		return false
	}
	s.PrepCancel(ud)
	s.SetUserData(packUD(0, kindCancel, 0))
	deadline := time.Now().Add(time.Second)
	for q.armed {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		if _, err := q.ring.WaitTimeout(1, left); err != nil && !errors.Is(err, uring.ErrTimeout) {
			return false
		}
		for n := q.ring.Drain(q.cqes); n > 0; n = q.ring.Drain(q.cqes) {
			for _, c := range q.cqes[:n] {
				if c.UserData == ud {
					q.armed = false
				}
			}
		}
	}
	return true
}
