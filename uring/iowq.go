package uring

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Kicking io-wq (see "Stalled io-wq work" in doc.go). Only operations the
// caller marked with MarkIOWQ (buffered reads and writes of regular files,
// which io-wq serializes per inode) make a ring kick, and only while one of
// them is in flight: a wait that sees no completion for kickInterval, while
// a marked operation is outstanding, queues an asynchronous NOP
// (IOSQE_ASYNC) and goes on waiting; the NOP's completion is dropped. The
// NOP reaches the calling thread's io-wq, so a ring that marks operations
// must be driven from one thread (runtime.LockOSThread). A ring with
// nothing marked in flight (an idle ublk queue, a pipe or eventfd read)
// never kicks.
const (
	kickInterval = 50 * time.Millisecond
	kickUD       = ^uint64(0) - 0x6b69636b // "kick": reserved user data
)

var kicks atomic.Int64

// kickDisabled turns the kick off (set by the io-wq stall reproducer before
// it starts its rings, and restored after they are closed).
var kickDisabled bool

// Kicks is how many times a wait on any ring kicked io-wq: 0 on a healthy
// kernel; a rising count points at stalled io-wq work (or at marked
// operations that take longer than kickInterval, such as writes throttled
// by writeback).
func Kicks() int64 { return kicks.Load() }

// Kicks is how many times waits on this ring kicked io-wq.
func (r *Ring) Kicks() int64 { return r.kicked }

// MarkIOWQ marks s, an SQE of r not yet submitted, as an operation that may
// run in io-wq's hashed (per-inode serialized) work: a read or write of a
// regular file without O_DIRECT. While a marked operation is in flight,
// waits on r kick io-wq (see kickIOWQ). Marking needs the SQE's user data
// to be unique among r's marked operations in flight; it is read when the
// SQE is submitted. The first mark allocates r's tables, later ones do not.
func (r *Ring) MarkIOWQ(s *SQE) {
	slot := (uintptr(unsafe.Pointer(s)) - uintptr(r.sqes)) / r.sqeSize
	if slot >= uintptr(r.sqEntries) {
		panic("uring: MarkIOWQ: the SQE is not this ring's")
	}
	if r.iowqMarked == nil {
		r.iowqMarked = make([]bool, r.sqEntries)
		// A power of two (the kernel's CQ size is) at least twice the
		// ring's SQEs and CQEs together: at most half full.
		r.iowqSet = make([]iowqEntry, 4*r.cqEntries)
	}
	r.iowqMarked[slot] = true
}

// IOWQInFlight is how many marked operations of r have not been drained.
func (r *Ring) IOWQInFlight() int { return r.iowqN }

type iowqEntry struct {
	ud   uint64
	used bool
}

// publishMarks records the user data of the marked SQEs from the
// published tail up to the local one, just before they are published.
func (r *Ring) publishMarks() {
	if r.iowqMarked == nil {
		return
	}
	for i := atomic.LoadUint32(r.sqTail); i != r.sqeTail; i++ {
		slot := i & r.sqMask
		if !r.iowqMarked[slot] {
			continue
		}
		r.iowqMarked[slot] = false
		r.iowqAdd((*SQE)(unsafe.Add(r.sqes, uintptr(slot)*r.sqeSize)).userData)
	}
}

func (r *Ring) iowqAdd(ud uint64) {
	if 2*(r.iowqN+1) > len(r.iowqSet) {
		// More marked operations in flight than the ring holds: grow (rare,
		// and only past the largest number ever in flight).
		old := r.iowqSet
		r.iowqSet = make([]iowqEntry, 2*len(old))
		r.iowqN = 0
		for _, e := range old {
			if e.used {
				r.iowqAdd(e.ud)
			}
		}
	}
	mask := uint64(len(r.iowqSet) - 1)
	for i := iowqHash(ud) & mask; ; i = (i + 1) & mask {
		if !r.iowqSet[i].used {
			r.iowqSet[i] = iowqEntry{ud: ud, used: true}
			r.iowqN++
			return
		}
	}
}

// iowqDone removes ud from the marked operations in flight, if it is one.
func (r *Ring) iowqDone(ud uint64) {
	mask := uint64(len(r.iowqSet) - 1)
	i := iowqHash(ud) & mask
	for ; r.iowqSet[i].used; i = (i + 1) & mask {
		if r.iowqSet[i].ud == ud {
			break
		}
	}
	if !r.iowqSet[i].used {
		return
	}
	// Backward-shift deletion keeps every probe sequence unbroken.
	r.iowqSet[i] = iowqEntry{}
	r.iowqN--
	for j := (i + 1) & mask; r.iowqSet[j].used; j = (j + 1) & mask {
		h := iowqHash(r.iowqSet[j].ud) & mask
		// Move entry j into the hole i unless its home lies in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			r.iowqSet[i] = r.iowqSet[j]
			r.iowqSet[j] = iowqEntry{}
			i = j
		}
	}
}

func iowqHash(ud uint64) uint64 { return (ud * 0x9e3779b97f4a7c15) >> 17 }

// kickIOWQ queues the kick NOP. Work newly queued to an io-wq wakes a free
// worker or creates one (IOSQE_ASYNC work always may), and that worker
// also runs what was queued before it.
func (r *Ring) kickIOWQ() {
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return // no room; the pending SQEs go in with the next enter
	}
	r.publishMarks()
	s := (*SQE)(unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*r.sqeSize))
	*s = SQE{}
	s.PrepNop()
	s.SetFlags(SQEAsync)
	s.SetUserData(kickUD)
	r.sqeTail++
	if r.sqFree > 0 {
		r.sqFree--
	}
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	r.kicks++
	r.kicked++
	kicks.Add(1)
}
