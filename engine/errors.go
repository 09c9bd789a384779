package engine

import (
	"errors"

	"golang.org/x/sys/unix"
)

var (
	// ErrInvalid is bad input: options, sizes, offsets, paths.
	ErrInvalid = errors.New("engine: invalid argument")
	// ErrCorrupted is returned by image I/O on a device whose snapshot
	// overflowed or lost a chunk; never wrong data.
	ErrCorrupted = errors.New("engine: snapshot corrupted")
	// ErrClosed is returned for I/O after or during Destroy.
	ErrClosed = errors.New("engine: snapshot destroyed")
	// ErrWouldBlock is returned by a NoWait origin write that would have to
	// wait for a copy-on-write (blksnap's REQ_NOWAIT → EAGAIN).
	ErrWouldBlock = &wouldBlock{}
	// ErrNotTaken is returned for image I/O before Take.
	ErrNotTaken = errors.New("engine: snapshot not taken yet")
	// ErrShortIO is a read or write that moved fewer bytes than asked.
	ErrShortIO = errors.New("engine: short I/O")
)

type wouldBlock struct{}

func (*wouldBlock) Error() string        { return "engine: would block (EAGAIN)" }
func (*wouldBlock) Is(target error) bool { return target == unix.EAGAIN }
