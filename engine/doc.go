// Package engine is snapring's copy-on-write snapshot engine: what blksnap's
// chunk, diff_area, diff_buffer and diff_storage do in the kernel, in user
// space, with every data I/O through package uring.
//
// # Model
//
// An original Device (a regular file or a block device) is split into
// chunks; the chunk size follows blksnap (Options.ChunkShift). A Snapshot
// covers one or more devices and one difference storage shared by all of
// them (StorageConfig: a file, a directory for an O_TMPFILE, or a block
// device; blksnap v1–v5's AppendStorage adds more while it lives).
//
// Take switches copy-on-write on for all devices at once, as a barrier over
// in-flight origin writes. After it, the first write to a chunk is held
// while the whole chunk is read from the original into a buffer (one
// io_uring read); the chunk is then "in memory", the write proceeds, and a
// store worker writes the buffer to the difference storage ("stored").
// Chunk states: new → loading → in memory ↔ storing → stored, or failed
// (diagram below).
// At most Options.ChunkMaximumInQueue chunks per device are in memory;
// beyond that, writers wait for the store workers (bounded memory).
//
// Image reads come from the buffer (in memory), the difference storage
// (stored) or the original (never changed; such a read holds off the
// chunk's copy-on-write until it completes, so the original cannot change
// under it). Image writes land in the chunk's copy, loading it first.
//
// When the difference storage cannot supply a region, the chunk fails, the
// device's image is marked corrupted (ErrCorrupted on every image read of
// it: never wrong data), EventOverflow and EventCorrupted are raised, and
// the original keeps working without copies. EventLowFreeSpace is raised
// when what is left drops under half a portion (Options.DiffStorageMinimum);
// a file storage then grows by a portion, up to its limit (EventNoSpace).
//
// # API
//
// The core is asynchronous and completion based: a Queue, owned by one
// goroutine, runs Requests on its own io_uring. Submit starts a request;
// Poll submits, waits and returns completed requests. A request that must
// wait for a chunk another queue is copying is parked on that chunk and
// woken through an eventfd kept in its queue's ring. Request buffers must
// be uring.Arena memory; offsets and lengths are multiples of 512.
//
// Over it, Device and Image implement io.ReaderAt and io.WriterAt (the
// synchronous convenience, through pooled queues and pinned bounce
// buffers).
//
// # Lifecycles
//
// Take (bounded by DefaultTakeTimeout) and TakeContext wait for the origin
// writes in flight; when the wait ends first, the barrier is lifted and the
// snapshot stays untaken. Destroy ends the snapshot; Done is closed once
// the last request holding it has completed and its storage is closed,
// and Events is closed with it. Queue.Close never abandons a request: it
// completes what is in the kernel and fails what waits with
// ErrQueueClosed, so that Done fires.
//
// # Concurrency
//
// The choice that sets performance (shared/DESIGN.md, option 1): every
// request runs on the ring of the goroutine that owns its Queue. In process,
// each benchmark worker owns a Queue with its own ring; behind ublk, each
// ublk queue goroutine hosts a Queue (NewHostedQueue) on the same ring that
// carries its ublk commands, so a block request, its chunk read and its
// write are SQEs on one ring with no goroutine handoff. Chunks are shared:
// a request that finds a chunk being loaded by another queue parks on the
// chunk's wait list (per-chunk lock, hashed wait buckets) and is handed
// back to its own queue when the load completes, through an eventfd read
// kept pending in that queue's ring (or the host's wake-up). Store workers
// own rings of their own. Nothing allocates per request: requests are the
// caller's, slots and lists are preallocated, and buffers come from a
// per-device pinned arena of ChunkMaximumInQueue chunk buffers.
//
// # Request states
//
// A request's state (states.go, reqState) changes only through
// Request.to, on its queue's goroutine; builds with the invariants tag or
// the race detector panic on an edge not drawn here:
//
//	idle --Submit--> active --(its own origin I/O queued)--> issued --(CQE)--> done
//	                 active --(chunk loading, readers, no buffer, Take)--> parked --(woken)--> active
//	                 active --(finished or failed)--> done
//	                 parked --(queue closed)--> done
//	                 issued --(write-zeroes refused: EOPNOTSUPP)--> punching --(CQE)--> done
//	done --(Poll or TakeDone returns it)--> idle
//
// Beside its state a live request holds at most two things (reqHolds),
// given back when it finishes: its count in Device.inflight (an origin
// write; Take waits for it) and a reference on the snapshot (Done waits
// for it). An image request, or a copy-on-write write still walking its
// chunks, can finish when it is settled: active, nothing pending, and
// every chunk walked or an error.
//
// # Chunk states
//
// A chunk's state (states.go, chunkState) changes only through chunk.to,
// under the chunk's lock:
//
//	new --(copy-on-write, image write)--> loading --(read OK)--> in memory
//	new --(image write of the whole chunk)--> in memory
//	loading --(read of the original failed: the write fails, the original is untouched)--> new
//	loading --(read of the difference storage failed)--> failed
//	in memory --(a store worker takes it)--> storing --(written)--> stored
//	storing --(an image write changed it meanwhile)--> in memory
//	storing --(write failed, no region)--> failed
//	stored --(image write: load it back)--> loading
//
// Failed is final: the image is corrupted first (ErrCorrupted), so that no
// reader sees a failed chunk before the corruption.
//
// # Source files
//
// request.go (Request, Op, validation), userdata.go (the SQE user_data
// codec, uring's shared layout), queue.go (Queue lifecycle and Poll),
// close.go (Close, which never abandons a request), wake.go (parked
// requests handed back), inject.go (the fault seam), cow.go (the copy-on-write path of origin writes), image.go
// (the image path), prep.go (SQE preparation), complete.go (completion
// dispatch), states.go (the two state machines), chunk.go (chunks, buffers,
// wait lists), storage.go (the difference storage), snapshot.go (Snapshot,
// Take, Destroy, the store workers).
//
// # Errors
//
// Bad input is refused with an error wrapping ErrInvalid before anything
// is written. A failed read of the original during copy-on-write fails the
// write and leaves the original untouched. A failed write to the difference
// storage fails the chunk, marks the image corrupted and raises
// EventCorrupted. A NoWait origin write that would have to copy fails with
// ErrWouldBlock (errors.Is(err, unix.EAGAIN)). I/O on a destroyed snapshot's
// image fails with ErrClosed.
//
// # Fault injection
//
// Every engine I/O passes one seam (inject.go) before it is issued: origin
// reads, writes, discards, write-zeroes and flushes, chunk loads and
// stores, image reads, and the difference storage's growth and appended
// files' allocation, each described as a FaultIO. Options.Inject takes an
// Injector, composed from FailWith and ShortIO with If (OnOps, OnTarget,
// OnDevice, InRange, AllOf), OnNth, Times, Randomly (seeded) and AnyOf; the
// injected result replaces the I/O (on a queue's ring, a NOP whose result
// the queue substitutes: no user_data bits are spent on it). Options.Faults
// takes a FaultPlan, the older table of read and write faults, consulted
// first. Tests use both to prove the corrupted and overflow semantics.
package engine
