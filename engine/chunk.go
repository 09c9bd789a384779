package engine

import (
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

const (
	flagWaiters = 1 << 0 // requests are parked on this chunk
	flagDirty   = 1 << 1 // an image write changed the buffer while storing
)

// chunk is 16 bytes, so a never-touched chunk costs 16 bytes: a 1 TiB
// device with 256 KiB chunks needs 64 MiB.
type chunk struct {
	mu      sync.Mutex
	state   chunkState
	flags   uint8
	readers uint16 // image reads in flight on the original's copy
	data    uint32 // buffer index (loading, in memory, storing) or stored region in 4 KiB units
}

const (
	storageUnit = 4096
	waitBuckets = 64
	maxReaders  = 1<<16 - 1
	maxSegments = 1 << 12
)

// diffArea is one device's share of a snapshot: chunk map, buffers, waiters.
type diffArea struct {
	snap       *Snapshot
	dev        *Device
	chunkShift uint
	chunkSize  int64
	nChunks    int64
	chunks     []chunk
	cow        atomic.Bool
	corrupted  atomic.Pointer[error]

	bufArena *uring.Arena
	pool     struct {
		sync.Mutex
		free []uint32
		// cold counts the free buffers at the bottom of the free stack
		// (free[:cold]) whose memory went back to the kernel: at most
		// free_diff_buffer_pool_size free buffers keep theirs.
		cold    int
		waiters []*Request
		spare   []*Request
	}
	buckets [waitBuckets]struct {
		sync.Mutex
		head *Request
	}

	// regions keeps the difference-storage region of chunks whose stored
	// copy was loaded back for an image write, or that an image write
	// dirtied while they were being stored, so that the chunk's next store
	// rewrites its region instead of taking a new one (the storage only
	// grows; as in blksnap, a chunk keeps its region for the snapshot's
	// life). Without it every image rewrite of a stored chunk took another
	// chunk's worth: a 20 s fio randwrite on a 256 MiB image overflowed a
	// 512 MiB limit. Made on the first image write of the device; entries
	// are the region in storage units plus one (0: none), read and written
	// under the chunk's mutex.
	regions atomic.Pointer[[]uint32]

	// Counters for Stats.
	copied   atomic.Int64
	stored   atomic.Int64
	inMemory atomic.Int64
	failed   atomic.Int64
}

// keepRegion records unit as chunk n's region (c.mu held).
func (a *diffArea) keepRegion(n int64, unit uint32) {
	p := a.regions.Load()
	if p == nil {
		r := make([]uint32, a.nChunks)
		if a.regions.CompareAndSwap(nil, &r) {
			p = &r
		} else {
			p = a.regions.Load()
		}
	}
	(*p)[n] = unit + 1
}

// keptRegion is chunk n's region, if it has one (c.mu held).
func (a *diffArea) keptRegion(n int64) (uint32, bool) {
	p := a.regions.Load()
	if p == nil || (*p)[n] == 0 {
		return 0, false
	}
	return (*p)[n] - 1, true
}

func newDiffArea(s *Snapshot, d *Device, opts *Options) (*diffArea, error) {
	shift, err := opts.ChunkShift(d.size, d.minIO)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.path, err)
	}
	a := &diffArea{snap: s, dev: d, chunkShift: shift, chunkSize: 1 << shift}
	a.nChunks = (d.size + a.chunkSize - 1) >> shift
	a.chunks = make([]chunk, a.nChunks)
	a.bufArena, err = uring.NewArena(opts.ChunkMaximumInQueue * int(a.chunkSize))
	if err != nil {
		return nil, err
	}
	a.pool.free = make([]uint32, 0, opts.ChunkMaximumInQueue)
	for i := opts.ChunkMaximumInQueue - 1; i >= 0; i-- {
		a.pool.free = append(a.pool.free, uint32(i))
	}
	// The arena is populated; keep memory for the pool's size only. The
	// bottom of the stack is buffers pool..N-1, one contiguous range.
	if keep := opts.FreeDiffBufferPoolSize; keep < opts.ChunkMaximumInQueue {
		a.pool.cold = opts.ChunkMaximumInQueue - keep
		unix.Madvise(a.bufArena.Slice(keep*int(a.chunkSize), a.pool.cold*int(a.chunkSize)), unix.MADV_DONTNEED) //nolint:errcheck // advisory
	}
	a.pool.waiters = make([]*Request, 0, 64)
	a.pool.spare = make([]*Request, 0, 64)
	return a, nil
}

// chunkLen is the length of chunk n (the last one is shorter).
func (a *diffArea) chunkLen(n int64) int64 {
	return min(a.chunkSize, a.dev.size-n<<a.chunkShift)
}

func (a *diffArea) buffer(idx uint32, n int64) []byte {
	return a.bufArena.Slice(int(idx)*int(a.chunkSize), int(a.chunkLen(n)))
}

