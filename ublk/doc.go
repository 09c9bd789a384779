// Package ublk exposes a Target as a Linux block device through ublk
// (userspace block device, CONFIG_BLK_DEV_UBLK, Linux 6.0+), driven entirely
// by io_uring (package uring). All of snapring's unsafe code for ublk lives
// here; kernel structs are declared once, in kernel.go.
//
// # Protocol
//
// Control plane, on /dev/ublk-control with an SQE128 ring (the 32-byte
// struct ublksrv_ctrl_cmd does not fit a plain SQE's 16-byte command area);
// the driver runs these commands on io_uring worker threads, so the buffers
// they name live in pinned memory:
//
//  1. GET_FEATURES: the UBLK_F_* mask (6.5+; older drivers refuse it and
//     get no optional features). With UBLK_F_CMD_IOCTL_ENCODE every
//     command is sent ioctl-encoded (_IOR/_IOWR('u', nr, struct)), else
//     with its legacy number.
//  2. ADD_DEV with dev_id -1: the driver picks N, creates /dev/ublkcN and
//     returns the negotiated device info (queues capped at the CPU count,
//     flags such as UBLK_F_USER_COPY).
//  3. SET_PARAMS: block sizes, max_sectors, capacity, discard limits.
//  4. Data plane starts (below): every queue issues FETCH_REQ for every tag.
//  5. START_DEV with the server's pid: waits until all tags are fetched,
//     then adds /dev/ublkbN (whose partition scan the queues already serve).
//  6. On Close, STOP_DEV: removes /dev/ublkbN once the requests in flight
//     are served, then completes every pending fetch with
//     UBLK_IO_RES_ABORT; the queues end; /dev/ublkcN is closed; DEL_DEV
//     removes the device. The driver frees it only when nothing holds it,
//     including a process that still has /dev/ublkbN open, so where it has
//     DEL_DEV_ASYNC (6.9+) Close uses that and waits a bounded time
//     (ErrBusy after), instead of DEL_DEV's unbounded wait.
//
// Data plane, per queue: a goroutine locked to its OS thread (the driver
// accepts a queue's commands from one task only) with its own ring. It maps
// the queue's read-only array of struct ublksrv_io_desc from /dev/ublkcN,
// issues FETCH_REQ for every tag, and loops: a completed fetch means the
// tag's descriptor holds a request (op, sector, length); the target serves
// it; COMMIT_AND_FETCH_REQ returns the result and waits for the tag's next
// request. Data moves one of three ways. With UBLK_F_USER_COPY the queue
// reads a WRITE's data from, and writes a READ's data to, /dev/ublkcN at an
// offset encoding (queue, tag), as operations on its ring. Without it, each
// command carries the tag's buffer address and the driver copies. Either
// way the target sees the data in IO.Buf, pinned memory from a uring.Arena.
// With zero copy (UBLK_F_AUTO_BUF_REG, Linux 6.16; ZeroCopyMode) nothing is
// copied: the queue ring has a sparse buffer table of one slot per tag, each
// fetch command names its tag's slot in the SQE's addr, and the driver
// installs the request's own pages there before delivering it and removes
// them on commit. The target (a ZeroCopier: Passthrough, OriginTarget) sees
// IO.Fixed and reads or writes the backing straight to or from those pages
// with READ_FIXED/WRITE_FIXED on the same ring. A read of the device is then
// one copy (page cache to the reader's pages), as on the file itself, where
// copying made it two. An image copies: its data comes from chunk copies in
// memory and the difference storage as well as the original.
// A ring closed with fetches pending (the server failing) makes the driver
// abort the queue and stop the device.
//
// # Targets
//
// A Target (target.go) has three required methods, all called on the
// queue's goroutine: Init per queue, Handle for a READ or WRITE, and
// Completion for the target's own io_uring operations. Optional interfaces
// add FLUSH (Flusher), DISCARD (Discarder), WRITE_ZEROES (ZeroWriter),
// waking from other goroutines (Waker), per-queue cleanup (Deiniter) and the
// size (Sizer); the device advertises only what the target implements.
//
// Backend I/O shares the queue's ring: Queue.TargetSQE returns an SQE whose
// user_data packs the tag, a target operation code and 32 bits of target
// data with the "target I/O" bit (as ublksrv does), so its completion comes
// back to Target.Completion on the same goroutine with no handoff. The
// target ends a request with Queue.Complete(tag, res), synchronously or from
// a later callback; multi-step requests (read a chunk, then write) simply
// submit the next step from Completion. A request that must wait for another
// goroutine is parked by the target; that goroutine calls Queue.Wake (safe
// from anywhere; it writes an eventfd whose read is always pending on the
// ring), and the queue calls the target's Wake method on its goroutine.
//
// Passthrough is the baseline target: requests map one to one onto a file
// or block device. OriginTarget and ImageTarget serve an engine device and
// a snapshot image; their optional Observer (SetObserver) sees each request
// they complete, with its engine result and time, for metrics.
//
// Serving a request allocates nothing: descriptors, IO values, buffers and
// the CQE batch are set up once per queue.
package ublk
