package engine

// This file: the Queue's lifecycle (standalone and hosted), Submit and the
// Poll loop.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// Queue runs requests on its own io_uring. A Queue is owned by one
// goroutine (like a uring.Ring): Submit and Poll are not safe for concurrent
// use. Run that goroutine under runtime.LockOSThread: writes to regular
// files go to the submitting thread's io-wq, and the ring's stall kick
// (uring's Kicks) reaches only that one. Requests parked on a chunk that
// another queue is copying are woken by that queue through an eventfd kept
// in this queue's ring.
type Queue struct {
	ring   *uring.Ring
	arena  *uring.Arena
	efd    int
	efdBuf []byte
	armed  bool

	slots []*Request
	free  []uint16
	live  int
	done  []*Request
	cqes  []uring.CQE

	bounce *uring.Arena // the synchronous API's pinned buffer
	// what this queue's image reads last saw of the application's writes
	// (readGate.fanOut)
	gateWrites int64
	writerSeen time.Time
	lastLook   time.Time
	lastSQE    *uring.SQE // the SQE prepIO prepared last
	host       Host       // set for a hosted queue, which has no ring of its own
	closed     bool
	backup     bool // ServeBackup: a backup's queue, on a lowered priority

	// injected holds the results of faults injected in place of SQEs
	// still in flight (the fault seam uses no user_data bits).
	injected []injectedRes

	readyMu sync.Mutex
	ready   []*Request
	local   []*Request // woken by this queue's own goroutine
	spare   []*Request
}

// ErrQueueFull is returned by Submit when depth requests are in flight.
var ErrQueueFull = errors.New("engine: queue full")

// NewQueue makes a queue for up to depth requests in flight.
func NewQueue(depth int) (*Queue, error) {
	if depth < 1 || depth > 1<<15 {
		return nil, fmt.Errorf("%w: queue depth %d: want 1..32768", ErrInvalid, depth)
	}
	entries := uint32(64)
	for entries < uint32(2*depth) && entries < 4096 {
		entries *= 2
	}
	ring, err := uring.New(uring.Options{Entries: entries, CQEntries: 4 * entries})
	if err != nil {
		return nil, err
	}
	// Blocking: io_uring answers a read of an O_NONBLOCK eventfd at once with
	// EAGAIN, and the queue would spin instead of sleeping.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		ring.Close()
		return nil, fmt.Errorf("engine: eventfd: %w", err)
	}
	arena, err := uring.NewArena(4096)
	if err != nil {
		ring.Close()
		unix.Close(efd)
		return nil, err
	}
	q := &Queue{ring: ring, arena: arena, efd: efd, efdBuf: arena.Slice(0, 8),
		slots: make([]*Request, depth), free: make([]uint16, depth), done: make([]*Request, 0, depth),
		cqes: make([]uring.CQE, 64), ready: make([]*Request, 0, depth), local: make([]*Request, 0, depth),
		spare: make([]*Request, 0, depth)}
	for i := range q.free {
		q.free[i] = uint16(depth - 1 - i)
	}
	registerQueue(q, true)
	return q, nil
}

// Host runs a hosted Queue's I/O on a ring it owns, such as a ublk queue
// whose ring also carries the block commands: no goroutine handoff between
// the block request and its backend I/O. All methods but Wake are called on
// the host's goroutine.
type Host interface {
	// SQE returns a zeroed SQE on the host's ring. When it completes, the
	// host calls Queue.HandleCQE with this ud (56 bits) and the result.
	SQE(ud uint64) (*uring.SQE, error)
	// Wake asks the host's goroutine to call Queue.RunReady soon. It is
	// called from any goroutine.
	Wake()
}

// LinkingHost is a Host that can keep SQEs together in one submission:
// Reserve(n) makes sure its next n SQE calls do not submit in between (as
// uring.Ring.Reserve). A hosted queue links a first write behind its
// chunk's load only on such a host.
type LinkingHost interface {
	Host
	Reserve(n int) error
}

// NewHostedQueue makes a queue that runs on host's ring. Its owner (the
// host's goroutine) uses Submit, HandleCQE, RunReady and TakeDone instead
// of Poll.
func NewHostedQueue(depth int, host Host) (*Queue, error) {
	if depth < 1 || depth > 1<<15 {
		return nil, fmt.Errorf("%w: queue depth %d: want 1..32768", ErrInvalid, depth)
	}
	q := &Queue{host: host, slots: make([]*Request, depth), free: make([]uint16, depth), done: make([]*Request, 0, depth),
		ready: make([]*Request, 0, depth), local: make([]*Request, 0, depth), spare: make([]*Request, 0, depth)}
	for i := range q.free {
		q.free[i] = uint16(depth - 1 - i)
	}
	return q, nil
}

// HandleCQE delivers the completion of an SQE the queue took from its host.
func (q *Queue) HandleCQE(ud uint64, res int32) {
	q.complete(uring.CQE{UserData: ud, Res: res})
	q.runReady()
}

// RunReady resumes requests woken by other goroutines (after Host.Wake).
func (q *Queue) RunReady() { q.runReady() }

