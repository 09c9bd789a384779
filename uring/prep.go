package uring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SQE is a submission queue entry handed out by Ring.NextSQE. Fill it with
// one Prep method, then set flags and user data; it is published by the next
// Submit. Buffers named by an SQE must be Arena memory (see the memory rule).
type SQE struct{ sqe }

// SetUserData sets the value carried through to the completion. One value
// is the ring's own (the io-wq kick's, 0xffffffff94969c94): do not use it.
func (s *SQE) SetUserData(v uint64) { s.userData = v }

// SetFlags sets IOSQE_* flags (SQEIOLink, SQEFixedFile, SQEAsync, ...).
func (s *SQE) SetFlags(f SQEFlag) { s.flags |= uint8(f) }

// SetRWFlags sets a read or write's RWF_* flags (rw_flags), such as
// unix.RWF_NOWAIT.
func (s *SQE) SetRWFlags(f uint32) { s.opFlags = f }

// SetBufIndex sets buf_index (for READ_FIXED/WRITE_FIXED, or a URING_CMD
// that uses registered buffers).
func (s *SQE) SetBufIndex(i uint16) { s.bufIndex = i }

func (s *SQE) rw(op Op, fd int32, addr uint64, n uint32, off uint64) {
	s.opcode = uint8(op)
	s.fd = fd
	s.addr = addr
	s.len = n
	s.off = off
}

// PrepNop prepares a no-op.
func (s *SQE) PrepNop() { s.opcode = uint8(OpNop) }

// PrepCancel asks the kernel to cancel the operation in flight whose user
// data is ud. Its own completion is 0 (cancelled), -ENOENT (not found: it
// already completed) or -EALREADY (running, cannot be stopped); the
// cancelled operation still completes, with -ECANCELED.
func (s *SQE) PrepCancel(ud uint64) {
	s.opcode = uint8(OpAsyncCancel)
	s.fd = -1
	s.addr = ud
}

// PrepRead reads len(buf) bytes at off into buf.
func (s *SQE) PrepRead(fd int32, buf []byte, off uint64) {
	s.rw(OpRead, fd, bufAddr(buf), uint32(len(buf)), off)
}

// PrepWrite writes buf at off.
func (s *SQE) PrepWrite(fd int32, buf []byte, off uint64) {
	s.rw(OpWrite, fd, bufAddr(buf), uint32(len(buf)), off)
}

// PrepReadv reads into the buffers of iovs (an Arena's Iovecs).
func (s *SQE) PrepReadv(fd int32, iovs []unix.Iovec, off uint64) {
	s.rw(OpReadv, fd, iovecAddr(iovs), uint32(len(iovs)), off)
}

// PrepWritev writes the buffers of iovs.
func (s *SQE) PrepWritev(fd int32, iovs []unix.Iovec, off uint64) {
	s.rw(OpWritev, fd, iovecAddr(iovs), uint32(len(iovs)), off)
}

// PrepReadFixed reads into buf, which lies inside registered buffer index.
func (s *SQE) PrepReadFixed(fd int32, buf []byte, off uint64, index uint16) {
	s.rw(OpReadFixed, fd, bufAddr(buf), uint32(len(buf)), off)
	s.bufIndex = index
}

// PrepWriteFixed writes buf, which lies inside registered buffer index.
func (s *SQE) PrepWriteFixed(fd int32, buf []byte, off uint64, index uint16) {
	s.rw(OpWriteFixed, fd, bufAddr(buf), uint32(len(buf)), off)
	s.bufIndex = index
}

// PrepReadFixedAt reads n bytes at off into the buffer a driver installed in
// slot index (RegisterSparseBuffers), starting at byte bufOff of that buffer:
// a kernel-installed buffer starts at address 0, so no user memory is named.
func (s *SQE) PrepReadFixedAt(fd int32, bufOff uint64, n uint32, off uint64, index uint16) {
	s.rw(OpReadFixed, fd, bufOff, n, off)
	s.bufIndex = index
}

// PrepWriteFixedAt writes n bytes from byte bufOff of the buffer in slot
// index to off (see PrepReadFixedAt).
func (s *SQE) PrepWriteFixedAt(fd int32, bufOff uint64, n uint32, off uint64, index uint16) {
	s.rw(OpWriteFixed, fd, bufOff, n, off)
	s.bufIndex = index
}

// PrepFsync flushes fd; flags may be FsyncDatasync.
func (s *SQE) PrepFsync(fd int32, flags uint32) {
	s.rw(OpFsync, fd, 0, 0, 0)
	s.opFlags = flags
}

// PrepFallocate is fallocate(fd, mode, off, length).
func (s *SQE) PrepFallocate(fd int32, mode uint32, off, length uint64) {
	// The kernel takes the length in addr and the mode in len.
	s.rw(OpFallocate, fd, length, mode, off)
}

// SetCmdAddr sets a URING_CMD's sqe->addr, which some drivers read besides
// the command payload (ublk's UBLK_F_AUTO_BUF_REG takes its buffer slot
// there). Call it after PrepURingCmd.
func (s *SQE) SetCmdAddr(v uint64) { s.addr = v }

// PrepURingCmd prepares a passthrough command cmdOp to fd. The caller fills
// the command payload through Ring.CmdArea(s); it is copied into the SQE, so
// only addresses inside it need pinning.
func (s *SQE) PrepURingCmd(fd int32, cmdOp uint32) {
	s.opcode = uint8(OpURingCmd)
	s.fd = fd
	*(*uint32)(unsafe.Pointer(&s.off)) = cmdOp
}

// Opcode is the prepared operation.
func (s *SQE) Opcode() Op { return Op(s.opcode) }
