package uring

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// presubmitBackoff is how many sleeping submit-and-waits follow a
// non-sleeping submission that did not satisfy its wait.
const presubmitBackoff = -16

// Options configure a Ring. The zero value of every field but Entries means
// "kernel default / off".
type Options struct {
	// Entries is the SQ size; rounded up to a power of two by the kernel.
	Entries uint32
	// CQEntries is the CQ size; 0 means twice Entries.
	CQEntries uint32
	// SQPoll starts a kernel thread that polls the SQ; it sleeps after
	// SQThreadIdle without work.
	SQPoll       bool
	SQThreadIdle time.Duration
	// SingleIssuer promises that one thread submits (needed by DeferTaskrun).
	// The kernel checks the thread, not the goroutine: the owner must call
	// runtime.LockOSThread before New, or submissions fail with EEXIST.
	SingleIssuer bool
	// DeferTaskrun runs completion work only when the owner waits (6.1+).
	DeferTaskrun bool
	// CoopTaskrun avoids interrupting the owner to run completion work (5.19+).
	CoopTaskrun bool
	// SQE128 doubles SQEs to 128 bytes (an 80-byte URING_CMD area, as ublk's
	// control commands need).
	SQE128 bool
	// CQE32 doubles CQEs to 32 bytes.
	CQE32 bool
	// SubmitMaySleep says that submitting on this ring can sleep in the
	// kernel until other goroutines act: ublk's control commands do
	// (START_DEV waits for every queue to fetch). io_uring otherwise never
	// sleeps to submit (an operation that would block goes to its workers),
	// so by default submissions that do not wait for completions enter the
	// kernel without the Go scheduler's syscall bookkeeping (RawSyscall),
	// which keeps the thread's P meanwhile; with SubmitMaySleep every entry
	// goes through the scheduler.
	SubmitMaySleep bool
}

// CQE is a completion. Big holds the extra 16 bytes of a CQE32 ring.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
	Big      [2]uint64
}

// Ring is an io_uring instance. A Ring is owned by one goroutine at a time:
// NextSQE, Submit*, Wait* and Drain must not be called concurrently (checked:
// concurrent entry panics). Use one Ring per goroutine; rings are cheap.
// Handing a Ring to another goroutine is fine with a happens-before edge
// (a channel send or a mutex), as for any non-thread-safe value.
type Ring struct {
	fd       int
	flags    uint32
	features uint32
	rawEnter bool // !Options.SubmitMaySleep
	// presubmit decides whether a submit-and-wait first submits without
	// sleeping: 0 or more means try; a try that leaves the wait unsatisfied
	// sets it to presubmitBackoff, and each entry without a try counts it
	// back up, so rings whose completions never come inline (ublk queues,
	// io-wq writes) pay the extra enter once per -presubmitBackoff waits.
	presubmit int8
	// kicks is the number of kick NOPs whose completions are still to be
	// dropped, kicked the kicks over the ring's life (Ring.Kicks). The
	// marked operations (MarkIOWQ) in flight are iowqN entries of iowqSet;
	// iowqMarked flags the SQ slots marked but not yet published. See
	// iowq.go.
	kicks      int
	kicked     int64
	iowqMarked []bool
	iowqSet    []iowqEntry
	iowqN      int
	sqeSize    uintptr
	cqeSize    uintptr

	ringMem []byte // SQ and CQ rings (one mapping with FEAT_SINGLE_MMAP)
	cqMem   []byte // separate CQ mapping on old kernels, else nil
	sqeMem  []byte

	sqHead    *uint32
	sqTail    *uint32
	sqFlags   *uint32
	sqMask    uint32
	sqEntries uint32
	sqes      unsafe.Pointer
	sqeTail   uint32 // local tail: SQEs handed out, not yet published
	sqFree    uint32 // SQEs NextSQE may hand out before it looks at the kernel's head again

	cqHead    *uint32
	cqTail    *uint32
	cqMask    uint32
	cqEntries uint32
	cqes      unsafe.Pointer

	// backlog holds CQEs pulled off the ring to make room when the kernel
	// refuses to take more SQEs (EBUSY on a full CQ); Drain returns them
	// first. It only grows in that rare case.
	backlog []CQE

	// waitTS and waitArg live in the Ring (the Go heap, which does not move)
	// because the kernel reads waitTS through an address stored as an integer.
	waitTS  unix.Timespec
	waitArg getEventsArg

	busy   atomic.Int32
	closed bool
}

