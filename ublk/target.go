package ublk

import "fmt"

// Op is a block request's operation (UBLK_IO_OP_*).
type Op uint8

func (o Op) String() string {
	switch o {
	case OpRead:
		return "READ"
	case OpWrite:
		return "WRITE"
	case OpFlush:
		return "FLUSH"
	case OpDiscard:
		return "DISCARD"
	case OpWriteSame:
		return "WRITE_SAME"
	case OpWriteZeroes:
		return "WRITE_ZEROES"
	}
	return fmt.Sprintf("OP(%d)", uint8(o))
}

// IO is one block request, as the driver described it. The queue owns one IO
// per tag, filled in place before the target sees it, so reading it does not
// allocate; it stays valid until the target calls Queue.Complete for its tag.
type IO struct {
	Op     Op
	Flags  uint32 // IOFlag* (FUA, NOUNMAP, ...)
	Offset uint64 // bytes from the start of the device
	Length uint32 // bytes
	// Buf holds the data: for WRITE it has arrived when the target sees the
	// request; for READ the target fills it before completing. It is
	// Length bytes of the tag's pinned buffer (Queue.Buffer), so the target
	// may hand it to io_uring directly. Nil for FLUSH, DISCARD and
	// WRITE_ZEROES, and under zero copy.
	Buf []byte
	// Fixed says the device runs zero copy (ZeroCopyOn): the READ or
	// WRITE's data is not in Buf but in the request's own pages, which the
	// driver installed in slot BufIndex of the queue ring's buffer table for
	// as long as the target owns the tag. The target moves it with backend
	// I/O on that ring (q.TargetSQE with uring's PrepReadFixedAt or
	// PrepWriteFixedAt, buffer offsets 0..Length); a READ must fill all
	// Length bytes, since the pages are the reader's.
	Fixed    bool
	BufIndex uint16
}

// TargetCompletion is the completion of an SQE a target submitted with
// Queue.TargetSQE, with the values it gave there.
type TargetCompletion struct {
	Tag   uint16 // the request the operation belongs to (any value the target chose)
	Op    uint8  // target-defined operation code
	Data  uint32 // target-defined data
	Res   int32  // the CQE's result: bytes done or -errno
	Flags uint32 // the CQE's flags
}

// Target serves the block requests of a device. One Target value serves all
// queues; every method is called on the goroutine of the queue passed in (an
// OS-thread-locked goroutine that owns q's io_uring ring), never
// concurrently for the same queue, but concurrently for different queues.
// Per-queue state goes in Queue.SetTargetData.
//
// A request (a tag) is the target's from Handle (or Flush, Discard,
// WriteZeroes) until it calls q.Complete(tag, res), synchronously inside
// that call or later from Completion or Wake. Meanwhile it can submit
// backend I/O on q's own ring with q.TargetSQE: that is the fast path, with
// no handoff between goroutines.
//
// Methods must not block: while one runs, its queue serves nothing else.
// Work that must wait for another goroutine (a chunk being copied) is parked
// by the target and resumed from Wake after that goroutine calls q.Wake.
type Target interface {
	// Init prepares per-queue state. Required; called once per queue on that
	// queue's goroutine before any request, with the ring ready (a target
	// may register files or buffers on q.Ring() here). An error fails
	// Create.
	Init(q *Queue) error
	// Handle starts a READ or WRITE. Required. It completes the request
	// with q.Complete(tag, res), res being io.Length (or fewer bytes done)
	// or -errno, now or later.
	Handle(q *Queue, tag uint16, io *IO)
	// Completion delivers the CQE of an SQE the target submitted with
	// q.TargetSQE. Required (a target that only completes synchronously may
	// leave it empty).
	Completion(q *Queue, c TargetCompletion)
}

// Flusher is implemented by targets with a volatile write cache. Optional:
// the device then advertises a write cache and the kernel sends FLUSH
// requests (fsync on the device); without it FLUSH is never sent (and
// completes at once if it is).
type Flusher interface {
	Flush(q *Queue, tag uint16, io *IO)
}

// Discarder is implemented by targets that can drop data. Optional: the
// device then advertises discard (io.Offset and io.Length give the range);
// without it the kernel never sends DISCARD.
type Discarder interface {
	Discard(q *Queue, tag uint16, io *IO)
}

// ZeroWriter is implemented by targets that can zero a range without a data
// buffer. Optional: the device then advertises WRITE_ZEROES; without it the
// kernel writes zero pages itself. io.Flags&IOFlagNoUnmap asks to keep the
// range allocated.
type ZeroWriter interface {
	WriteZeroes(q *Queue, tag uint16, io *IO)
}

// Waker is implemented by targets that park requests until another goroutine
// has done something (the snapshot engine copying a chunk). Optional. Wake
// runs on q's goroutine after any goroutine called q.Wake (calls made before
// Wake runs are coalesced into one); the target looks at what became ready
// and resumes those requests.
type Waker interface {
	Wake(q *Queue)
}

// Deiniter releases per-queue state. Optional; called once on the queue's
// goroutine after its last request completed and its ring was closed (no
// Completion can follow).
type Deiniter interface {
	Deinit(q *Queue)
}

// BlockSizer is implemented by targets whose requests must be aligned to
// more than 512 bytes (an origin opened with O_DIRECT on a 4 KiB-sector
// disk). Optional: Create then makes it the device's logical block size
// when DeviceConfig.LogicalBlockBytes is 0, and refuses a smaller one.
type BlockSizer interface {
	// LogicalBlockBytes is the smallest request the target can serve.
	LogicalBlockBytes() int
}

// Sizer reports the device size in bytes. Optional: Create uses it when
// DeviceConfig.SizeBytes is 0.
type Sizer interface {
	Size() uint64
}
