package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/internal/ioflusher"
	"github.com/snapring/snapring/uring"
)

// Snapshot covers one or more original devices with one shared difference
// storage. Create it with NewSnapshot, switch copy-on-write on with Take,
// read and write the images, and Destroy it.
type Snapshot struct {
	opts    Options
	areas   []*diffArea
	storage *diffStorage
	events  *eventQueue
	inject  Injector // the fault seam (nil: none)

	origins []fileID // the devices' identities, registered as live originals
	storeQ  chan storeItem
	quit    chan struct{}
	workers sync.WaitGroup
	// workerTIDs are the store workers' thread ids (for tests).
	workerTIDs struct {
		sync.Mutex
		ids []int
	}

	mu          sync.Mutex
	taken       bool
	destroyed   atomic.Bool
	storeWrites atomic.Int64 // Stats.StoreWrites
	refs        atomic.Int64 // 1 for the snapshot itself + requests in flight on it
	finalErr    error
	finalOnce   sync.Once
	finalDone   chan struct{}

	gate *readGate // image reads after the application's writes (gate.go)
}

type storeItem struct {
	area  *diffArea
	chunk int64
}

// Image is one device's snapshot image: a block device as of Take, plus
// the writes made to the image itself.
type Image struct{ area *diffArea }

// Size is the image's size in bytes (the original's).
func (img *Image) Size() int64 { return img.area.dev.size }

// Device is the original device this image is a snapshot of.
func (img *Image) Device() *Device { return img.area.dev }

// ChunkSize is the device's chunk size in bytes.
func (img *Image) ChunkSize() int64 { return img.area.chunkSize }

// NewSnapshot prepares a snapshot of devs over the difference storage
// described by storage. Copy-on-write starts only at Take.
func NewSnapshot(devs []*Device, storage StorageConfig, opts Options) (*Snapshot, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: a snapshot needs at least one device", ErrInvalid)
	}
	s := &Snapshot{opts: opts, events: newEventQueue(opts.EventQueueSize), inject: snapshotInjector(&opts),
		quit: make(chan struct{}), finalDone: make(chan struct{})}
	s.gate = newReadGate(s, &opts)
	var ids []fileID
	seen := map[fileID]bool{}
	for _, d := range devs {
		if d == nil || d.closed.Load() {
			return nil, fmt.Errorf("%w: a device is nil or closed", ErrInvalid)
		}
		if seen[d.id] {
			return nil, fmt.Errorf("%w: device %s given twice", ErrInvalid, d.path)
		}
		seen[d.id] = true
		ids = append(ids, d.id)
	}
	var err error
	if s.storage, err = newDiffStorage(storage, opts.DiffStorageMinimum, s.events, ids, s.inject); err != nil {
		return nil, err
	}
	total := 0
	for _, d := range devs {
		a, err := newDiffArea(s, d, &opts)
		if err != nil {
			s.closeAreas()
			s.storage.abort()
			return nil, err
		}
		s.areas = append(s.areas, a)
		total += opts.ChunkMaximumInQueue
	}
	for i, a := range s.areas {
		if !a.dev.area.CompareAndSwap(nil, a) {
			for _, b := range s.areas[:i] {
				b.dev.area.Store(nil)
			}
			s.closeAreas()
			s.storage.abort()
			return nil, fmt.Errorf("%w: device %s already has a snapshot", ErrInvalid, a.dev.path)
		}
		a.dev.acquire()
	}
	s.refs.Store(1)
	s.origins = ids
	addLiveOrigins(ids, 1)
	// Every in-memory chunk holds a buffer, so the queue never fills.
	s.storeQ = make(chan storeItem, total+1)
	for i := 0; i < opts.StoreWorkers; i++ {
		ring, err := uring.New(uring.Options{Entries: storeBatch})
		var iovs *uring.Arena
		if err == nil {
			if iovs, err = uring.NewArena(storeBatch * uring.IovecSize); err != nil {
				ring.Close()
			}
		}
		if err != nil {
			s.Destroy() // stops the workers already started
			<-s.Done()
			return nil, err
		}
		s.workers.Add(1)
		go s.storeWorker(ring, iovs)
	}
	return s, nil
}