// New sets up a ring.
func New(opts Options) (*Ring, error) {
	if opts.Entries == 0 || opts.Entries > 32768 {
		return nil, fmt.Errorf("uring: entries %d: want 1..32768", opts.Entries)
	}
	var p params
	if opts.CQEntries != 0 {
		if opts.CQEntries < opts.Entries {
			return nil, fmt.Errorf("uring: CQ entries %d smaller than SQ entries %d", opts.CQEntries, opts.Entries)
		}
		p.flags |= setupCQSize
		p.cqEntries = opts.CQEntries
	}
	if opts.SQPoll {
		p.flags |= setupSQPoll
		p.sqThreadIdle = uint32(opts.SQThreadIdle / time.Millisecond)
	}
	if opts.SingleIssuer {
		p.flags |= setupSingleIssuer
	}
	if opts.DeferTaskrun {
		if !opts.SingleIssuer {
			return nil, fmt.Errorf("uring: DeferTaskrun needs SingleIssuer")
		}
		p.flags |= setupDeferTaskrun
	}
	if opts.CoopTaskrun {
		p.flags |= setupCoopTaskrun
	}
	if opts.SQE128 {
		p.flags |= setupSQE128
	}
	if opts.CQE32 {
		p.flags |= setupCQE32
	}
	// Without the SQ index array where the kernel has that (6.6+); older
	// kernels refuse the unknown flag with EINVAL, and get the array.
	asked := p
	p.flags |= setupNoSQArray
	fd, _, errno := unix.Syscall(sysSetup, uintptr(opts.Entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno == unix.EINVAL {
		p = asked
		fd, _, errno = unix.Syscall(sysSetup, uintptr(opts.Entries), uintptr(unsafe.Pointer(&p)), 0)
	}
	if errno != 0 {
		return nil, setupError(errno)
	}
	r := &Ring{fd: int(fd), flags: p.flags, features: p.features, sqeSize: 64, cqeSize: 16, rawEnter: !opts.SubmitMaySleep}
	if opts.SQE128 {
		r.sqeSize = 128
	}
	if opts.CQE32 {
		r.cqeSize = 32
	}
	if err := r.mmap(&p); err != nil {
		unix.Close(r.fd)
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	sqSize := uintptr(p.sqOff.array) + uintptr(p.sqEntries)*4
	cqSize := uintptr(p.cqOff.cqes) + uintptr(p.cqEntries)*r.cqeSize
	single := p.features&featSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	r.ringMem, err = unix.Mmap(r.fd, offSQRing, int(sqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("uring: mmap SQ ring: %w", err)
	}
	cqBase := unsafe.Pointer(&r.ringMem[0])
	if !single {
		r.cqMem, err = unix.Mmap(r.fd, offCQRing, int(cqSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			r.unmap()
			return fmt.Errorf("uring: mmap CQ ring: %w", err)
		}
		cqBase = unsafe.Pointer(&r.cqMem[0])
	}
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(uintptr(p.sqEntries)*r.sqeSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.unmap()
		return fmt.Errorf("uring: mmap SQEs: %w", err)
	}
	sqBase := unsafe.Pointer(&r.ringMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sqBase, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sqBase, p.sqOff.tail))
	r.sqFlags = (*uint32)(unsafe.Add(sqBase, p.sqOff.flags))
	r.sqMask = *(*uint32)(unsafe.Add(sqBase, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sqBase, p.sqOff.ringEntries))
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	// The SQ index array (when there is one) maps ring slots to SQEs; we
	// use the identity map, so publishing an SQE is only a tail update.
	if p.flags&setupNoSQArray == 0 {
		array := unsafe.Slice((*uint32)(unsafe.Add(sqBase, p.sqOff.array)), r.sqEntries)
		for i := range array {
			array[i] = uint32(i)
		}
	}
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.cqHead = (*uint32)(unsafe.Add(cqBase, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cqBase, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cqBase, p.cqOff.ringMask))
	r.cqEntries = *(*uint32)(unsafe.Add(cqBase, p.cqOff.ringEntries))
	r.cqes = unsafe.Add(cqBase, p.cqOff.cqes)
	return nil
}

func (r *Ring) unmap() {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.ringMem = nil, nil, nil
}

// Close unmaps the rings and closes the ring fd. The kernel cancels whatever
// is still in flight, but in a work item after Close returns: memory an
// operation still in flight names must stay mapped until its completion has
// been seen (PrepCancel it and reap it first), not only until Close.
func (r *Ring) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.unmap()
	return unix.Close(r.fd)
}

// Fd is the ring's file descriptor (for MSG_RING targets and registration).
func (r *Ring) Fd() int { return r.fd }

// SQEntries and CQEntries are the sizes the kernel chose.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// Features is the IORING_FEAT_* mask the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

func (r *Ring) enterOwner() {
	if !r.busy.CompareAndSwap(0, 1) {
		panic("uring: Ring used by two goroutines at once (a Ring has one owner; use one Ring per goroutine)")
	}
}

func (r *Ring) leaveOwner() { r.busy.Store(0) }

// NextSQE returns a zeroed SQE to fill, submitting what is queued when the SQ
// is full (the one place a full SQ is handled).
func (r *Ring) NextSQE() (*SQE, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if r.sqFree == 0 {
		// Only now read the head the kernel writes: its cache line is the
		// kernel's, and touching it for every SQE showed in profiles.
		r.sqFree = r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
		if r.sqFree == 0 {
			if _, err := r.submit(0, 0); err != nil {
				return nil, err
			}
			r.sqFree = r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
			if r.sqFree == 0 {
				return nil, ErrSQFull
			}
		}
	}
	r.sqFree--
	s := (*SQE)(unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*r.sqeSize))
	*s = SQE{}
	if r.sqeSize == 128 {
		*(*[64]byte)(unsafe.Add(unsafe.Pointer(s), 64)) = [64]byte{}
	}
	r.sqeTail++
	return s, nil
}

// Reserve makes sure the next n NextSQE calls hand out SQEs without
// submitting in between, so that a chain of SQEs linked with SQEIOLink
// reaches the kernel in one submission (a chain cut by a submission would
// run its halves unordered). It submits what is queued only if it must.
func (r *Ring) Reserve(n uint32) error {
	if r.closed {
		return ErrClosed
	}
	if n > r.sqEntries {
		return fmt.Errorf("%w: %d SQEs reserved on a ring of %d", ErrSQFull, n, r.sqEntries)
	}
	if r.sqFree >= n {
		return nil
	}
	r.sqFree = r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
	if r.sqFree < n {
		if _, err := r.submit(0, 0); err != nil {
			return err
		}
		r.sqFree = r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
		if r.sqFree < n {
			return ErrSQFull
		}
	}
	return nil
}

// CmdArea returns the URING_CMD payload of s: 16 bytes, or 80 on an SQE128
// ring. s must come from this ring's NextSQE.
func (r *Ring) CmdArea(s *SQE) []byte {
	n := 16
	if r.sqeSize == 128 {
		n = 80
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s.sqe.addr3)), n)
}

