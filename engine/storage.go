package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// StorageConfig names the difference storage shared by a snapshot's devices.
type StorageConfig struct {
	// Path is a regular file (created if missing, used from offset 0), a
	// directory (an O_TMPFILE is made there, gone on close) or a block
	// device (opened exclusively; its size is the limit). An existing
	// regular file is refused unless Overwrite is set.
	Path string
	// Overwrite lets an existing regular file at Path be truncated and
	// reused. Without it, a path typed by mistake cannot destroy a file.
	Overwrite bool
	// Limit is the most the storage may grow to. Required for files and
	// directories; for a block device 0 means its whole size.
	Limit int64
}

// extent is one piece of the difference storage's address space: the file
// or device, where in it the piece starts, how much is usable now
// (capacity, grown by fallocate for files) and at most (maxLen).
type extent struct {
	file     *os.File
	fd       int32
	physOff  int64
	logical  int64 // start in the storage's logical address space
	capacity int64
	maxLen   int64
	used     int64
	growable bool
	ownsFile bool
	id       fileID // to refuse appending bytes already in the storage
	path     string // set when add created the file, for abort
	punted   bool   // large reads go to io-wq marked async (see asyncIfLarge)
	// inMemory: the file is on tmpfs or ramfs, where the storage is memory
	// and the grower writes zeros over what it allocates (see populate).
	inMemory bool
}

// extentLoc is what locate needs of an extent; none of it changes once the
// extent is added.
type extentLoc struct {
	logical int64
	physOff int64
	fd      int32
	punted  bool
}

// diffStorage is an append-only region allocator over extents. Regions are
// never reused while the snapshot lives.
type diffStorage struct {
	mu        sync.Mutex
	extents   []*extent
	cur       int
	portion   int64
	events    *eventQueue
	lowRaised bool
	noRaised  bool
	usedTotal int64
	originIDs []fileID
	inject    Injector // the fault seam for the storage's fallocates

	// index maps logical offsets to files for locate, without the mutex
	// (which alloc holds while it waits for the grower's fallocate): an
	// immutable slice, copied and republished by add under mu, as uring's
	// arenas publish their registry.
	index atomic.Pointer[[]extentLoc]

	// The grower extends a growable extent in the background when what is
	// left drops under half a portion, so store workers rarely wait on a
	// fallocate of a whole portion.
	growKick chan struct{}
	growDone chan struct{}
	growing  bool
	grown    *sync.Cond
}

type fileID struct{ dev, ino, rdev uint64 }

// liveOrigins counts, per original device, the live snapshots covering it,
// so that no snapshot's difference storage can be another's original.
var liveOrigins struct {
	sync.Mutex
	ids map[fileID]int
}

func addLiveOrigins(ids []fileID, delta int) {
	liveOrigins.Lock()
	defer liveOrigins.Unlock()
	if liveOrigins.ids == nil {
		liveOrigins.ids = map[fileID]int{}
	}
	for _, id := range ids {
		if liveOrigins.ids[id] += delta; liveOrigins.ids[id] <= 0 {
			delete(liveOrigins.ids, id)
		}
	}
}

func liveOriginIDs() []fileID {
	liveOrigins.Lock()
	defer liveOrigins.Unlock()
	out := make([]fileID, 0, len(liveOrigins.ids))
	for id := range liveOrigins.ids {
		out = append(out, id)
	}
	return out
}

func statID(f *os.File) (fileID, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, false, err
	}
	isBlk := st.Mode&unix.S_IFMT == unix.S_IFBLK
	id := fileID{dev: st.Dev, ino: st.Ino}
	if isBlk {
		id = fileID{rdev: st.Rdev}
	}
	return id, isBlk, nil
}

func blockDeviceSize(f *os.File) (int64, error) {
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	return int64(n), err
}

