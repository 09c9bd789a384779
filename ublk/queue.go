package ublk

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/internal/ioflusher"
	"github.com/snapring/snapring/uring"
)

// tagState is where a tag's request is in the queue's state machine:
//
//	fetching --(CQE res OK)--> [copyIn -->] target [--> copyOut] --(commit)--> fetching
//	fetching --(CQE res ABORT or error)--> dead
type tagState uint8

const (
	tagFetching tagState = iota // FETCH_REQ or COMMIT_AND_FETCH_REQ pending in the driver
	tagCopyIn                   // USER_COPY: reading a WRITE's data from /dev/ublkcN
	tagTarget                   // owned by the target until Queue.Complete
	tagCopyOut                  // USER_COPY: writing a READ's data to /dev/ublkcN
	tagDead                     // aborted by the driver; not fetched again
)

// user_data layout of every SQE on a queue ring, as in ublksrv: uring's
// shared layout (uring.PackUserData: the tag in bits 0-15, an operation in
// bits 16-23, 32 bits of target data in bits 24-55), and bit 63 set for
// target I/O (whose operation codes are the target's own).
const (
	udTarget = 1 << 63

	udCmd     = 1 // FETCH_REQ / COMMIT_AND_FETCH_REQ
	udCopyIn  = 2 // USER_COPY pread of a WRITE's data
	udCopyOut = 3 // USER_COPY pwrite of a READ's data
	udEvent   = 4 // the eventfd read behind Queue.Wake
)

func packUserData(tag uint16, op uint8, data uint32) uint64 {
	return uring.PackUserData(tag, op, data)
}

func unpackUserData(ud uint64) (tag uint16, op uint8, data uint32) {
	return uring.UnpackUserData(ud)
}

// drainBatch is how many CQEs the loop copies out per Drain.
const drainBatch = 64

// queueConfig is what a queue needs from its device.
type queueConfig struct {
	id         uint16
	depth      int
	maxIOBytes int
	userCopy   bool
	zeroCopy   bool // UBLK_F_AUTO_BUF_REG: no data buffers; IO.Fixed
	encode     bool
	charFd     int
	target     Target
}

// Queue is one hardware queue of a device: a goroutine locked to its OS
// thread (the driver insists that one task issues all of a queue's
// commands), with its own io_uring ring carrying the ublk commands, the
// data copies and the target's backend I/O.
//
// Targets use a Queue only from inside their methods, on the queue's
// goroutine, except Wake, which any goroutine may call.
type Queue struct {
	cfg       queueConfig
	flusher   Flusher
	discarder Discarder
	zeroer    ZeroWriter
	waker     Waker

	ring    *uring.Ring
	arena   *uring.Arena // depth buffers of maxIOBytes (none under zero copy), then a page for the eventfd counter
	descMem []byte       // the driver's read-only descriptor array
	descs   []ioDesc
	ios     []IO
	state   []tagState
	cqes    []uring.CQE
	fetchOp uint32
	commit  uint32

	efdMu   sync.Mutex // guards efd against Wake racing with teardown
	efd     int
	wakeBuf [8]byte
	evBuf   []byte

	targetData any
	initDone   bool

	liveTags       int // tags not dead
	busyTags       int // tags in copyIn, target or copyOut
	inflightTarget int // target SQEs without a CQE yet
	inflightCopies int // USER_COPY SQEs without a CQE yet
	eventArmed     bool

	tid      int // the queue thread's id, for tests
	stopping atomic.Bool
	fatal    bool
	err      error
	done     chan struct{}
}

func newQueue(cfg queueConfig) *Queue {
	q := &Queue{cfg: cfg, efd: -1, done: make(chan struct{})}
	q.flusher, _ = cfg.target.(Flusher)
	q.discarder, _ = cfg.target.(Discarder)
	q.zeroer, _ = cfg.target.(ZeroWriter)
	q.waker, _ = cfg.target.(Waker)
	q.fetchOp = ioOpcode(ioFetchReq, cfg.encode)
	q.commit = ioOpcode(ioCommitAndFetchReq, cfg.encode)
	return q
}