func (s *Snapshot) closeAreas() {
	for _, a := range s.areas {
		a.bufArena.Close()
	}
}

// Image returns the image of dev, or nil if dev is not in the snapshot.
func (s *Snapshot) Image(dev *Device) *Image {
	for _, a := range s.areas {
		if a.dev == dev {
			return &Image{area: a}
		}
	}
	return nil
}

// Events delivers low-free-space, no-space, overflow and corrupted events.
// The queue is bounded; events that find it full are counted in
// DroppedEvents. The channel is closed once the snapshot is finalized
// (when Done is closed), after the last event.
func (s *Snapshot) Events() <-chan Event { return s.events.ch }

// DroppedEvents counts events lost because the consumer fell behind.
func (s *Snapshot) DroppedEvents() int64 { return s.events.dropped.Load() }

// DefaultTakeTimeout bounds Take's wait for the origin writes in flight.
const DefaultTakeTimeout = 30 * time.Second

// Take is TakeContext with a deadline DefaultTakeTimeout from now.
func (s *Snapshot) Take() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTakeTimeout)
	defer cancel()
	return s.TakeContext(ctx)
}

// TakeContext switches copy-on-write on for every device at one instant.
// It is a barrier over origin writes: writes acknowledged before Take are
// in the images; writes submitted after it are not; writes in flight during
// Take finish before copy-on-write starts (wholly in), while writes
// arriving during Take wait for it (wholly out). Take waits for the writes
// in flight to complete, so their queues' owners must keep polling
// meanwhile: do not call Take from a goroutine that owns a queue with
// origin writes in flight. If ctx ends first, the barrier is lifted, the
// snapshot is not taken (Take may be tried again) and the error wraps
// ctx.Err() (context.DeadlineExceeded for a timeout).
func (s *Snapshot) TakeContext(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed.Load() {
		return ErrClosed
	}
	if s.taken {
		return fmt.Errorf("%w: snapshot already taken", ErrInvalid)
	}
	for _, a := range s.areas {
		a.dev.barrier.Store(true)
	}
	for _, a := range s.areas {
		if err := a.dev.waitDrained(ctx); err != nil {
			for _, b := range s.areas {
				b.dev.liftBarrier()
			}
			return fmt.Errorf("engine: take: device %s: %d origin writes still in flight (their queues' owners must keep polling): %w",
				a.dev.path, a.dev.inflight.Load(), err)
		}
	}
	for _, a := range s.areas {
		a.cow.Store(true)
	}
	s.taken = true
	for _, a := range s.areas {
		a.dev.liftBarrier()
	}
	return nil
}

// AppendStorage adds a file, or a range of a block device (off and length
// in bytes, multiples of 4096; length 0 for the rest of the device), to the
// difference storage while the snapshot lives (blksnap v1–v5's append),
// clearing the low-space condition.
func (s *Snapshot) AppendStorage(path string, off, length int64) error {
	if s.destroyed.Load() {
		return ErrClosed
	}
	return s.storage.add(path, off, length, false, false)
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	ChunksCopied, ChunksStored, ChunksInMemory, ChunksFailed int64
	DiffUsedBytes, DiffCapacityBytes, DiffLimitBytes         int64
	EventsDropped                                            int64
	// StoreQueued is the store queue's depth: in-memory chunks waiting for
	// a store worker (ChunksInMemory also counts the chunks being loaded
	// or written). One queue serves all the snapshot's devices.
	StoreQueued int64
	// StoreWrites counts the writes that stored chunks: chunks stored
	// together in consecutive places of the difference storage go in one
	// write, so ChunksStored/StoreWrites is how many a write carried.
	StoreWrites int64
	Corrupted   bool
}

// DeviceStats are one device's counters in a snapshot. Stats sums them.
type DeviceStats struct {
	Device *Device
	// ChunksCopied counts chunks read from the original for copy-on-write;
	// ChunksStored, chunks written to the difference storage;
	// ChunksInMemory, chunk buffers in use now (loading, waiting to be
	// stored, or being stored); ChunksFailed, chunks that failed (the
	// image is corrupted).
	ChunksCopied, ChunksStored, ChunksInMemory, ChunksFailed int64
	Corrupted                                                bool // the device's image is invalid (ErrCorrupted)
}