// TakeDone moves up to len(out) completed requests into out.
func (q *Queue) TakeDone(out []*Request) int {
	q.runReady()
	return q.takeDone(out)
}

// InFlight is the number of submitted requests not yet returned by Poll.
func (q *Queue) InFlight() int { return q.live }

// Submit validates r and starts it. A malformed request is refused here
// with an error wrapping ErrInvalid; every other outcome, failures
// included, arrives through Poll.
func (q *Queue) Submit(r *Request) error {
	if err := r.validate(); err != nil {
		return err
	}
	if r.Fixed && q.host == nil {
		return fmt.Errorf("%w: %s with a fixed buffer on a queue with its own ring: fixed buffers are a host ring's", ErrInvalid, r.Op)
	}
	if q.closed {
		return ErrQueueClosed
	}
	if len(q.free) == 0 {
		return ErrQueueFull
	}
	r.slot = q.free[len(q.free)-1]
	q.free = q.free[:len(q.free)-1]
	q.slots[r.slot] = r
	q.live++
	r.q = q
	r.Err, r.Source, r.Copied = nil, 0, false
	r.area, r.holds, r.pending, r.linked = nil, 0, 0, false
	r.to(reqActive)
	q.start(r)
	return nil
}

func (q *Queue) start(r *Request) {
	switch r.Op {
	case OpOriginRead, OpOriginFlush:
		q.issueOriginIO(r)
	case OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes:
		q.startOriginWrite(r)
	case OpImageRead, OpImageWrite:
		a := r.Image.area
		switch {
		case !a.snap.acquire():
			q.finish(r, ErrClosed)
			return
		case !a.cow.Load():
			a.snap.release()
			q.finish(r, ErrNotTaken)
			return
		}
		r.holds |= holdSnapshot
		r.area = a
		r.first, r.last = r.Off>>a.chunkShift, (r.Off+r.length()-1)>>a.chunkShift
		r.next = r.first
		if r.last-r.first >= maxSegments {
			q.finish(r, fmt.Errorf("%w: %s spans more than %d chunks", ErrInvalid, r.Op, maxSegments))
			return
		}
		if r.Op == OpImageRead && !q.admit(r) {
			return
		}
		q.advanceImage(r)
	}
}

// finish completes r: releases what it holds and queues it for Poll.
func (q *Queue) finish(r *Request, err error) {
	r.Err = err
	r.to(reqDone)
	if r.holds&holdInflight != 0 {
		r.Device.endWrite()
	}
	if r.holds&holdAdmitted != 0 {
		r.area.snap.gate.done(q)
	}
	if r.holds&holdSnapshot != 0 {
		r.area.snap.release()
	}
	r.holds = 0
	q.done = append(q.done, r)
}

// Poll submits queued I/O and waits until at least min requests have
// completed (or none is left in flight), then moves up to len(out)
// completed requests into out and returns how many. With min 0 it does not
// wait.
func (q *Queue) Poll(out []*Request, min int) (int, error) {
	return q.PollTimeout(out, min, 0)
}

// PollTimeout is Poll that stops waiting after timeout (0: no limit) and
// then returns what has completed, possibly nothing.
func (q *Queue) PollTimeout(out []*Request, min int, timeout time.Duration) (int, error) {
	if q.host != nil {
		return 0, fmt.Errorf("%w: Poll on a hosted queue (use TakeDone)", ErrInvalid)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		q.runReady()
		q.reap()
		q.runReady()
		if len(q.done) >= min || len(q.done) >= len(out) || q.live == len(q.done) {
			break
		}
		if !q.armed {
			if err := q.armDoorbell(); err != nil {
				return 0, err
			}
		}
		if timeout > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			if _, err := q.ring.WaitTimeout(1, left); err != nil && !errors.Is(err, uring.ErrTimeout) {
				return 0, err
			}
		} else if _, err := q.ring.SubmitAndWait(1); err != nil {
			return 0, err
		}
	}
	if _, err := q.ring.Submit(); err != nil {
		return 0, err
	}
	return q.takeDone(out), nil
}

// armDoorbell queues the eventfd read that other goroutines' wake-ups
// complete.
func (q *Queue) armDoorbell() error {
	s, err := q.ring.NextSQE()
	if err != nil {
		return err
	}
	s.PrepRead(int32(q.efd), q.efdBuf, 0)
	s.SetUserData(packUD(0, kindEvent, 0))
	q.armed = true
	return nil
}

// takeDone moves completed requests into out and frees their slots.
func (q *Queue) takeDone(out []*Request) int {
	n := copy(out, q.done)
	for _, r := range q.done[:n] {
		r.to(reqIdle)
		q.slots[r.slot] = nil
		q.free = append(q.free, r.slot)
		q.live--
	}
	q.done = q.done[:copy(q.done, q.done[n:])]
	return n
}

// reap handles every completion ready in the ring, without waiting.
func (q *Queue) reap() {
	for {
		n := q.ring.Drain(q.cqes)
		for _, c := range q.cqes[:n] {
			q.complete(c)
		}
		if n < len(q.cqes) {
			return
		}
	}
}