// ID is the queue's index (0-based).
func (q *Queue) ID() int { return int(q.cfg.id) }

// Depth is the number of tags (concurrent requests) of the queue.
func (q *Queue) Depth() int { return q.cfg.depth }

// Ring is the queue's io_uring ring, for registering files or buffers in
// Target.Init. Submit backend I/O with TargetSQE; never submit, wait on or
// drain the ring directly: the queue loop does that.
func (q *Queue) Ring() *uring.Ring { return q.ring }

// SetTargetData stores the target's per-queue state; TargetData returns it.
func (q *Queue) SetTargetData(v any) { q.targetData = v }

// TargetData returns what SetTargetData stored.
func (q *Queue) TargetData() any { return q.targetData }

// IO returns tag's request.
func (q *Queue) IO(tag uint16) *IO { return &q.ios[tag] }

// Buffer returns tag's whole pinned buffer (MaxIOBytes), usable by the target
// as scratch memory for io_uring while it owns the tag; nil under zero copy,
// where the queue has no data buffers.
func (q *Queue) Buffer(tag uint16) []byte {
	if q.cfg.zeroCopy {
		return nil
	}
	n := q.cfg.maxIOBytes
	return q.arena.Slice(int(tag)*n, n)
}

// TargetSQE returns an SQE for the target's backend I/O, tagged so that its
// completion comes back to Target.Completion with tag, op and data. The
// target fills it with one Prep method (and flags, e.g. uring.SQEIOLink);
// the queue loop submits it. Buffers must be Arena memory (IO.Buf is).
func (q *Queue) TargetSQE(tag uint16, op uint8, data uint32) (*uring.SQE, error) {
	s, err := q.ring.NextSQE()
	if err != nil {
		return nil, err
	}
	s.SetUserData(udTarget | packUserData(tag, op, data))
	q.inflightTarget++
	return s, nil
}

// ReserveTargetSQEs makes sure the target's next n TargetSQE calls do not
// submit in between, so that SQEs linked with uring.SQEIOLink reach the
// kernel in one submission (uring.Ring.Reserve).
func (q *Queue) ReserveTargetSQEs(n int) error { return q.ring.Reserve(uint32(n)) }

// Complete ends the target's handling of tag with res (bytes done, or
// -errno) and fetches the tag's next request. For a READ under USER_COPY the
// data is first copied to the driver. Completing a tag the target does not
// own is a programming error and panics.
func (q *Queue) Complete(tag uint16, res int32) {
	if int(tag) >= q.cfg.depth || q.state[tag] != tagTarget {
		panic(fmt.Sprintf("ublk: Complete(tag %d) on queue %d: the target does not own this tag", tag, q.cfg.id))
	}
	io := &q.ios[tag]
	if q.cfg.userCopy && io.Op == OpRead && res > 0 {
		n := min(int(res), int(io.Length))
		s, err := q.ring.NextSQE()
		if err != nil {
			q.setFatal(err)
			return
		}
		s.PrepWrite(int32(q.cfg.charFd), io.Buf[:n], userCopyOffset(q.cfg.id, tag))
		s.SetUserData(packUserData(tag, udCopyOut, 0))
		q.state[tag] = tagCopyOut
		q.inflightCopies++
		return
	}
	q.commitTag(tag, res)
}

// Wake makes the queue goroutine call the target's Wake method soon. Safe
// from any goroutine; calls before the target's Wake runs are coalesced.
func (q *Queue) Wake() {
	q.efdMu.Lock()
	defer q.efdMu.Unlock()
	if q.efd < 0 {
		return
	}
	q.wakeBuf[0] = 1
	unix.Write(q.efd, q.wakeBuf[:]) //nolint:errcheck // cannot fail short of a counter overflow
}