// Pending is the number of SQEs prepared but not yet submitted.
func (r *Ring) Pending() uint32 { return r.sqeTail - atomic.LoadUint32(r.sqTail) }

// Submit hands prepared SQEs to the kernel and returns how many it took.
func (r *Ring) Submit() (int, error) { return r.submit(0, 0) }

// SubmitAndWait submits and waits until at least n completions are ready.
func (r *Ring) SubmitAndWait(n uint32) (int, error) { return r.submit(n, 0) }

// WaitTimeout submits and waits for n completions or until d passes
// (ErrTimeout). It needs IORING_FEAT_EXT_ARG (5.11).
func (r *Ring) WaitTimeout(n uint32, d time.Duration) (int, error) {
	if r.features&featExtArg == 0 {
		return 0, fmt.Errorf("%w: wait with timeout needs IORING_FEAT_EXT_ARG (Linux 5.11)", ErrNotSupported)
	}
	if d <= 0 {
		d = 1
	}
	return r.submit(n, d)
}

// submit is the single entry into io_uring_enter: it publishes the local SQ
// tail, retries on EINTR, flushes the kernel's overflow list when the CQ
// overflowed, and makes room in the CQ (into backlog) when the kernel refuses
// new SQEs with EBUSY.
func (r *Ring) submit(waitNr uint32, timeout time.Duration) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	r.enterOwner()
	defer r.leaveOwner()
	return r.enter(waitNr, timeout)
}

