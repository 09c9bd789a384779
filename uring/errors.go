package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrUnavailable means io_uring cannot be used on this system at all.
	ErrUnavailable = errors.New("uring: io_uring unavailable")
	// ErrNotSupported means the kernel lacks an io_uring feature or opcode.
	ErrNotSupported = errors.New("uring: not supported by this kernel")
	// ErrTimeout is returned by WaitTimeout when the deadline passes first.
	ErrTimeout = errors.New("uring: wait timed out")
	// ErrClosed is returned by operations on a closed Ring.
	ErrClosed = errors.New("uring: ring closed")
	// ErrSQFull is returned when no SQE can be had even after submitting.
	ErrSQFull = errors.New("uring: submission queue full")
)

// OpError is a failed io_uring operation: a negative CQE result.
type OpError struct {
	Op    Op
	Errno unix.Errno
}

func (e *OpError) Error() string {
	return fmt.Sprintf("uring: %s: %v", strings.ToLower(e.Op.String()), e.Errno)
}

func (e *OpError) Unwrap() error { return e.Errno }

// ResultError turns a CQE result into an error naming the operation, or nil
// when res is not negative. It allocates only on failure.
func ResultError(op Op, res int32) error {
	if res >= 0 {
		return nil
	}
	return &OpError{Op: op, Errno: unix.Errno(-res)}
}

// setupError explains why io_uring_setup failed, naming the cause and the way
// to enable io_uring where that is possible.
func setupError(errno unix.Errno) error {
	switch errno {
	case unix.ENOSYS:
		return fmt.Errorf("%w: io_uring_setup returned ENOSYS: the kernel was built without CONFIG_IO_URING (needs Linux 5.1 or later with io_uring enabled)", ErrUnavailable)
	case unix.EPERM, unix.EACCES:
		disabled, _ := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
		switch strings.TrimSpace(string(disabled)) {
		case "2":
			return fmt.Errorf("%w: io_uring_setup returned %v: disabled by sysctl kernel.io_uring_disabled=2; enable it with 'sysctl kernel.io_uring_disabled=0'", ErrUnavailable, errno)
		case "1":
			return fmt.Errorf("%w: io_uring_setup returned %v: kernel.io_uring_disabled=1 limits io_uring to root and the group in kernel.io_uring_group; run as root, join that group, or set 'sysctl kernel.io_uring_disabled=0'", ErrUnavailable, errno)
		}
		return fmt.Errorf("%w: io_uring_setup returned %v: probably blocked by a seccomp filter (container runtimes block io_uring by default); allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp profile", ErrUnavailable, errno)
	case unix.EINVAL:
		return fmt.Errorf("%w: io_uring_setup returned EINVAL: a requested setup flag is not supported by this kernel", ErrNotSupported)
	}
	return fmt.Errorf("uring: io_uring_setup: %w", errno)
}