// stop asks the queue loop to end once no request is in progress (after
// STOP_DEV, or when Create fails); pending fetches are then cancelled when the
// ring closes.
func (q *Queue) stop() {
	q.stopping.Store(true)
	q.Wake()
}

func (q *Queue) run(ready chan<- error) {
	defer close(q.done)
	// The goroutine stays locked until it exits, which ends its thread: the
	// driver keeps a reference to that task (the queue's "daemon"), and no
	// other goroutine should run on it afterwards.
	runtime.LockOSThread()
	q.tid = unix.Gettid()
	// A block-device server must not recurse into I/O when it allocates
	// (ublksrv does the same); without CAP_SYS_RESOURCE it serves anyway.
	ioflusher.Set() //nolint:errcheck // kept in ioflusher.FirstError; not fatal
	if err := q.setup(); err != nil {
		q.teardown()
		ready <- fmt.Errorf("ublk: queue %d: %w", q.cfg.id, err)
		return
	}
	ready <- nil
	if err := q.loop(); err != nil {
		q.setErr(err)
	}
	q.teardown()
}

func (q *Queue) setup() error {
	depth := q.cfg.depth
	entries := uint32(1)
	for entries < uint32(2*depth+2) {
		entries <<= 1
	}
	var err error
	q.ring, err = uring.New(uring.Options{Entries: entries, SingleIssuer: true, DeferTaskrun: true})
	if err != nil {
		return err
	}
	page := unix.Getpagesize()
	bufBytes := depth * q.cfg.maxIOBytes
	if q.cfg.zeroCopy {
		// The driver installs each request's pages in slot tag of this
		// table before delivering it (the fetch command names the slot).
		if err := q.ring.RegisterSparseBuffers(uint32(depth)); err != nil {
			return err
		}
		bufBytes = 0
	}
	q.arena, err = uring.NewArena(bufBytes + page)
	if err != nil {
		return err
	}
	q.evBuf = q.arena.Slice(bufBytes, 8)
	q.descMem, err = unix.Mmap(q.cfg.charFd, descArrayOffset(int(q.cfg.id), page), descArrayBytes(depth, page), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap I/O descriptors: %w", err)
	}
	q.descs = unsafe.Slice((*ioDesc)(unsafe.Pointer(&q.descMem[0])), depth)
	q.ios = make([]IO, depth)
	q.state = make([]tagState, depth)
	q.cqes = make([]uring.CQE, drainBatch)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	q.efdMu.Lock()
	q.efd = efd
	q.efdMu.Unlock()

	if err := q.cfg.target.Init(q); err != nil {
		return fmt.Errorf("target init: %w", err)
	}
	q.initDone = true
	q.liveTags = depth
	for tag := range depth {
		q.prepCmd(uint16(tag), q.fetchOp, 0)
	}
	q.armEvent()
	if q.fatal {
		return q.err
	}
	if _, err := q.ring.Submit(); err != nil {
		return err
	}
	// The driver handles FETCH_REQ inline: a refused fetch has completed by
	// now. Report it here, or START_DEV would wait for that tag forever.
	q.drain()
	return q.err
}

func (q *Queue) loop() error {
	for !q.finished() {
		if q.fatal {
			return q.err
		}
		if _, err := q.ring.SubmitAndWait(1); err != nil {
			return err
		}
		q.drain()
	}
	return nil
}

// finished reports whether the loop may end: every tag aborted by the
// driver, or a stop was asked for and no request is in progress; and in
// both cases no SQE that names our memory is still in flight.
func (q *Queue) finished() bool {
	if q.inflightTarget > 0 || q.inflightCopies > 0 {
		return false
	}
	return q.liveTags == 0 || (q.stopping.Load() && q.busyTags == 0)
}

func (q *Queue) drain() {
	for {
		n := q.ring.Drain(q.cqes)
		for i := range n {
			q.dispatch(&q.cqes[i])
		}
		if n < len(q.cqes) {
			return
		}
	}
}