func newDiffStorage(cfg StorageConfig, portion int64, events *eventQueue, origins []fileID, inject Injector) (*diffStorage, error) {
	s := &diffStorage{portion: portion, events: events, originIDs: origins, inject: inject,
		growKick: make(chan struct{}, 1), growDone: make(chan struct{})}
	s.grown = sync.NewCond(&s.mu)
	go s.grower(s.growKick)
	if err := s.add(cfg.Path, 0, cfg.Limit, true, cfg.Overwrite); err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

func (s *diffStorage) grower(kick <-chan struct{}) {
	defer close(s.growDone)
	for range kick {
		s.mu.Lock()
		e := s.growableLocked()
		if e == nil {
			s.growing = false
			s.grown.Broadcast()
			s.mu.Unlock()
			continue
		}
		n := min(s.portion, e.maxLen-e.capacity)
		s.mu.Unlock()
		// Outside the lock: allocation below the capacity goes on. In steps,
		// each published at once: a file system may hold the inode lock for
		// the whole of one fallocate (tmpfs zeroes every page under it), and
		// the store workers' writes to the same file wait behind it; a
		// 256 MiB portion in one call showed as a spike of origin-write
		// latency at every low-free-space event.
		for done := int64(0); done < n; {
			step := min(growStepBytes, n-done)
			s.mu.Lock()
			off := e.physOff + e.capacity
			s.mu.Unlock()
			err := s.growExtent(e, off, step)
			s.mu.Lock()
			if err != nil {
				if !s.noRaised {
					s.noRaised = true
					s.events.raise(Event{Kind: EventNoSpace, RequestedBytes: n - done, Err: err})
				}
				s.mu.Unlock()
				break
			}
			e.capacity += step
			done += step
			s.grown.Broadcast()
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.growing = false
		s.grown.Broadcast()
		s.mu.Unlock()
	}
}

// growStepBytes is the most one fallocate of the grower asks for.
const growStepBytes = 16 << 20

func (s *diffStorage) growableLocked() *extent {
	for _, e := range s.extents[s.cur:] {
		if e.growable && e.capacity < e.maxLen {
			return e
		}
	}
	return nil
}

// add opens path and appends it as an extent. first is the storage's
// creation (file, dir or block device); later calls are blksnap v1–v5's
// append of a file or a range of a block device. overwrite lets the first
// call truncate an existing regular file; without it that file is refused
// before anything is written, and a new one is created with O_EXCL.
func (s *diffStorage) add(path string, off, length int64, first, overwrite bool) error {
	if path == "" {
		return fmt.Errorf("%w: difference storage: no path", ErrInvalid)
	}
	if off < 0 || length < 0 || off%4096 != 0 || length%4096 != 0 {
		return fmt.Errorf("%w: difference storage %s: offset %d and length %d must be non-negative multiples of 4096", ErrInvalid, path, off, length)
	}
	if fi, err := os.Stat(path); err == nil {
		// Before anything is opened: an original named as storage would
		// otherwise be refused as an existing file, or truncated.
		if err := s.checkNotOrigin(path, statFileID(fi)); err != nil {
			return err
		}
	}
	f, growable, created, err := openStorage(path, first, overwrite)
	if err != nil {
		return err
	}
	// fail undoes what add did: a file it created is removed again, so a
	// refused storage leaves nothing behind.
	fail := func(err error) error {
		f.Close()
		if created {
			os.Remove(path)
		}
		return err
	}
	id, isBlk, err := statID(f)
	if err != nil {
		return fail(fmt.Errorf("engine: difference storage %s: %w", path, err))
	}
	if err := s.checkNotOrigin(path, id); err != nil {
		return fail(err)
	}
	e := &extent{file: f, fd: int32(f.Fd()), physOff: off, ownsFile: true, growable: growable, id: id}
	if created {
		e.path = path
	}
	e.punted = readsPunted(e.fd, isBlk)
	e.inMemory = !isBlk && memoryBacked(e.fd)
	if err := s.sizeExtent(e, path, isBlk, length); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.extents {
		// The same bytes twice would hand out overlapping regions.
		if o.id == id && e.physOff < o.physOff+o.maxLen && o.physOff < e.physOff+e.maxLen {
			return fail(fmt.Errorf("%w: difference storage %s: %d+%d is already part of the difference storage", ErrInvalid, path, e.physOff, e.maxLen))
		}
	}
	if n := len(s.extents); n > 0 {
		last := s.extents[n-1]
		e.logical = last.logical + last.maxLen
	}
	s.extents = append(s.extents, e)
	s.publishIndexLocked()
	// An append clears the low-space condition.
	s.lowRaised, s.noRaised = false, false
	if growable && s.portion > 0 {
		if err := s.growLocked(e); err != nil {
			return err
		}
	}
	return nil
}

// openStorage opens what path names for the difference storage: an
// O_TMPFILE in a directory, a block device (exclusively), or a regular
// file (created if missing, only at the storage's creation). growable says
// whether it grows by portions; created, whether this made the file.
func openStorage(path string, first, overwrite bool) (f *os.File, growable, created bool, err error) {
	fi, statErr := os.Stat(path)
	switch {
	case statErr == nil && fi.IsDir():
		fd, err := unix.Open(path, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, false, false, fmt.Errorf("engine: difference storage: O_TMPFILE in %s: %w", path, err)
		}
		return os.NewFile(uintptr(fd), path+"/(tmpfile)"), true, false, nil
	case statErr == nil && fi.Mode()&os.ModeDevice != 0:
		f, err = os.OpenFile(path, os.O_RDWR|unix.O_EXCL, 0)
		if err != nil {
			return nil, false, false, fmt.Errorf("engine: difference storage: open block device %s: %w", path, err)
		}
		return f, false, false, nil
	case statErr == nil || errors.Is(statErr, os.ErrNotExist):
		if !first && statErr != nil {
			return nil, false, false, fmt.Errorf("%w: difference storage to append %s: %v", ErrInvalid, path, statErr)
		}
		if first && statErr == nil && !overwrite {
			return nil, false, false, fmt.Errorf("%w: difference storage %s exists: refusing to overwrite it (ask for it to be overwritten, or name a new file or a directory)", ErrInvalid, path)
		}
		flags := os.O_RDWR
		if statErr != nil {
			flags |= os.O_CREATE | os.O_EXCL
		}
		f, err = os.OpenFile(path, flags, 0o600)
		if err != nil {
			return nil, false, false, fmt.Errorf("engine: difference storage: %w", err)
		}
		return f, first, statErr != nil, nil
	}
	return nil, false, false, fmt.Errorf("engine: difference storage %s: %w", path, statErr)
}

// checkNotOrigin refuses a difference storage that is an original device,
// of this snapshot or of another live one.
func (s *diffStorage) checkNotOrigin(path string, id fileID) error {
	for _, o := range s.originIDs {
		if o == id {
			return fmt.Errorf("%w: difference storage %s is one of the snapshot's original devices", ErrInvalid, path)
		}
	}
	for _, o := range liveOriginIDs() {
		if o == id {
			return fmt.Errorf("%w: difference storage %s is an original device of another live snapshot", ErrInvalid, path)
		}
	}
	return nil
}

// sizeExtent sets e's capacity and limit: a block device's range (length
// 0: to its end), a growable file's limit (emptied, grown later), or an
// appended file's range, allocated now.
func (s *diffStorage) sizeExtent(e *extent, path string, isBlk bool, length int64) error {
	off := e.physOff
	switch {
	case isBlk:
		size, err := blockDeviceSize(e.file)
		if err != nil {
			return fmt.Errorf("engine: difference storage %s: size: %w", path, err)
		}
		if length == 0 {
			length = size - off
		}
		if off+length > size || length <= 0 {
			return fmt.Errorf("%w: difference storage %s: range %d+%d beyond its %d bytes", ErrInvalid, path, off, length, size)
		}
		e.capacity, e.maxLen = length, length
	case e.growable:
		if length <= 0 {
			return fmt.Errorf("%w: difference storage %s: a limit is required for a file or directory", ErrInvalid, path)
		}
		if err := e.file.Truncate(0); err != nil {
			return fmt.Errorf("engine: difference storage %s: %w", path, err)
		}
		e.maxLen = length
	default:
		// An appended regular file: the given range, allocated now.
		if length <= 0 {
			return fmt.Errorf("%w: difference storage %s: a length is required to append a file", ErrInvalid, path)
		}
		if err := s.fallocate(FaultFallocate, e.fd, off, length); err != nil {
			return fmt.Errorf("engine: difference storage %s: fallocate %d bytes: %w", path, length, err)
		}
		e.capacity, e.maxLen = length, length
	}
	return nil
}

// statFileID is statID for a file that is not open.
func statFileID(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
		return fileID{rdev: st.Rdev}
	}
	return fileID{dev: st.Dev, ino: st.Ino}
}

// growLocked extends a growable extent by one portion (or to its limit).
func (s *diffStorage) growLocked(e *extent) error {
	n := min(s.portion, e.maxLen-e.capacity)
	if n <= 0 {
		return nil
	}
	if err := s.growExtent(e, e.physOff+e.capacity, n); err != nil {
		return fmt.Errorf("engine: difference storage: grow %d bytes at %d: %w", n, e.capacity, err)
	}
	e.capacity += n
	return nil
}

// growExtent allocates n bytes at off of a growable extent, past its
// capacity, and populates them where the extent is memory; the caller
// publishes them as capacity afterwards, so nothing is stored there yet.
func (s *diffStorage) growExtent(e *extent, off, n int64) error {
	if err := s.fallocate(FaultGrow, e.fd, off, n); err != nil {
		return err
	}
	if e.inMemory {
		return populate(e.fd, off, n)
	}
	return nil
}

// memoryBacked reports whether fd is a file on tmpfs or ramfs.
func memoryBacked(fd int32) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(fd), &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// populateZeros is what populate writes; never written to.
var populateZeros = make([]byte, 1<<20)

// populate writes zeros over n bytes at off of a memory-backed extent that
// fallocate has just allocated, before they are published as capacity (so
// no store write is there yet). On tmpfs fallocate takes pages without
// touching them, and the store's write is then their first touch: where
// memory is lazily backed, as in a VM whose guest returns freed pages to
// the host (free page reporting), a first touch costs a fault in the host.
// On this project's 2-vCPU VM, 1 GiB written in 256 KiB writes took 0.47 to
// 3.5 s to fresh tmpfs pages, 0.6 to 0.9 s to fallocated ones and 0.22 s
// over pages already written. In backup-scan (tmpfs) the store worker, one
// io-wq thread, paid for every touch and fell behind copy-on-write by
// seconds: origin-write p99 132, 74, 78x raw in 3 alternating pairs, and
// 76, 30, 17.5x with the grower touching each step ahead of the store,
// which then is the bound (a third of both CPUs in the first 3 s). The grower
// pays for the touch, off the path of the writes waiting on a store. On a
// disk file system this would write zeros to the disk, so it is only done
// where the storage is memory, which fallocate has already committed.
func populate(fd int32, off, n int64) error {
	for done := int64(0); done < n; {
		w, err := unix.Pwrite(int(fd), populateZeros[:min(int64(len(populateZeros)), n-done)], off+done)
		if err != nil {
			return err
		}
		if w <= 0 {
			return io.ErrShortWrite
		}
		done += int64(w)
	}
	return nil
}

// fallocate allocates n bytes at off of fd, through the fault seam.
func (s *diffStorage) fallocate(op FaultOp, fd int32, off, n int64) error {
	if s.inject != nil {
		if got, ok := s.inject.Inject(FaultIO{Op: op, Target: FaultDiffStorage, Off: off, Len: n}); ok {
			return got.errno()
		}
	}
	return unix.Fallocate(int(fd), 0, off, n)
}

// region is a piece of difference storage holding one chunk.
type region struct {
	fd     int32
	off    int64
	punted bool // large reads go to io-wq marked async (see asyncIfLarge)
}

var errNoSpace = errors.New("engine: difference storage full")

// alloc returns a region of size bytes and its logical offset. When the
// current extent is full it waits for the grower, or moves on to the next
// extent; with nothing left it raises no-space and fails.
func (s *diffStorage) alloc(size int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.cur < len(s.extents) {
		e := s.extents[s.cur]
		if e.used+size <= e.capacity {
			logical := e.logical + e.used
			e.used += size
			s.usedTotal += size
			s.checkLowLocked()
			return logical, nil
		}
		if e.growable && e.capacity < e.maxLen && !s.noRaised {
			s.kickGrowLocked()
			// Until the grower has made room (it publishes each step) or
			// given up.
			for s.growing && e.used+size > e.capacity {
				s.grown.Wait()
			}
			continue
		}
		s.cur++
	}
	if !s.noRaised {
		s.noRaised = true
		s.events.raise(Event{Kind: EventNoSpace, RequestedBytes: size})
	}
	return 0, errNoSpace
}

func (s *diffStorage) kickGrowLocked() {
	if s.growing || s.growKick == nil {
		return
	}
	s.growing = true
	s.growKick <- struct{}{}
}

func (s *diffStorage) checkLowLocked() {
	var left int64
	for _, e := range s.extents[s.cur:] {
		left += e.capacity - e.used
	}
	if left >= s.portion/2 {
		return
	}
	if e := s.growableLocked(); e != nil {
		if !s.growing {
			s.events.raise(Event{Kind: EventLowFreeSpace, RequestedBytes: min(s.portion, e.maxLen-e.capacity)})
			s.kickGrowLocked()
		}
		return
	}
	if !s.lowRaised {
		s.lowRaised = true
		s.events.raise(Event{Kind: EventLowFreeSpace, RequestedBytes: s.portion})
	}
	if left == 0 && !s.noRaised {
		s.noRaised = true
		s.events.raise(Event{Kind: EventNoSpace, RequestedBytes: s.portion})
	}
}

// publishIndexLocked republishes locate's index after an extent was added.
func (s *diffStorage) publishIndexLocked() {
	idx := make([]extentLoc, len(s.extents))
	for i, e := range s.extents {
		idx[i] = extentLoc{logical: e.logical, physOff: e.physOff, fd: e.fd, punted: e.punted}
	}
	s.index.Store(&idx)
}

// locate maps a logical offset (one alloc returned) to a file and physical
// offset. It takes no lock: the index it reads is immutable.
func (s *diffStorage) locate(logical int64) region {
	idx := *s.index.Load()
	lo, hi := 0, len(idx) // the last extent starting at or before logical
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if idx[mid].logical > logical {
			hi = mid
		} else {
			lo = mid
		}
	}
	e := &idx[lo]
	return region{fd: e.fd, off: e.physOff + logical - e.logical, punted: e.punted}
}

func (s *diffStorage) stats() (used, capacity, limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.extents {
		capacity += e.capacity
		limit += e.maxLen
	}
	return s.usedTotal, capacity, limit
}

// abort closes a storage whose snapshot could not be made, removing the
// files it created.
func (s *diffStorage) abort() {
	s.close()
	for _, e := range s.extents {
		if e.path != "" {
			os.Remove(e.path)
		}
	}
}

func (s *diffStorage) close() error {
	s.mu.Lock()
	for s.growing {
		s.grown.Wait()
	}
	kick := s.growKick
	s.growKick = nil
	s.mu.Unlock()
	if kick != nil {
		close(kick)
		<-s.growDone
	}
	var first error
	for _, e := range s.extents {
		if e.ownsFile {
			if err := e.file.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