func (r *Ring) enter(waitNr uint32, timeout time.Duration) (int, error) {
	r.publishMarks()
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	sqPoll := r.flags&setupSQPoll != 0
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	submitted := 0
	for {
		toSubmit, flags, kernelWait, polled := r.enterPlan(waitNr, sqPoll)
		submitted += polled
		if toSubmit == 0 && flags == 0 {
			return submitted, nil
		}
		arg, argSize, err := r.waitBound(kernelWait, timeout, deadline)
		if err != nil {
			return submitted, err
		}
		if arg != nil {
			flags |= enterExtArg
		}
		n, errno := r.enterSyscall(toSubmit, flags, kernelWait, waitNr, arg, argSize)
		if done, err := r.enterResult(n, errno, waitNr, sqPoll, timeout, deadline, &submitted); done {
			return submitted, err
		}
	}
}

// enterPlan says what the next io_uring_enter does: the SQEs it submits,
// its flags and the completions it waits for in the kernel. With SQPOLL the
// poll thread consumes the SQ, so the SQEs are counted as submitted
// (polled) and the enter only wakes the thread or waits.
func (r *Ring) enterPlan(waitNr uint32, sqPoll bool) (toSubmit, flags, kernelWait uint32, polled int) {
	toSubmit = r.sqeTail - atomic.LoadUint32(r.sqHead)
	if sqPoll {
		if toSubmit > 0 && atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		}
		polled, toSubmit = int(toSubmit), 0
	}
	// The kernel counts min_complete against CQEs in the ring only, and
	// cannot post more than the ring holds: wait for what is still missing
	// beyond the backlog, and empty a full ring into the backlog.
	if waitNr > 0 && r.cqReady() < waitNr {
		if atomic.LoadUint32(r.cqTail)-*r.cqHead >= r.cqEntries {
			r.moveToBacklog()
		}
		kernelWait = min(waitNr-uint32(len(r.backlog)), r.cqEntries)
		flags |= enterGetEvents
	}
	if r.needsGetEvents() {
		flags |= enterGetEvents
	}
	return toSubmit, flags, kernelWait, polled
}

// waitBound returns the EXT_ARG of a wait bounded by the caller's deadline or
// by the io-wq kick interval (while a marked operation is in flight, a wait
// longer than kickInterval ends early, with ETIME, to kick io-wq), whichever
// comes first; nil for an unbounded wait
// or none. Past the deadline it returns ErrTimeout.
func (r *Ring) waitBound(kernelWait uint32, timeout time.Duration, deadline time.Time) (unsafe.Pointer, uintptr, error) {
	kicking := kernelWait > 0 && r.iowqN > 0 && r.features&featExtArg != 0 && r.flags&setupSQPoll == 0 && !kickDisabled
	if kernelWait == 0 || timeout <= 0 && !kicking {
		return nil, 0, nil
	}
	left := kickInterval
	if timeout > 0 {
		left = time.Until(deadline)
		if left <= 0 {
			return nil, 0, ErrTimeout
		}
		if kicking {
			left = min(left, kickInterval)
		}
	}
	r.waitTS = unix.NsecToTimespec(int64(left))
	r.waitArg = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	return unsafe.Pointer(&r.waitArg), unsafe.Sizeof(r.waitArg), nil
}

// enterSyscall makes the io_uring_enter call itself.
func (r *Ring) enterSyscall(toSubmit, flags, kernelWait, waitNr uint32, arg unsafe.Pointer, argSize uintptr) (uintptr, unix.Errno) {
	var n uintptr
	var errno unix.Errno
	switch {
	case r.rawEnter && kernelWait == 0:
		// Does not sleep (min_complete 0): skip the scheduler's syscall
		// bookkeeping, ~10 ns per NOP at batch 32 (BenchmarkNop).
		n, _, errno = unix.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(toSubmit), 0, uintptr(flags), uintptr(arg), argSize)
	case r.rawEnter && toSubmit > 0 && r.presubmit >= 0:
		// Submit first without sleeping: operations that complete
		// inline (NOPs, reads from the page cache) often satisfy the
		// wait, and then no sleeping enter is needed. Otherwise the loop
		// comes back and waits with nothing left to submit.
		n, _, errno = unix.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(toSubmit), 0, uintptr(flags&^enterExtArg), 0, 0)
		if errno == 0 && r.cqReady() < waitNr {
			r.presubmit = presubmitBackoff
		}
	default:
		if r.rawEnter && toSubmit > 0 {
			r.presubmit++
		}
		n, _, errno = unix.Syscall6(sysEnter, uintptr(r.fd), uintptr(toSubmit), uintptr(kernelWait), uintptr(flags), uintptr(arg), argSize)
	}
	return n, errno
}