func (q *Queue) dispatch(c *uring.CQE) {
	tag, op, data := unpackUserData(c.UserData)
	if c.UserData&udTarget != 0 {
		q.inflightTarget--
		q.cfg.target.Completion(q, TargetCompletion{Tag: tag, Op: op, Data: data, Res: c.Res, Flags: c.Flags})
		return
	}
	switch op {
	case udCmd:
		q.onCmd(tag, c.Res)
	case udCopyIn:
		q.inflightCopies--
		q.onCopyIn(tag, c.Res)
	case udCopyOut:
		q.inflightCopies--
		q.onCopyOut(tag, c.Res)
	case udEvent:
		q.eventArmed = false
		if c.Res < 0 && c.Res != -int32(unix.ECANCELED) {
			q.setErr(fmt.Errorf("ublk: queue %d: %w", q.cfg.id, uring.ResultError(uring.OpRead, c.Res)))
		}
		q.armEvent()
		if q.waker != nil {
			q.waker.Wake(q)
		}
	default:
		panic(fmt.Sprintf("ublk: queue %d: completion with unknown user data %#x", q.cfg.id, c.UserData))
	}
}

func (q *Queue) onCmd(tag uint16, res int32) {
	if q.state[tag] != tagFetching {
		panic(fmt.Sprintf("ublk: queue %d tag %d: command completed in state %d", q.cfg.id, tag, q.state[tag]))
	}
	switch res {
	case ioResOK:
		q.startRequest(tag)
	case ioResAbort:
		q.state[tag] = tagDead
		q.liveTags--
	default:
		q.state[tag] = tagDead
		q.liveTags--
		if res < 0 {
			q.setErr(fmt.Errorf("ublk: queue %d tag %d: fetch/commit command: %w", q.cfg.id, tag, unix.Errno(-res)))
		} else {
			q.setErr(fmt.Errorf("ublk: queue %d tag %d: unexpected command result %d", q.cfg.id, tag, res))
		}
	}
}

func (q *Queue) startRequest(tag uint16) {
	d := &q.descs[tag]
	io := &q.ios[tag]
	io.Op = Op(d.opFlags & 0xff)
	io.Flags = d.opFlags &^ 0xff
	io.Offset = d.startSector << 9
	io.Length = d.nrSectors << 9
	io.Buf = nil
	io.Fixed, io.BufIndex = false, 0
	q.busyTags++
	if io.Op == OpRead || io.Op == OpWrite {
		if int(io.Length) > q.cfg.maxIOBytes {
			// max_sectors makes the driver split larger requests.
			q.commitTag(tag, -int32(unix.EIO))
			return
		}
		if q.cfg.zeroCopy {
			io.Fixed, io.BufIndex = true, tag
			q.state[tag] = tagTarget
			q.handle(tag, io)
			return
		}
		io.Buf = q.arena.Slice(int(tag)*q.cfg.maxIOBytes, int(io.Length))
		if q.cfg.userCopy && io.Op == OpWrite {
			s, err := q.ring.NextSQE()
			if err != nil {
				q.setFatal(err)
				return
			}
			s.PrepRead(int32(q.cfg.charFd), io.Buf, userCopyOffset(q.cfg.id, tag))
			s.SetUserData(packUserData(tag, udCopyIn, 0))
			q.state[tag] = tagCopyIn
			q.inflightCopies++
			return
		}
	}
	q.state[tag] = tagTarget
	q.handle(tag, io)
}

func (q *Queue) handle(tag uint16, io *IO) {
	switch io.Op {
	case OpRead, OpWrite:
		q.cfg.target.Handle(q, tag, io)
	case OpFlush:
		if q.flusher != nil {
			q.flusher.Flush(q, tag, io)
		} else {
			q.Complete(tag, 0)
		}
	case OpDiscard:
		if q.discarder != nil {
			q.discarder.Discard(q, tag, io)
		} else {
			q.Complete(tag, -int32(unix.EOPNOTSUPP))
		}
	case OpWriteZeroes:
		if q.zeroer != nil {
			q.zeroer.WriteZeroes(q, tag, io)
		} else {
			q.Complete(tag, -int32(unix.EOPNOTSUPP))
		}
	default:
		q.Complete(tag, -int32(unix.EOPNOTSUPP))
	}
}