func (a *diffArea) err() error {
	if p := a.corrupted.Load(); p != nil {
		return *p
	}
	return nil
}

// corrupt marks the device's image invalid and raises the event once.
func (a *diffArea) corrupt(cause error) {
	err := fmt.Errorf("%w: device %s: %w", ErrCorrupted, a.dev.path, cause)
	if a.corrupted.CompareAndSwap(nil, &err) {
		a.snap.events.raise(Event{Kind: EventCorrupted, Device: a.dev.path, Err: cause})
	}
}

// getBuffer takes a free chunk buffer, or parks r until one is released
// (the in-memory budget, chunk_maximum_in_queue, is exhausted). Called with
// the chunk's lock held; lock order is chunk, then pool.
func (a *diffArea) getBuffer(r *Request) (uint32, bool) {
	a.pool.Lock()
	defer a.pool.Unlock()
	if n := len(a.pool.free); n > 0 {
		idx := a.pool.free[n-1]
		a.pool.free = a.pool.free[:n-1]
		a.pool.cold = min(a.pool.cold, n-1)
		a.inMemory.Add(1)
		return idx, true
	}
	r.to(reqParked)
	r.parkedOn = parkBuffer
	a.pool.waiters = append(a.pool.waiters, r)
	if r.Op != OpImageWrite {
		a.snap.gate.cowWaiting.Add(1) // image reads wait while it does
	}
	return 0, false
}

// putBuffer returns a buffer and wakes the requests waiting for one. Beyond
// free_diff_buffer_pool_size free buffers, the memory of the least recently
// used one goes back to the kernel. (It used to be every returned buffer once
// the in-memory budget exceeded the pool size: a madvise, a TLB shootdown and
// refaulting zeroed pages per chunk, a quarter of the CPU of 4 KiB-chunk
// copy-on-write in the VM benchmark.)
func (a *diffArea) putBuffer(idx uint32, from *Queue) {
	a.pool.Lock()
	a.pool.free = append(a.pool.free, idx)
	a.inMemory.Add(-1)
	if len(a.pool.free)-a.pool.cold > a.snap.opts.FreeDiffBufferPoolSize {
		// Under the lock: once unlocked, getBuffer could hand it out.
		b := a.bufArena.Slice(int(a.pool.free[a.pool.cold])*int(a.chunkSize), int(a.chunkSize))
		unix.Madvise(b, unix.MADV_DONTNEED) //nolint:errcheck // advisory
		a.pool.cold++
	}
	// Swap the waiter list for the spare one, so that getBuffer appending
	// under the lock never touches the array woken outside it.
	waiters := a.pool.waiters
	a.pool.waiters = a.pool.spare[:0]
	a.pool.spare = nil
	a.pool.Unlock()
	for i, r := range waiters {
		waiters[i] = nil
		a.snap.gate.leftBufferWait(r)
		r.q.wake(r, from)
	}
	a.pool.Lock()
	if a.pool.spare == nil {
		a.pool.spare = waiters[:0]
	}
	a.pool.Unlock()
	a.snap.gate.reopen(from)
}

// park puts r on chunk n's wait list; called with the chunk's lock held.
func (a *diffArea) park(r *Request, n int64, c *chunk) {
	c.flags |= flagWaiters
	r.to(reqParked)
	r.parkedOn = parkChunk
	r.waitChunk = n
	b := &a.buckets[n%waitBuckets]
	b.Lock()
	r.waitNext = b.head
	b.head = r
	b.Unlock()
}

// unpark removes the requests parked on chunk n; called with its lock held.
// The caller wakes them after dropping the lock.
func (a *diffArea) unpark(n int64, c *chunk) *Request {
	if c.flags&flagWaiters == 0 {
		return nil
	}
	c.flags &^= flagWaiters
	b := &a.buckets[n%waitBuckets]
	b.Lock()
	defer b.Unlock()
	var woken *Request
	for p := &b.head; *p != nil; {
		r := *p
		if r.waitChunk == n {
			*p = r.waitNext
			r.waitNext = woken
			woken = r
		} else {
			p = &r.waitNext
		}
	}
	return woken
}

func wakeList(r *Request, from *Queue) {
	for r != nil {
		next := r.waitNext
		r.waitNext = nil
		r.q.wake(r, from)
		r = next
	}
}

// wakeAll releases every parked request of the area (used by Destroy).
func (a *diffArea) wakeAll() {
	for i := range a.buckets {
		b := &a.buckets[i]
		b.Lock()
		r := b.head
		b.head = nil
		b.Unlock()
		wakeList(r, nil)
	}
	a.pool.Lock()
	waiters := a.pool.waiters
	a.pool.waiters = nil
	a.pool.Unlock()
	for _, r := range waiters {
		a.snap.gate.leftBufferWait(r)
		r.q.wake(r, nil)
	}
}
