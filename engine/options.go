package engine

import (
	"fmt"
	"os"
	"strings"
)

// Options are the engine's parameters, named and defaulted as blksnap's.
//
// One concept, one name: each option is named after blksnap's module
// parameter, and the engine's errors use that name. Where another layer
// already spells the concept differently, the spelling stays (users
// depend on it) and this is the mapping:
//
//	Options field            blksnap / scenario engine key   elsewhere
//	DiffStorageMinimum       diff_storage_minimum            the growth portion: scenario diff_storage.portion
//	                                                         (overrides it), CLI --portion, diffStorage.portion
//	ChunkMaximumInQueue      chunk_maximum_in_queue          the in-memory chunk budget: CLI --chunks-in-memory;
//	                                                         Stats.ChunksInMemory and result counter
//	                                                         store_queue_chunks count what it bounds
//	ChunkMinimumShift        chunk_minimum_shift             CLI --chunk-shift
//	ChunkMaximumShift        chunk_maximum_shift
//	ChunkMaximumCount        chunk_maximum_count
//	FreeDiffBufferPoolSize   free_diff_buffer_pool_size
//	StoreWorkers             store_workers
//	EventQueueSize           (engine only)                   Snapshot.DroppedEvents, Stats.EventsDropped
//	BackupNice               backup_nice (engine only)       CLI --backup-nice
type Options struct {
	// ChunkMinimumShift: chunks are at least 1<<ChunkMinimumShift bytes
	// (blksnap default 18: 256 KiB).
	ChunkMinimumShift uint
	// ChunkMaximumShift: a device needing bigger chunks than this is refused
	// (default 26: 64 MiB).
	ChunkMaximumShift uint
	// ChunkMaximumCount: the chunk size doubles while a device has more
	// chunks than this (blksnap v1–v3: 2,097,152; v4+: 1<<40, the default).
	ChunkMaximumCount uint64
	// ChunkMaximumInQueue bounds the chunks held in memory per device while
	// they wait to be stored; COW writers wait beyond it (default 16).
	ChunkMaximumInQueue int
	// FreeDiffBufferPoolSize is how many freed chunk buffers keep their
	// memory for reuse; beyond it memory goes back to the kernel (default 128).
	FreeDiffBufferPoolSize int
	// DiffStorageMinimum is the portion by which the difference storage
	// grows (default 1 GiB); low-free-space is raised at half of it.
	DiffStorageMinimum int64
	// StoreWorkers is the number of goroutines writing chunks to the
	// difference storage (default 1). Buffered writes to one file are
	// serialized by io-wq (or the inode lock) anyway; more workers only
	// help a difference storage spread over several devices, and two
	// threads writing one file through io-wq is the pattern that stalled
	// on 6.18 (see uring's doc).
	StoreWorkers int
	// EventQueueSize bounds the event queue (default 256).
	EventQueueSize int
	// ImageReadBytesPerSecond throttles image reads of the whole snapshot
	// to about this many bytes per second, as backup agents offer (0: no
	// throttle, the default).
	ImageReadBytesPerSecond int64
	// NoWriterPriority turns the read gate off: image reads then run
	// whatever the copy-on-write path is waiting for. By default they wait
	// while an origin write waits for a chunk buffer (see gate.go).
	NoWriterPriority bool
	// BackupNice is the CPU priority (nice 1..19) of the threads that serve
	// a backup's image reads, and of the io-wq workers they start (default
	// 5; see priority.go and Queue.ServeBackup). NoWriterPriority leaves
	// them at the caller's priority.
	BackupNice int
	// Faults, when set, injects read and write errors (tests and failure
	// drills); it is asked before Inject.
	Faults *FaultPlan
	// Inject, when set, sees every engine I/O before it is issued and may
	// replace it with an injected result (see Injector).
	Inject Injector
}

// Defaults as in blksnap.
const (
	DefaultChunkMinimumShift      = 18
	DefaultChunkMaximumShift      = 26
	DefaultChunkMaximumCount      = 1 << 40
	DefaultChunkMaximumInQueue    = 16
	DefaultFreeDiffBufferPoolSize = 128
	DefaultDiffStorageMinimum     = 1 << 30
	DefaultStoreWorkers           = 1
	DefaultEventQueueSize         = 256
	DefaultBackupNice             = 5
)