// DeviceStats reports each device's counters, in the order the devices
// were given to NewSnapshot. Each counter is read atomically on its own,
// so under load the figures of one call are not one instant's.
func (s *Snapshot) DeviceStats() []DeviceStats {
	out := make([]DeviceStats, len(s.areas))
	for i, a := range s.areas {
		out[i] = a.stats()
	}
	return out
}

func (a *diffArea) stats() DeviceStats {
	return DeviceStats{Device: a.dev, ChunksCopied: a.copied.Load(), ChunksStored: a.stored.Load(),
		ChunksInMemory: a.inMemory.Load(), ChunksFailed: a.failed.Load(), Corrupted: a.err() != nil}
}

// Stats sums the counters over the snapshot's devices.
func (s *Snapshot) Stats() Stats {
	var st Stats
	for _, a := range s.areas {
		ds := a.stats()
		st.ChunksCopied += ds.ChunksCopied
		st.ChunksStored += ds.ChunksStored
		st.ChunksInMemory += ds.ChunksInMemory
		st.ChunksFailed += ds.ChunksFailed
		st.Corrupted = st.Corrupted || ds.Corrupted
	}
	st.DiffUsedBytes, st.DiffCapacityBytes, st.DiffLimitBytes = s.storage.stats()
	st.EventsDropped = s.events.dropped.Load()
	st.StoreQueued = int64(len(s.storeQ))
	st.StoreWrites = s.storeWrites.Load()
	return st
}

// Destroy ends the snapshot: origin writes stop copying, parked image
// requests fail with ErrClosed (parked origin writes go on to the
// original), new image I/O fails with ErrClosed, and the store workers
// stop. The difference storage is closed once the last request in flight
// on the snapshot completes (queue owners keep polling); Done says when.
func (s *Snapshot) Destroy() error {
	if s.destroyed.Swap(true) {
		return nil
	}
	addLiveOrigins(s.origins, -1)
	s.mu.Lock()
	for _, a := range s.areas {
		a.dev.area.CompareAndSwap(a, nil)
	}
	s.mu.Unlock()
	close(s.quit)
	s.workers.Wait()
	s.gate.stop()
	for _, a := range s.areas {
		a.wakeAll()
		a.dev.liftBarrier()
	}
	s.release()
	return nil
}

// Done is closed when a destroyed snapshot has released everything: the
// last request in flight on it completed and its storage is closed.
func (s *Snapshot) Done() <-chan struct{} { return s.finalDone }

// Err is the error from closing the difference storage, once Done.
func (s *Snapshot) Err() error {
	select {
	case <-s.finalDone:
		return s.finalErr
	default:
		return nil
	}
}

func (s *Snapshot) acquire() bool {
	if s.destroyed.Load() {
		return false
	}
	s.refs.Add(1)
	if s.destroyed.Load() {
		s.release()
		return false
	}
	return true
}

func (s *Snapshot) release() {
	if s.refs.Add(-1) == 0 {
		s.finalOnce.Do(s.finalize)
	}
}

func (s *Snapshot) finalize() {
	s.closeAreas()
	err := s.storage.close()
	for _, a := range s.areas {
		if e := a.dev.release(); e != nil && err == nil {
			err = e
		}
	}
	s.finalErr = err
	s.events.close()
	close(s.finalDone)
}

// enqueueStore hands an in-memory chunk to the store workers. The channel
// has room for every buffer, so this never blocks.
func (s *Snapshot) enqueueStore(a *diffArea, n int64) {
	select {
	case s.storeQ <- storeItem{a, n}:
	default:
		panic("engine: store queue overflow: more in-memory chunks than buffers")
	}
}

// storeBatch bounds the chunks a store worker writes with one submission.
const storeBatch = 32

// storeJob is one chunk a store worker is writing.
type storeJob struct {
	area    *diffArea
	chunk   int64
	idx     uint32
	logical int64
	want    int
	err     error
}

