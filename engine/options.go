package engine

import (
	"fmt"
	"os"
)

// Options are the engine's parameters, named and defaulted as blksnap's.
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
	return o
}

// Validate checks every option; call it after EnsureDefaults.
func (o *Options) Validate() error {
	page := uint(12)
	if ps := os.Getpagesize(); ps > 0 {
		for 1<<page < ps {
			page++
		}
	}
	switch {
	case o.ChunkMinimumShift < page || o.ChunkMinimumShift > 30:
		return fmt.Errorf("%w: chunk_minimum_shift %d: want %d..30", ErrInvalid, o.ChunkMinimumShift, page)
	case o.ChunkMaximumShift < o.ChunkMinimumShift || o.ChunkMaximumShift > 30:
		return fmt.Errorf("%w: chunk_maximum_shift %d: want chunk_minimum_shift (%d)..30", ErrInvalid, o.ChunkMaximumShift, o.ChunkMinimumShift)
	case o.ChunkMaximumCount < 1:
		return fmt.Errorf("%w: chunk_maximum_count must be positive", ErrInvalid)
	case o.ChunkMaximumInQueue < 1 || o.ChunkMaximumInQueue > 4096:
		return fmt.Errorf("%w: chunk_maximum_in_queue %d: want 1..4096", ErrInvalid, o.ChunkMaximumInQueue)
	case o.FreeDiffBufferPoolSize < 0 || o.FreeDiffBufferPoolSize > 1<<16:
		return fmt.Errorf("%w: free_diff_buffer_pool_size %d: want 0..65536", ErrInvalid, o.FreeDiffBufferPoolSize)
	case o.DiffStorageMinimum < 1<<o.ChunkMaximumShift && o.DiffStorageMinimum < 1<<20 || o.DiffStorageMinimum%4096 != 0:
		return fmt.Errorf("%w: diff_storage_minimum %d: want a multiple of 4096, at least 1 MiB", ErrInvalid, o.DiffStorageMinimum)
	case o.StoreWorkers < 1 || o.StoreWorkers > 64:
		return fmt.Errorf("%w: store_workers %d: want 1..64", ErrInvalid, o.StoreWorkers)
	case o.EventQueueSize < 1 || o.EventQueueSize > 1<<20:
		return fmt.Errorf("%w: event queue size %d: want 1..1048576", ErrInvalid, o.EventQueueSize)
	}
	return nil
}

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