// enterResult handles one io_uring_enter's outcome, EINTR, the kick
// interval's ETIME and a full CQ included: done says whether enter returns
// (with err).
func (r *Ring) enterResult(n uintptr, errno unix.Errno, waitNr uint32, sqPoll bool, timeout time.Duration, deadline time.Time, submitted *int) (done bool, err error) {
	switch errno {
	case 0:
		// When it submitted something, the kernel reports a wait cut
		// short by a signal (Go preempts with SIGURG) as success; the
		// loop resumes the wait until enough completions are ready.
		*submitted += int(n)
		if r.kicks > 0 {
			r.moveToBacklog() // drops the kicks' completions
		}
		if waitNr == 0 || r.cqReady() >= waitNr {
			if r.sqeTail == atomic.LoadUint32(r.sqHead) || sqPoll || n == 0 {
				return true, nil
			}
		}
	case unix.EINTR:
		// Resume: SQEs the kernel already took are gone from the SQ.
	case unix.ETIME:
		if timeout > 0 && !time.Now().Before(deadline) {
			return true, ErrTimeout
		}
		if r.iowqN > 0 && !kickDisabled {
			r.kickIOWQ()
		}
	case unix.EBUSY, unix.EAGAIN:
		// The CQ is full (or its overflow list is): move completions to
		// the backlog so the kernel can post more, then retry.
		if r.moveToBacklog() == 0 && !r.needsGetEvents() {
			return true, fmt.Errorf("uring: io_uring_enter: %w", errno)
		}
	default:
		return true, fmt.Errorf("uring: io_uring_enter: %w", errno)
	}
	return false, nil
}

// isKick reports whether the kernel's CQE i is a kick NOP's, which no
// caller may see (while kicks are outstanding, kickUD is ours).
func (r *Ring) isKick(i uint32) bool {
	return r.kicks > 0 && (*cqe)(unsafe.Add(r.cqes, uintptr(i&r.cqMask)*r.cqeSize)).userData == kickUD
}

func (r *Ring) needsGetEvents() bool {
	f := atomic.LoadUint32(r.sqFlags)
	return f&(sqCQOverflow|sqTaskrun) != 0
}

func (r *Ring) cqReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - *r.cqHead + uint32(len(r.backlog))
}

// moveToBacklog empties the CQ into the backlog, in order, dropping kick
// NOPs' completions, and returns how many CQEs it took off the ring.
func (r *Ring) moveToBacklog() int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		if r.isKick(i) {
			r.kicks--
			continue
		}
		r.backlog = append(r.backlog, CQE{})
		r.copyCQE(&r.backlog[len(r.backlog)-1], i)
		if r.iowqN > 0 {
			r.iowqDone(r.backlog[len(r.backlog)-1].UserData)
		}
	}
	atomic.StoreUint32(r.cqHead, tail)
	return int(tail - head)
}

// copyCQE copies the kernel's CQE i into dst field by field: building a CQE
// value and copying it whole made the CPU stall forwarding the small stores
// into the wide load (perf annotate: 60% of Drain on one movups).
func (r *Ring) copyCQE(dst *CQE, i uint32) {
	p := unsafe.Add(r.cqes, uintptr(i&r.cqMask)*r.cqeSize)
	k := (*cqe)(p)
	dst.UserData = k.userData
	dst.Res = k.res
	dst.Flags = k.flags
	if r.cqeSize == 32 {
		dst.Big = *(*[2]uint64)(unsafe.Add(p, 16))
	} else {
		dst.Big = [2]uint64{}
	}
}

// Drain copies up to len(out) ready completions into out and returns how
// many; it never blocks. Completions the kernel holds back after a CQ
// overflow, or deferred task work, are flushed into the ring first.
func (r *Ring) Drain(out []CQE) int {
	if r.closed {
		return 0
	}
	r.enterOwner()
	defer r.leaveOwner()
	n := 0
	if len(r.backlog) > 0 {
		n = copy(out, r.backlog)
		r.backlog = r.backlog[:copy(r.backlog, r.backlog[n:])]
	}
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	if head == tail && n < len(out) && r.needsGetEvents() {
		r.enter(0, 0) //nolint:errcheck // a flush; errors surface on the next submit
		tail = atomic.LoadUint32(r.cqTail)
	}
	for ; n < len(out) && head != tail; head++ {
		if r.isKick(head) {
			r.kicks--
			continue
		}
		r.copyCQE(&out[n], head)
		if r.iowqN > 0 {
			r.iowqDone(out[n].UserData)
		}
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}
