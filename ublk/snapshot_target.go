package ublk

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/uring"
)

// snapshotTarget serves an engine.Device (the origin: writes are
// intercepted for copy-on-write, reads pass through) or an engine.Image
// (the snapshot image, readable and writable). Each queue runs a hosted
// engine.Queue on the queue's own ring: the chunk reads, the writes to the
// original and the image reads are SQEs on the same ring as the ublk
// commands, and a request parked on a chunk another queue is copying is
// resumed through Wake.
type snapshotTarget struct {
	dev     *engine.Device
	img     *engine.Image
	observe Observer // nil: none (SetObserver)
}

// Observer sees every request a snapshot target (OriginTarget or
// ImageTarget) completes: the hook for per-I/O metrics. It is called on the
// queue's goroutine just before the request is completed to the driver,
// with r the finished engine request (Op, Off, Buf or Len, Err, Source for
// image reads, Copied for origin writes), valid only during the call, and
// elapsed the time from the target receiving the request (Handle, Flush,
// Discard or WriteZeroes) to its completion: the engine's part, copy-on-write
// included, not the driver's or a USER_COPY copy. q.ID() tells the queues
// apart, so that counters can be kept per queue without sharing cache lines.
//
// It runs once per I/O on the data path: it must not block, and should do
// no more than a few atomic adds (no locks, no allocation).
type Observer func(q *Queue, r *engine.Request, elapsed time.Duration)

// SetObserver installs o (nil: none). Call it before Create; without an
// observer a request costs one nil check more, and no clock reads.
func (t *snapshotTarget) SetObserver(o Observer) { t.observe = o }

// OriginTarget serves an original device; it advertises a write cache
// (FLUSH syncs the original), discard and write-zeroes, which copy the
// chunks they touch first, like writes.
type OriginTarget struct{ snapshotTarget }

// ImageTarget serves a snapshot image, readable and writable; image writes
// land in the chunks' copies, never on the original.
type ImageTarget struct{ snapshotTarget }

// NewOriginTarget serves the original device dev.
func NewOriginTarget(dev *engine.Device) *OriginTarget {
	return &OriginTarget{snapshotTarget{dev: dev}}
}

// NewImageTarget serves the snapshot image img.
func NewImageTarget(img *engine.Image) *ImageTarget {
	return &ImageTarget{snapshotTarget{img: img}}
}

// LogicalBlockBytes is the alignment the engine device needs (ublk.BlockSizer):
// 512, or its O_DIRECT alignment.
func (t *snapshotTarget) LogicalBlockBytes() int {
	if t.img != nil {
		return t.img.Device().Alignment()
	}
	return t.dev.Alignment()
}

// Size is the device size.
func (t *snapshotTarget) Size() uint64 {
	if t.img != nil {
		return uint64(t.img.Size())
	}
	return uint64(t.dev.Size())
}

type snapQueue struct {
	eq    *engine.Queue
	reqs  []engine.Request
	out   []*engine.Request
	start []time.Time // per tag, when the target received it (only with an observer)
}

// host adapts a ublk Queue to engine.Host.
type host struct{ q *Queue }

// SQE carries the engine's user_data (uring's shared layout, 56 bits) as
// the target SQE's tag, op and data, and Completion packs them back.
func (h host) SQE(ud uint64) (*uring.SQE, error) {
	return h.q.TargetSQE(uring.UnpackUserData(ud))
}

func (h host) Wake() { h.q.Wake() }

// Reserve keeps the engine's next n SQEs in one submission (engine.LinkingHost).
func (h host) Reserve(n int) error { return h.q.ReserveTargetSQEs(n) }

// Init makes the queue's hosted engine queue.
func (t *snapshotTarget) Init(q *Queue) error {
	eq, err := engine.NewHostedQueue(q.Depth(), host{q})
	if err != nil {
		return err
	}
	if t.img != nil {
		// An image's queues serve the backup: their threads (locked until
		// they exit) yield the CPUs to the origin's.
		if err := eq.ServeBackup(t.img.BackupNice()); err != nil {
			return err
		}
	}
	sq := &snapQueue{eq: eq, reqs: make([]engine.Request, q.Depth()), out: make([]*engine.Request, q.Depth())}
	if t.observe != nil {
		sq.start = make([]time.Time, q.Depth())
	}
	q.SetTargetData(sq)
	return nil
}

func (t *snapshotTarget) submit(q *Queue, tag uint16, r engine.Request) {
	sq := q.TargetData().(*snapQueue)
	req := &sq.reqs[tag]
	*req = r
	req.UserData = uint64(tag)
	if t.observe != nil {
		sq.start[tag] = time.Now()
	}
	if err := sq.eq.Submit(req); err != nil {
		if t.observe != nil {
			req.Err = err
			t.observe(q, req, time.Since(sq.start[tag]))
		}
		q.Complete(tag, -int32(errnoOf(err)))
		return
	}
	t.flush(q, sq)
}

