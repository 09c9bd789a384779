// Package uring is snapring's thin io_uring binding on golang.org/x/sys/unix,
// with no cgo. All of snapring's unsafe code for io_uring lives here.
//
// # Model
//
// A Ring is set up with New (SQ/CQ sizes and setup flags: SQPOLL,
// SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN, SQE128, CQE32). The owner takes
// SQEs with NextSQE, fills each with one Prep method (NOP, READ, WRITE,
// READV, WRITEV, READ_FIXED, WRITE_FIXED, FSYNC, FALLOCATE, URING_CMD), sets
// user data and flags (IO_LINK, FIXED_FILE, ASYNC), and calls Submit,
// SubmitAndWait(n) or WaitTimeout(n, d). Completions are copied out in
// batches with Drain. A full SQ (NextSQE submits to make room), EINTR (the
// wait is resumed), and a full or overflowed CQ (completions are moved to an
// internal backlog, or flushed from the kernel's overflow list, so that none
// is lost) are all handled inside Submit's single call site of io_uring_enter.
//
// A negative completion result becomes an error naming the operation with
// ResultError(op, res), e.g. "uring: read: bad file descriptor".
//
// # Memory rule
//
// The kernel reads and writes an operation's buffers after Prep returns, until
// its completion is drained. Such memory must not move and must not be freed
// in between. Every buffer and iovec array given to a Prep method must
// therefore come from an Arena (anonymous mmap'd memory outside the Go heap);
// Prep panics otherwise. Command payloads (CmdArea) and registration arrays are
// copied by the kernel during the call and need no pinning. Close an Arena
// only after the rings that used it are closed or idle.
//
// # Concurrency rule
//
// A Ring has one owner goroutine at a time. Its methods are not safe for
// concurrent use, and the ring checks this: two goroutines inside Submit or
// Drain at once panic. The intended pattern is one ring per goroutine (for
// example one per ublk queue, one per store worker); rings are cheap.
//
// # Stalled io-wq work
//
// Buffered writes to regular files run in the submitting thread's io-wq,
// serialized per inode through a hash that the io-wq of every thread first
// set up by the same ring shares. On 6.18 such a write sometimes waited
// forever once the hash was free, nothing having woken a worker for it. A
// wait that sees no completion for 50 ms therefore queues an asynchronous
// NOP, which wakes or creates a worker of the calling thread's io-wq, and
// keeps doing so at doubling intervals up to 2 s while nothing completes;
// the NOP's completion is dropped and Kicks counts the kicks. The NOP
// reaches the caller's thread only: a ring whose writes may go to io-wq
// should be driven from one thread (runtime.LockOSThread).
//
// # Availability
//
// When io_uring cannot be used New returns an error wrapping ErrUnavailable
// that says why: ENOSYS (kernel without CONFIG_IO_URING), the
// kernel.io_uring_disabled sysctl, or EPERM from a seccomp filter. Missing
// opcodes are found with Ring.Probe and Probe.Require, whose error names the
// opcode and the kernel release that added it and wraps ErrNotSupported.
//
// # Hot path
//
// NextSQE, the Prep methods, Submit, SubmitAndWait and Drain do not allocate.
package uring
