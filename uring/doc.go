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
// An operation that cannot complete without blocking (a buffered write to a
// regular file, any IOSQE_ASYNC operation) runs in io-wq: a pool of kernel
// workers per submitting thread (tctx->io_wq), created by the first ring
// the thread uses and then shared by all its rings. Its bounded workers
// are limited to min(SQ entries of that first ring, 4 × CPUs), for life.
// Buffered regular-file work is hashed by inode (io_prep_async_work calls
// io_wq_hash_work) and serialized through a bit map (ctx->hash_map) that
// the io-wq of every thread first set up by the same ring shares: a worker
// that finds the bit taken marks its queue stalled (IO_ACCT_STALLED_BIT,
// io_get_next_work), waits on the map (io_wait_on_hash) and goes idle;
// the chain's end clears the bit and io_wq_hash_wake wakes a free worker.
//
// The kernel's source (io_uring/io-wq.c) leaves queued work without a
// worker in these windows. (1) io_wq_enqueue creates no worker when
// io_acct_activate_free_worker (io_wq_activate_free_worker on 6.12) "woke"
// one from the free list, and that returns true after wake_up_process on
// any listed worker, also one that has already decided to exit
// (io_wq_worker: idle for WORKER_IDLE_TIMEOUT, 5 s, and not the last
// worker); io_worker_exit leaves the list only after its references are
// gone, and its io_wq_dec_running cannot queue a replacement then
// (io_queue_worker_create fails on the dead reference). The work waits for
// another worker's 5 s idle timeout. On 6.18.11 and later a thread whose
// last ring went away marks its io-wq exit-on-idle (io_uring_del_tctx_node
// calls io_wq_set_exit_on_idle), every worker then exits that way, and work
// queued by the thread's next ring in that window has no worker until more
// is queued. (2) io_wq_hash_wake clears the stalled bit but only wakes a
// worker on the free list: a worker between its last look at the queue and
// __io_worker_idle sleeps its 5 s timeout out. (3) Work punted without
// IOSQE_ASYNC gets a new worker from io_wq_enqueue only while no worker of
// its class runs (nr_running). The VM's Debian 6.12.118 has a fix for (1)
// (io_worker_retire: a worker that decided to exit looks at the queue once
// more and stays if work came).
//
// The reproducer is TestIOWQStall (iowq_stall_test.go): threads writing 4
// KiB blocks of one file on tmpfs (/dev/shm) and on the disk file system
// (/var/tmp) through io-wq, each on its own ring, on rings closed and made
// anew, on rings whose threads first used one shared ring, and on one ring
// handed round the threads; every wait is bounded (1 s is a stall, 10 s is
// stuck, then one kick by hand). With -iowq.seconds (or
// SNAPRING_IOWQ_SECONDS) of 30 or more it adds bursts that start around
// the 5 s idle timeout, with and without one bounded worker per thread
// (RegisterIOWQMaxWorkers(1, 0)):
//
//	SNAPRING_IOWQ_SECONDS=120 go test ./uring -run 'TestIOWQStall/.*/idle' -v -timeout 60m
//	make vm-test VM_TEST_PKGS=./uring/... VM_GO_TEST_FLAGS='-test.run=TestIOWQStall -iowq.seconds=30 -test.timeout=20m'
//
// Without the kick, on this project's 2-CPU build host (6.18.44, loaded
// by other work) no wait was stuck in about 35 minutes of runs of every
// case (over 10^8 writes; 60 s and 40 s per case on tmpfs and ext4, 120 s
// of the idle case): one wait saw nothing complete for 1.7 s (tmpfs, the
// idle case: window (1) or (2), ended by a worker's idle timeout), none
// other for 1 s. In the VM (6.12.118 under TCG, tmpfs, 30 s per case) no
// wait reached 1 s without the kick; with it one did (1.09 s, the VM's own
// slowness), and its waits kicked 4 to 120 times per case with nothing
// stalled: on a slow machine a marked operation taking over 50 ms kicks,
// so a kick count alone does not show a stall. So the CI hangs of 9c3d69a
// did not recur here, and the kernel windows above bound a wait by the 5 s
// idle timeout except on 6.18.11+ exit-on-idle. One more finding: after
// RegisterIOWQMaxWorkers(1, 0) the VM's 6.12 runs one bounded worker per
// thread, but 6.18.44 here runs up to 8: the bounded limit is not enforced
// on every path (as with upstream 88e6c42e40de, "add check free worker
// before create new worker", whose create_worker_cb created workers past
// max_workers without counting them in nr_workers until its fix, "fix
// max_workers breakage and nr_workers underflow"). Such uncounted workers
// can leave nr_workers wrong (that fix's words: it could underflow); once
// it is at or above max_workers io_wq_create_worker refuses every new
// worker, and once the idle-exit test (nr_workers > 1) holds for the last
// worker too, queued work has no worker at all: a likely cause of CI's
// queue waiting with none, not reproduced here. A limit of
// one worker is therefore no mitigation on that kernel, and O_DIRECT (the
// idle case with O_DIRECT on ext4: no stall) keeps writes out of io-wq
// altogether where the backing allows it.
//
// The workaround is scoped to what it is for. The caller marks the
// operations that may wait in hashed io-wq work with Ring.MarkIOWQ
// (buffered reads and writes of regular files); while one of them is in
// flight, a wait that sees no completion for 50 ms queues an asynchronous
// NOP, which wakes a free worker or creates one (IOSQE_ASYNC work may,
// below max_workers; with nr_workers miscounted as above it cannot), and
// that worker also runs what was queued before; again every 50 ms while
// nothing completes, never at longer intervals. The NOP's completion is dropped. A ring
// with nothing marked in flight (an idle ublk queue, a doorbell read)
// never kicks. Ring.Kicks counts a ring's kicks and Kicks all of them. The
// NOP reaches the calling thread's io-wq only, so a ring that marks
// operations must be driven from one thread (runtime.LockOSThread).
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