// flush completes the ublk tags of finished engine requests.
func (t *snapshotTarget) flush(q *Queue, sq *snapQueue) {
	for {
		n := sq.eq.TakeDone(sq.out)
		for _, r := range sq.out[:n] {
			res := int32(r.Bytes())
			if r.Op == engine.OpOriginDiscard || r.Op == engine.OpOriginWriteZeroes || r.Op == engine.OpOriginFlush {
				res = 0
			}
			if r.Err != nil {
				res = -int32(errnoOf(r.Err))
			}
			if t.observe != nil {
				t.observe(q, r, time.Since(sq.start[r.UserData]))
			}
			q.Complete(uint16(r.UserData), res)
		}
		if n < len(sq.out) {
			return
		}
	}
}

// errnoOf maps engine errors to what the block layer understands.
func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	switch {
	case errors.Is(err, engine.ErrWouldBlock):
		return unix.EAGAIN
	case errors.Is(err, engine.ErrInvalid):
		return unix.EINVAL
	case errors.As(err, &errno):
		return errno
	}
	return unix.EIO // corrupted, destroyed, short I/O
}

// Handle starts a READ or WRITE.
func (t *snapshotTarget) Handle(q *Queue, tag uint16, io *IO) {
	r := engine.Request{Off: int64(io.Offset), Buf: io.Buf}
	if io.Fixed { // only an origin's (OriginTarget.ZeroCopy)
		r.Fixed, r.BufIndex, r.Len = true, io.BufIndex, int64(io.Length)
	}
	switch {
	case t.img != nil && io.Op == OpRead:
		r.Op, r.Image = engine.OpImageRead, t.img
	case t.img != nil:
		r.Op, r.Image = engine.OpImageWrite, t.img
	case io.Op == OpRead:
		r.Op, r.Device = engine.OpOriginRead, t.dev
	default:
		r.Op, r.Device = engine.OpOriginWrite, t.dev
	}
	t.submit(q, tag, r)
}

// Completion forwards the CQE of an engine SQE.
func (t *snapshotTarget) Completion(q *Queue, c TargetCompletion) {
	sq := q.TargetData().(*snapQueue)
	sq.eq.HandleCQE(uring.PackUserData(c.Tag, c.Op, c.Data), c.Res)
	t.flush(q, sq)
}

// Wake resumes requests woken by other queues or the store workers.
func (t *snapshotTarget) Wake(q *Queue) {
	sq := q.TargetData().(*snapQueue)
	sq.eq.RunReady()
	t.flush(q, sq)
}

// Deinit closes the queue's engine queue, on the queue's goroutine once its
// ring is closed: a request still waiting there (the queue stopped on an
// error) is failed and releases its snapshot reference, so that the
// snapshot's Done fires.
func (t *snapshotTarget) Deinit(q *Queue) {
	sq := q.TargetData().(*snapQueue)
	sq.eq.Close() //nolint:errcheck // what it could not release stays referenced; nothing to report it to here
}

// Flush syncs the original.
func (t *OriginTarget) Flush(q *Queue, tag uint16, io *IO) {
	t.submit(q, tag, engine.Request{Op: engine.OpOriginFlush, Device: t.dev})
}

// ZeroCopy reports that an origin serves fixed buffers (ublk.ZeroCopier):
// its reads and writes go to the original straight from the block request's
// pages. An image does not: its data comes from chunk copies in memory and
// the difference storage as much as from the original.
func (t *OriginTarget) ZeroCopy() bool { return true }

// Discard discards a range of the origin: a write for copy-on-write, so the
// image keeps the old data (blksnap's issue #112).
func (t *OriginTarget) Discard(q *Queue, tag uint16, io *IO) {
	t.submit(q, tag, engine.Request{Op: engine.OpOriginDiscard, Device: t.dev, Off: int64(io.Offset), Len: int64(io.Length)})
}

// WriteZeroes zeroes a range of the origin, after copy-on-write.
func (t *OriginTarget) WriteZeroes(q *Queue, tag uint16, io *IO) {
	t.submit(q, tag, engine.Request{Op: engine.OpOriginWriteZeroes, Device: t.dev, Off: int64(io.Offset), Len: int64(io.Length)})
}

func (t *snapshotTarget) String() string {
	if t.img != nil {
		return fmt.Sprintf("image of %s", t.img.Device().Path())
	}
	return fmt.Sprintf("origin %s", t.dev.Path())
}

var (
	_ Target     = (*OriginTarget)(nil)
	_ Waker      = (*OriginTarget)(nil)
	_ Flusher    = (*OriginTarget)(nil)
	_ Discarder  = (*OriginTarget)(nil)
	_ ZeroWriter = (*OriginTarget)(nil)
	_ Sizer      = (*OriginTarget)(nil)
	_ BlockSizer = (*OriginTarget)(nil)
	_ BlockSizer = (*ImageTarget)(nil)
	_ ZeroCopier = (*OriginTarget)(nil)
	_ ZeroCopier = (*Passthrough)(nil)
	_ Deiniter   = (*OriginTarget)(nil)
	_ Target     = (*ImageTarget)(nil)
	_ Deiniter   = (*ImageTarget)(nil)
	_ Waker      = (*ImageTarget)(nil)
	_ Sizer      = (*ImageTarget)(nil)
)
