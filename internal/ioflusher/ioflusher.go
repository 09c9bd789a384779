// Package ioflusher marks the calling thread as an I/O flusher
// (PR_SET_IO_FLUSHER, Linux 5.6), as ublksrv does for its queue threads:
// the kernel then allocates memory for the thread without starting I/O
// (PF_MEMALLOC_NOIO) and exempts it from dirty-page throttling
// (PF_LOCAL_THROTTLE). A thread that serves a block device (a ublk queue)
// or writes what such a device waits on (the engine's store workers) can
// otherwise deadlock reclaim under memory pressure: reclaim waits for the
// device's I/O, which waits for memory.
//
// It needs CAP_SYS_RESOURCE. Without it (or on an older kernel) Set fails
// and the caller goes on: the thread works as before, only without the
// reclaim guarantee. The first failure is kept for FirstError.
package ioflusher

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

var first struct {
	sync.Mutex
	err error
}

// Set marks the calling thread (lock the goroutine to it first, with
// runtime.LockOSThread, and keep it locked) as an I/O flusher.
func Set() error {
	if err := unix.Prctl(unix.PR_SET_IO_FLUSHER, 1, 0, 0, 0); err != nil {
		err = fmt.Errorf("PR_SET_IO_FLUSHER (needs CAP_SYS_RESOURCE and Linux 5.6): %w", err)
		first.Lock()
		if first.err == nil {
			first.err = err
		}
		first.Unlock()
		return err
	}
	return nil
}

// Clear takes the flag off the calling thread again, so that the thread
// can go back to running other goroutines (runtime.UnlockOSThread) without
// it.
func Clear() error {
	if err := unix.Prctl(unix.PR_SET_IO_FLUSHER, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_IO_FLUSHER 0: %w", err)
	}
	return nil
}

// Get reports whether the calling thread is an I/O flusher. It too needs
// CAP_SYS_RESOURCE.
func Get() (bool, error) {
	v, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_GET_IO_FLUSHER, 0, 0, 0, 0, 0)
	if errno != 0 {
		return false, fmt.Errorf("PR_GET_IO_FLUSHER: %w", errno)
	}
	return v == 1, nil
}

// FirstError is the first error Set returned in this process, or nil.
func FirstError() error {
	first.Lock()
	defer first.Unlock()
	return first.err
}

// The task flags PR_SET_IO_FLUSHER sets (include/linux/sched.h).
const (
	pfMemallocNoIO  = 0x00080000
	pfLocalThrottle = 0x00100000
)

// ThreadIsFlusher reads /proc/self/task/<tid>/stat and reports whether the
// thread tid of this process has both flags PR_SET_IO_FLUSHER sets: a check
// made from another thread, for tests.
func ThreadIsFlusher(tid int) (bool, error) {
	flags, err := threadFlags(tid)
	if err != nil {
		return false, err
	}
	const both = pfMemallocNoIO | pfLocalThrottle
	return flags&both == both, nil
}
