package ublk

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// Passthrough is the baseline target: requests go one to one to a file or
// block device, as io_uring operations on the queue's own ring (READ, WRITE,
// FSYNC, FALLOCATE). It keeps no per-queue state; the file is shared.
type Passthrough struct {
	file   *os.File
	fd     int32
	size   uint64
	direct bool
}

// Passthrough's operation codes in TargetCompletion.Op.
const (
	ptRead uint8 = iota + 1
	ptWrite
	ptFlush
	ptDiscard
	ptZeroRange // FALLOC_FL_ZERO_RANGE; retried as ptZeroPunch where unsupported
	ptZeroPunch
)

// OpenPassthrough opens path, a regular file or a block device, for a
// Passthrough target: read-write, with O_DIRECT where the file system allows
// it (tmpfs does not; then the page cache is used and FLUSH syncs it).
func OpenPassthrough(path string) (*Passthrough, error) {
	direct := true
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("ublk: passthrough: %w", err)
	}
	size, err := fileSize(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ublk: passthrough: %s: %w", path, err)
	}
	return &Passthrough{file: f, fd: int32(f.Fd()), size: size, direct: direct}, nil
}

// fileSize is the size of a regular file or a block device.
func fileSize(f *os.File) (uint64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode().IsRegular() {
		return uint64(st.Size()), nil
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return 0, fmt.Errorf("not a regular file or block device (mode %v)", st.Mode())
	}
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	return size, nil
}

// Size is the size of the file or block device in bytes.
func (p *Passthrough) Size() uint64 { return p.size }

// Direct reports whether the file was opened with O_DIRECT.
func (p *Passthrough) Direct() bool { return p.direct }

// Close closes the file; call it after the Device is closed.
func (p *Passthrough) Close() error { return p.file.Close() }

// Init has nothing to set up per queue.
func (p *Passthrough) Init(q *Queue) error { return nil }

// Handle submits the READ or WRITE at the same offset of the file.
func (p *Passthrough) Handle(q *Queue, tag uint16, io *IO) {
	op := ptRead
	if io.Op == OpWrite {
		op = ptWrite
	}
	s, err := q.TargetSQE(tag, op, 0)
	if err != nil {
		q.Complete(tag, -int32(unix.EIO))
		return
	}
	switch {
	case io.Fixed && op == ptRead:
		s.PrepReadFixedAt(p.fd, 0, io.Length, io.Offset, io.BufIndex)
	case io.Fixed:
		s.PrepWriteFixedAt(p.fd, 0, io.Length, io.Offset, io.BufIndex)
	case op == ptRead:
		s.PrepRead(p.fd, io.Buf, io.Offset)
	default:
		s.PrepWrite(p.fd, io.Buf, io.Offset)
	}
}

// ZeroCopy reports that the passthrough serves fixed buffers (ZeroCopier).
func (p *Passthrough) ZeroCopy() bool { return true }

// Flush syncs the file's data (fdatasync).
func (p *Passthrough) Flush(q *Queue, tag uint16, io *IO) {
	s, err := q.TargetSQE(tag, ptFlush, 0)
	if err != nil {
		q.Complete(tag, -int32(unix.EIO))
		return
	}
	s.PrepFsync(p.fd, uring.FsyncDatasync)
}

// Discard punches a hole in the file (for a block device, the kernel turns
// that into a discard or zero-out).
func (p *Passthrough) Discard(q *Queue, tag uint16, io *IO) {
	p.fallocate(q, tag, io, ptDiscard, unix.FALLOC_FL_PUNCH_HOLE)
}

// WriteZeroes zeroes the range, keeping it allocated when asked (NOUNMAP).
func (p *Passthrough) WriteZeroes(q *Queue, tag uint16, io *IO) {
	if io.Flags&IOFlagNoUnmap != 0 {
		p.fallocate(q, tag, io, ptZeroRange, unix.FALLOC_FL_ZERO_RANGE)
	} else {
		p.fallocate(q, tag, io, ptZeroPunch, unix.FALLOC_FL_PUNCH_HOLE)
	}
}

func (p *Passthrough) fallocate(q *Queue, tag uint16, io *IO, op uint8, mode uint32) {
	s, err := q.TargetSQE(tag, op, 0)
	if err != nil {
		q.Complete(tag, -int32(unix.EIO))
		return
	}
	s.PrepFallocate(p.fd, mode|unix.FALLOC_FL_KEEP_SIZE, io.Offset, uint64(io.Length))
}

// Completion completes the request with the operation's result.
func (p *Passthrough) Completion(q *Queue, c TargetCompletion) {
	io := q.IO(c.Tag)
	res := c.Res
	switch c.Op {
	case ptRead:
		// Reading past the end of a file that is not a whole number of
		// blocks returns short: the rest reads as zeros.
		switch {
		case res >= 0 && res < int32(io.Length) && io.Fixed:
			// The reader's own pages, which the server cannot clear: an
			// error rather than stale data. (Only after the file shrank:
			// the device never covers a partial block.)
			res = -int32(unix.EIO)
		case res >= 0 && res < int32(io.Length):
			clear(io.Buf[res:])
			res = int32(io.Length)
		}
	case ptZeroRange:
		if res == -int32(unix.EOPNOTSUPP) {
			// tmpfs and some file systems lack ZERO_RANGE; a hole reads as
			// zeros too.
			p.fallocate(q, c.Tag, io, ptZeroPunch, unix.FALLOC_FL_PUNCH_HOLE)
			return
		}
	case ptDiscard:
		if res == -int32(unix.EOPNOTSUPP) {
			// Discard is advisory; the data may stay.
			res = 0
		}
	}
	q.Complete(c.Tag, res)
}
