package uring

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (r *Ring) register(opcode uint32, arg unsafe.Pointer, n uint32) error {
	if r.closed {
		return ErrClosed
	}
	for {
		_, _, errno := unix.Syscall6(sysRegister, uintptr(r.fd), uintptr(opcode), uintptr(arg), uintptr(n), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// RegisterBuffers registers Arena buffers for READ_FIXED/WRITE_FIXED; buffer
// i gets index i. The kernel pins them until UnregisterBuffers or Close.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	iovs := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		bufAddr(b) // panics unless b is Arena memory
		iovs[i].Base = unsafe.SliceData(b)
		iovs[i].SetLen(len(b))
	}
	err := r.register(registerBuffers, unsafe.Pointer(&iovs[0]), uint32(len(iovs)))
	runtime.KeepAlive(iovs)
	if err != nil {
		return fmt.Errorf("uring: register %d buffers: %w", len(bufs), err)
	}
	return nil
}

// RegisterSparseBuffers makes a buffer table of n empty slots
// (IORING_REGISTER_BUFFERS2 with IORING_RSRC_REGISTER_SPARSE, Linux 5.19),
// for buffers a driver installs itself: ublk's UBLK_F_AUTO_BUF_REG puts
// each request's pages in the slot the server names. Use the slots with
// PrepReadFixedAt and PrepWriteFixedAt.
func (r *Ring) RegisterSparseBuffers(n uint32) error {
	arg := rsrcRegister{nr: n, flags: rsrcRegisterSparse}
	err := r.register(registerBuffers2, unsafe.Pointer(&arg), uint32(unsafe.Sizeof(arg)))
	if err != nil {
		return fmt.Errorf("uring: register a sparse table of %d buffers: %w", n, err)
	}
	return nil
}

// UnregisterBuffers drops the registered buffers.
func (r *Ring) UnregisterBuffers() error {
	if err := r.register(unregisterBuffers, nil, 0); err != nil {
		return fmt.Errorf("uring: unregister buffers: %w", err)
	}
	return nil
}

// RegisterFiles registers fds; SQEs then name fds[i] as i with SQEFixedFile.
// An entry of -1 leaves a slot empty for UpdateFiles.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return fmt.Errorf("uring: register files: empty list")
	}
	err := r.register(registerFiles, unsafe.Pointer(&fds[0]), uint32(len(fds)))
	runtime.KeepAlive(fds)
	if err != nil {
		return fmt.Errorf("uring: register %d files: %w", len(fds), err)
	}
	return nil
}

// UpdateFiles replaces registered files starting at slot off.
func (r *Ring) UpdateFiles(off uint32, fds []int32) error {
	if len(fds) == 0 {
		return nil
	}
	up := rsrcUpdate{offset: off, data: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	err := r.register(registerFilesUpdate, unsafe.Pointer(&up), uint32(len(fds)))
	runtime.KeepAlive(fds)
	if err != nil {
		return fmt.Errorf("uring: update files at %d: %w", off, err)
	}
	return nil
}

// UnregisterFiles drops the registered files.
func (r *Ring) UnregisterFiles() error {
	if err := r.register(unregisterFiles, nil, 0); err != nil {
		return fmt.Errorf("uring: unregister files: %w", err)
	}
	return nil
}

// Probe is the set of opcodes the running kernel supports.
type Probe struct {
	lastOp    Op
	supported [256]bool
}

const probeOps = 256

// Probe asks the kernel which opcodes it supports (IORING_REGISTER_PROBE, 5.6).
func (r *Ring) Probe() (*Probe, error) {
	var buf struct {
		h   probeHeader
		ops [probeOps]probeOp
	}
	if err := r.register(registerProbe, unsafe.Pointer(&buf), probeOps); err != nil {
		if err == unix.EINVAL {
			return nil, fmt.Errorf("%w: IORING_REGISTER_PROBE (Linux 5.6)", ErrNotSupported)
		}
		return nil, fmt.Errorf("uring: probe: %w", err)
	}
	p := &Probe{lastOp: Op(buf.h.lastOp)}
	for i := 0; i < int(buf.h.opsLen) && i < probeOps; i++ {
		op := buf.ops[i]
		if op.flags&probeOpSupported != 0 {
			p.supported[op.op] = true
		}
	}
	return p, nil
}

// Supports reports whether op is available.
func (p *Probe) Supports(op Op) bool { return p.supported[op] }

// Require returns an error naming the first missing opcode and the kernel
// release that added it; errors.Is(err, ErrNotSupported) holds.
func (p *Probe) Require(ops ...Op) error {
	for _, op := range ops {
		if !p.Supports(op) {
			if v := op.KernelVersion(); v != "" {
				return fmt.Errorf("%w: io_uring opcode IORING_OP_%s (added in Linux %s)", ErrNotSupported, op, v)
			}
			return fmt.Errorf("%w: io_uring opcode %s", ErrNotSupported, op)
		}
	}
	return nil
}

// NonblockingReads reports whether reads of fd may complete inline, on the
// submitting thread, when the data is cached. It asks with a zero-length
// RWF_NOWAIT read through a one-entry ring: the kernel refuses the flag
// (EOPNOTSUPP) for a file without nonblocking reads, tmpfs's for one, and
// hands every read of such a file to an io-wq worker.
func NonblockingReads(fd int32) (bool, error) {
	r, err := New(Options{Entries: 1})
	if err != nil {
		return false, err
	}
	defer r.Close()
	s, err := r.NextSQE()
	if err != nil {
		return false, err
	}
	s.rw(OpRead, fd, 0, 0, 0)
	s.SetRWFlags(unix.RWF_NOWAIT)
	var c [1]CQE
	for r.Drain(c[:]) == 0 {
		if _, err := r.SubmitAndWait(1); err != nil {
			return false, err
		}
	}
	switch {
	case c[0].Res >= 0 || c[0].Res == -int32(unix.EAGAIN):
		return true, nil
	case c[0].Res == -int32(unix.EOPNOTSUPP):
		return false, nil
	}
	return false, fmt.Errorf("uring: nonblocking read probe: %w", unix.Errno(-c[0].Res))
}

// RegisterIOWQMaxWorkers bounds the io-wq workers of the threads that use r
// (IORING_REGISTER_IOWQ_MAX_WORKERS, 5.15): bounded for regular-file and
// block-device work, unbounded for the rest; 0 leaves a limit as it is. It
// returns the limits that applied before.
func (r *Ring) RegisterIOWQMaxWorkers(bounded, unbounded uint32) ([2]uint32, error) {
	v := [2]uint32{bounded, unbounded}
	if err := r.register(registerIOWQMax, unsafe.Pointer(&v[0]), 2); err != nil {
		return [2]uint32{}, fmt.Errorf("uring: register io-wq max workers %d/%d: %w", bounded, unbounded, err)
	}
	return v, nil
}