// EnsureDefaults fills zero fields with blksnap's defaults.
func (o *Options) EnsureDefaults() *Options {
	if o.ChunkMinimumShift == 0 {
		o.ChunkMinimumShift = DefaultChunkMinimumShift
	}
	if o.ChunkMaximumShift == 0 {
		o.ChunkMaximumShift = DefaultChunkMaximumShift
	}
	if o.ChunkMaximumCount == 0 {
		o.ChunkMaximumCount = DefaultChunkMaximumCount
	}
	if o.ChunkMaximumInQueue == 0 {
		o.ChunkMaximumInQueue = DefaultChunkMaximumInQueue
	}
	if o.FreeDiffBufferPoolSize == 0 {
		o.FreeDiffBufferPoolSize = DefaultFreeDiffBufferPoolSize
	}
	if o.DiffStorageMinimum == 0 {
		o.DiffStorageMinimum = DefaultDiffStorageMinimum
	}
	if o.StoreWorkers == 0 {
		o.StoreWorkers = DefaultStoreWorkers
	}
	if o.EventQueueSize == 0 {
		o.EventQueueSize = DefaultEventQueueSize
	}
	if o.BackupNice == 0 {
		o.BackupNice = DefaultBackupNice
	}
	return o
}

// Validate checks every option; call it after EnsureDefaults. It reports
// every problem at once (on one line, each reachable with errors.Is), each wrapping ErrInvalid and naming
// the option by its blksnap name.
func (o *Options) Validate() error {
	page := uint(12)
	if ps := os.Getpagesize(); ps > 0 {
		for 1<<page < ps {
			page++
		}
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if o.ChunkMinimumShift < page || o.ChunkMinimumShift > 30 {
		bad("chunk_minimum_shift %d: want %d..30", o.ChunkMinimumShift, page)
	}
	if o.ChunkMaximumShift < o.ChunkMinimumShift || o.ChunkMaximumShift > 30 {
		bad("chunk_maximum_shift %d: want chunk_minimum_shift (%d)..30", o.ChunkMaximumShift, o.ChunkMinimumShift)
	}
	if o.ChunkMaximumCount < 1 {
		bad("chunk_maximum_count must be positive")
	}
	if o.ChunkMaximumInQueue < 1 || o.ChunkMaximumInQueue > 4096 {
		bad("chunk_maximum_in_queue %d: want 1..4096", o.ChunkMaximumInQueue)
	}
	if o.FreeDiffBufferPoolSize < 0 || o.FreeDiffBufferPoolSize > 1<<16 {
		bad("free_diff_buffer_pool_size %d: want 0..65536", o.FreeDiffBufferPoolSize)
	}
	if o.DiffStorageMinimum < 1<<o.ChunkMaximumShift && o.DiffStorageMinimum < 1<<20 || o.DiffStorageMinimum%4096 != 0 {
		bad("diff_storage_minimum %d: want a multiple of 4096, at least 1 MiB", o.DiffStorageMinimum)
	}
	if o.StoreWorkers < 1 || o.StoreWorkers > 64 {
		bad("store_workers %d: want 1..64", o.StoreWorkers)
	}
	if o.BackupNice < 1 || o.BackupNice > maxBackupNice {
		bad("backup_nice %d: want 1..%d", o.BackupNice, maxBackupNice)
	}
	if o.ImageReadBytesPerSecond < 0 || o.ImageReadBytesPerSecond > 1<<40 {
		bad("image_read_bytes_per_second %d: want 0 (no throttle)..1TiB", o.ImageReadBytesPerSecond)
	}
	if o.EventQueueSize < 1 || o.EventQueueSize > 1<<20 {
		bad("event queue size %d: want 1..1048576", o.EventQueueSize)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return problems(errs)
}

// problems is several option problems as one error on one line (a CLI
// prints an error as one line), each still reachable with errors.Is.
type problems []error

func (p problems) Error() string {
	var b strings.Builder
	for i, e := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (p problems) Unwrap() []error { return p }

// ChunkShift computes a device's chunk size as blksnap does: start from the
// page size, raise it to the device's minimum I/O size, to at least
// 1<<ChunkMinimumShift, double while the chunk count exceeds
// ChunkMaximumCount, and refuse a result above 1<<ChunkMaximumShift.
func (o *Options) ChunkShift(deviceBytes int64, minIOBytes int) (uint, error) {
	shift := uint(12)
	for 1<<shift < os.Getpagesize() {
		shift++
	}
	for 1<<shift < minIOBytes {
		shift++
	}
	if shift < o.ChunkMinimumShift {
		shift = o.ChunkMinimumShift
	}
	for uint64((deviceBytes+(1<<shift)-1)>>shift) > o.ChunkMaximumCount {
		shift++
	}
	if shift > o.ChunkMaximumShift {
		return 0, fmt.Errorf("%w: a device of %d bytes needs chunks of 1<<%d bytes, above chunk_maximum_shift %d (raise it or chunk_maximum_count)",
			ErrInvalid, deviceBytes, shift, o.ChunkMaximumShift)
	}
	return shift, nil
}