// storeWorker writes in-memory chunks to the difference storage through
// its own ring: it takes every chunk waiting (up to storeBatch), submits
// all their writes at once and finishes them together, so a burst of
// copies costs one wake-up and one io_uring_enter, not one per chunk.
// iovs holds the iovec arrays of its vectored writes (writeJobs).
func (s *Snapshot) storeWorker(ring *uring.Ring, iovs *uring.Arena) {
	defer s.workers.Done()
	runtime.LockOSThread()
	// The store workers write what writers of the origin (a ublk device
	// among them) wait for: they must not recurse into I/O when they
	// allocate. Without CAP_SYS_RESOURCE they work anyway.
	flusher := ioflusher.Set() == nil
	defer releaseThread(flusher)
	defer iovs.Close() // after the ring: no write uses it then
	defer ring.Close()
	s.workerTIDs.Lock()
	s.workerTIDs.ids = append(s.workerTIDs.ids, unix.Gettid())
	s.workerTIDs.Unlock()
	w := &storeScratch{
		iovs: iovs,
		cqes: make([]uring.CQE, storeBatch),
		bufs: make([][]byte, storeBatch),
		regs: make([]region, storeBatch),
		runs: make([]int, storeBatch),
	}
	jobs := make([]storeJob, 0, storeBatch)
	for {
		var it storeItem
		select {
		case <-s.quit:
			return
		case it = <-s.storeQ:
		}
		jobs = jobs[:0]
		for {
			if j, ok := s.startStore(it.area, it.chunk); ok {
				jobs = append(jobs, j)
			}
			if len(jobs) == storeBatch {
				break
			}
			select {
			case it = <-s.storeQ:
				continue
			default:
			}
			break
		}
		s.writeJobs(ring, w, jobs)
		for i := range jobs {
			s.finishStore(&jobs[i])
		}
	}
}

// releaseThread hands a store worker's thread back to Go without the
// I/O-flusher flag. (Letting the thread exit with its locked goroutine
// instead cost every snapshot's store workers new threads, and the first
// write to a chunk 7 µs more at the p50 on ext4: BenchmarkOriginWriteCOW,
// 44.9 against 52.2 µs.) A flag that cannot be cleared leaves with the
// thread.
func releaseThread(flusher bool) {
	if !flusher || ioflusher.Clear() == nil {
		runtime.UnlockOSThread()
	}
}

// startStore moves an in-memory chunk to storing and gives it a region.
func (s *Snapshot) startStore(a *diffArea, n int64) (storeJob, bool) {
	c := &a.chunks[n]
	c.mu.Lock()
	if c.state != stateInMemory {
		c.mu.Unlock()
		return storeJob{}, false
	}
	c.to(stateStoring)
	c.flags &^= flagDirty
	j := storeJob{area: a, chunk: n, idx: c.data, want: int(a.chunkLen(n))}
	unit, kept := a.keptRegion(n)
	c.mu.Unlock()
	if kept {
		j.logical = int64(unit) * storageUnit
		return j, true
	}
	allocSize := (int64(j.want) + storageUnit - 1) / storageUnit * storageUnit
	j.logical, j.err = s.storage.alloc(allocSize)
	if errors.Is(j.err, errNoSpace) {
		s.events.raise(Event{Kind: EventOverflow, Device: a.dev.path, RequestedBytes: allocSize})
	}
	return j, true
}

// storeScratch is a store worker's scratch space for writeJobs, storeBatch
// of each.
type storeScratch struct {
	iovs *uring.Arena // iovec arrays of vectored writes
	cqes []uring.CQE
	bufs [][]byte
	regs []region
	runs []int
}