func (q *Queue) onCopyIn(tag uint16, res int32) {
	io := &q.ios[tag]
	if res != int32(io.Length) {
		if res >= 0 {
			res = -int32(unix.EIO)
		}
		q.commitTag(tag, res)
		return
	}
	q.state[tag] = tagTarget
	q.handle(tag, io)
}

func (q *Queue) onCopyOut(tag uint16, res int32) {
	if res == 0 {
		res = -int32(unix.EIO)
	}
	q.commitTag(tag, res)
}

// commitTag sends COMMIT_AND_FETCH_REQ: tag's request completes with res and
// the tag waits for the next one.
func (q *Queue) commitTag(tag uint16, res int32) {
	q.state[tag] = tagFetching
	q.busyTags--
	q.prepCmd(tag, q.commit, res)
}

func (q *Queue) prepCmd(tag uint16, op uint32, res int32) {
	s, err := q.ring.NextSQE()
	if err != nil {
		q.setFatal(err)
		return
	}
	s.PrepURingCmd(int32(q.cfg.charFd), op)
	var addr uint64
	switch {
	case q.cfg.zeroCopy:
		// struct ublk_auto_buf_reg, packed in the SQE's own addr (not the
		// command's): the buffer-table slot in bits 0-15, flags in 16-23
		// (none: without FALLBACK a failed install fails the request), the
		// reserved bits zero.
		s.SetCmdAddr(uint64(tag))
	case !q.cfg.userCopy:
		// Without USER_COPY the driver copies WRITE data into, and READ data
		// out of, the buffer named here.
		addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(q.Buffer(tag)))))
	}
	*(*ioCmd)(unsafe.Pointer(&q.ring.CmdArea(s)[0])) = ioCmd{qID: q.cfg.id, tag: tag, result: res, addr: addr}
	s.SetUserData(packUserData(tag, udCmd, 0))
}

func (q *Queue) armEvent() {
	if q.eventArmed || q.fatal {
		return
	}
	s, err := q.ring.NextSQE()
	if err != nil {
		q.setFatal(err)
		return
	}
	s.PrepRead(int32(q.efd), q.evBuf, 0)
	s.SetUserData(packUserData(0, udEvent, 0))
	q.eventArmed = true
}

func (q *Queue) setErr(err error) {
	if q.err == nil {
		q.err = err
	}
}

// setFatal records an error after which the ring cannot be used (no SQE to
// be had): the loop ends, and closing the ring makes the driver abort the
// queue's requests.
func (q *Queue) setFatal(err error) {
	q.setErr(fmt.Errorf("ublk: queue %d: %w", q.cfg.id, err))
	q.fatal = true
}

func (q *Queue) teardown() {
	q.efdMu.Lock()
	if q.efd >= 0 {
		unix.Close(q.efd)
		q.efd = -1
	}
	q.efdMu.Unlock()
	if q.ring != nil {
		// Closing the ring cancels the pending fetches (the driver completes
		// them with UBLK_IO_RES_ABORT, and stops the device if it was live)
		// and the eventfd read.
		q.ring.Close()
	}
	if q.initDone {
		if d, ok := q.cfg.target.(Deiniter); ok {
			d.Deinit(q)
		}
	}
	if q.descMem != nil {
		unix.Munmap(q.descMem)
		q.descMem, q.descs = nil, nil
	}
	// An operation still in flight after an error may write into the arena
	// until the kernel has finished tearing the ring down; leak the arena
	// then rather than unmap memory the kernel may still write.
	if q.arena != nil && q.inflightTarget == 0 && q.inflightCopies == 0 {
		q.arena.Close()
	}
}