// writeJobs writes every job that has a region, in one submission. Jobs
// whose regions follow one another in the same file (consecutive
// allocations: the usual case) go in one vectored write: on a file system
// with large folios (ext4) the page cache then holds the stored chunks in
// folios as large as that write, not one chunk's. Measured on files, not
// through the engine: 256 MiB on ext4 read in 256 KiB reads at QD4,
// 21.6-24.2 GB/s from a file written in 256 KiB writes against 25.4 GB/s
// from one written in 1 MiB writes (3 runs each). The engine's benchmarks
// showed no change: their stores mostly go one chunk at a time.
func (s *Snapshot) writeJobs(ring *uring.Ring, w *storeScratch, jobs []storeJob) {
	bufs, regs, runs := w.bufs[:len(jobs)], w.regs[:len(jobs)], w.runs[:len(jobs)]
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil {
			continue
		}
		regs[i] = s.storage.locate(j.logical)
		bufs[i] = j.area.buffer(j.idx, j.chunk)
		if s.inject != nil {
			if got, ok := s.inject.Inject(FaultIO{Op: FaultWrite, Target: FaultDiffStorage, Device: j.area.dev, Off: regs[i].off, Len: int64(len(bufs[i]))}); ok {
				if got.Errno != 0 || !got.Short {
					j.err = fmt.Errorf("engine: store chunk to difference storage at %d: %w", regs[i].off, got.errno())
					continue
				}
				bufs[i] = bufs[i][:len(bufs[i])/2]
			}
		}
	}
	// One write per run of consecutive jobs; runs[i] is how many jobs the
	// write of the run starting at i covers.
	inflight := 0
	for i := 0; i < len(jobs); {
		if jobs[i].err != nil {
			i++
			continue
		}
		n := 1
		for k := i + 1; k < len(jobs) && jobs[k].err == nil && len(bufs[k-1]) == jobs[k-1].want &&
			regs[k].fd == regs[i].fd && regs[k].off == regs[k-1].off+int64(len(bufs[k-1])); k++ {
			n++
		}
		sqe, err := ring.NextSQE()
		if err != nil {
			for k := i; k < i+n; k++ {
				jobs[k].err = err
			}
			i += n
			continue
		}
		if n == 1 {
			sqe.PrepWrite(regs[i].fd, bufs[i], uint64(regs[i].off))
		} else {
			iov := w.iovs.Iovecs(i*uring.IovecSize, n)
			for k := range iov {
				iov[k].Base = &bufs[i+k][0]
				iov[k].SetLen(len(bufs[i+k]))
			}
			sqe.PrepWritev(regs[i].fd, iov, uint64(regs[i].off))
		}
		sqe.SetUserData(uint64(i))
		ring.MarkIOWQ(sqe) // a buffered write to the storage file may wait in io-wq
		s.storeWrites.Add(1)
		runs[i] = n
		inflight++
		i += n
	}
	for inflight > 0 {
		if _, err := ring.SubmitAndWait(1); err != nil {
			for i := range jobs {
				if jobs[i].err == nil {
					jobs[i].err = err
				}
			}
			return
		}
		n := ring.Drain(w.cqes)
		for _, c := range w.cqes[:n] {
			inflight--
			first := int(c.UserData)
			if err := uring.ResultError(uring.OpWrite, c.Res); err != nil {
				for k := first; k < first+runs[first]; k++ {
					jobs[k].err = fmt.Errorf("engine: store chunk %d to difference storage: %w", jobs[k].chunk, err)
				}
				continue
			}
			// A short write stored the jobs it covered whole.
			left := int(c.Res)
			for k := first; k < first+runs[first]; k++ {
				j := &jobs[k]
				if got := min(left, len(bufs[k])); got != j.want {
					j.err = fmt.Errorf("%w: store chunk %d to difference storage: wrote %d of %d bytes", ErrShortIO, j.chunk, max(got, 0), j.want)
				}
				left -= len(bufs[k])
			}
		}
	}
}

// finishStore marks a chunk stored (or failed), releases its buffer and
// wakes whoever waits for it; a chunk the image changed meanwhile is
// stored again.
func (s *Snapshot) finishStore(j *storeJob) {
	a, n := j.area, j.chunk
	c := &a.chunks[n]
	c.mu.Lock()
	var woken *Request
	switch {
	case j.err != nil:
		// Mark the image corrupted before the chunk shows failed, so
		// that once any image I/O got ErrCorrupted all of it does.
		a.corrupt(j.err)
		c.to(stateFailed)
		a.failed.Add(1)
		woken = a.unpark(n, c)
	case c.flags&flagDirty != 0:
		c.to(stateInMemory)
		a.keepRegion(n, uint32(j.logical/storageUnit)) // stored again there
		c.mu.Unlock()
		s.enqueueStore(a, n)
		return
	default:
		c.to(stateStored)
		c.data = uint32(j.logical / storageUnit)
		a.stored.Add(1)
		woken = a.unpark(n, c)
	}
	c.mu.Unlock()
	a.putBuffer(j.idx, nil)
	wakeList(woken, nil)
}
