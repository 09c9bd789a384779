package engine

// This file: the backup's CPU priority.
//
// The read gate (gate.go) holds image reads back once copy-on-write falls
// behind, but by then writers are parked. Before that, the CPUs are shared
// by thread: on 2 vCPUs a backup's reading threads, and on tmpfs (whose
// reads the kernel always hands to io-wq) up to 8 kernel workers per
// reading thread, outnumber the application's writing thread and the store
// worker. backup-scan (tmpfs, 2,000 writes/s, an unthrottled 1 MiB scan)
// measured origin-write p99 37-60x raw with the scan fanned out over io-wq,
// 3-10x with the fan-out held back while the application writes, the tail
// all in the first second of copy-on-write, when every write copies a chunk.
//
// So the threads that serve image reads run at a lower priority, nice
// Options.BackupNice (5), set on the thread before its first read: the
// io-wq workers a thread starts are copies of it and inherit its nice
// value, so the kernel's copying for the backup yields too. The scheduler
// is work-conserving: a backup alone gets every CPU; beside a busy
// application, the application's writes, chunk loads and stores run first.
// With it, backup-scan measured origin-write p99 0.93-1.90x raw with the
// backup at 0.72-0.82x raw (8 runs); nice 10 gave the same p99 with the
// backup at 0.65-0.75x, nice 3 let p99 reach 18x in one of two runs.
//
// Linux keeps the nice value per thread, so the thread must stay with its
// goroutine for good: a goroutine that locked its thread and exits without
// unlocking ends the thread, and the lowered priority goes with it.

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ServeBackup marks q as a backup's queue: the calling thread, q's owner,
// runs at CPU priority nice (1..19) from now on, and so do the io-wq
// workers it starts later; q's large image reads then fan out over io-wq
// even while the application writes (readGate.fanOut), since those workers
// yield to it. nice 0 leaves q as it is (Snapshot.BackupNice is 0 when the
// snapshot's writer priority is off).
//
// Call it on q's goroutine (a hosted queue: its host's) before its first
// request, with the goroutine locked to its thread (runtime.LockOSThread)
// and never unlocked: the thread must end with the goroutine, or Go hands
// the lowered priority to other goroutines.
func (q *Queue) ServeBackup(nice int) error {
	if nice == 0 {
		return nil
	}
	if nice < 1 || nice > maxBackupNice {
		return fmt.Errorf("%w: backup_nice %d: want 1..%d", ErrInvalid, nice, maxBackupNice)
	}
	// Linux: PRIO_PROCESS names one thread, by its thread id.
	tid := unix.Gettid()
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		return fmt.Errorf("engine: backup priority (nice %d): %w", nice, err)
	}
	// Workers the thread started before (the queue's eventfd read may have
	// gone to one) are lowered too.
	workers, err := ioWorkerThreads(tid)
	if err != nil {
		return fmt.Errorf("engine: backup priority: %w", err)
	}
	for _, w := range workers {
		if err := unix.Setpriority(unix.PRIO_PROCESS, w, nice); err != nil && err != unix.ESRCH {
			return fmt.Errorf("engine: backup priority of io-wq worker %d (nice %d): %w", w, nice, err)
		}
	}
	q.backup = true
	return nil
}

// maxBackupNice is the lowest priority there is (nice 19).
const maxBackupNice = 19

// ioWorkerThreads lists the io-wq workers of this process's thread tid:
// the kernel names them iou-wrk-<tid>.
func ioWorkerThreads(tid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	want := "iou-wrk-" + strconv.Itoa(tid)
	var out []int
	for _, e := range ents {
		comm, err := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
		if err != nil {
			continue // it ended meanwhile
		}
		if strings.TrimSpace(string(comm)) == want {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// BackupNice is the nice value for the threads serving this snapshot's
// image reads (Options.BackupNice), or 0 when its writer priority is off.
func (s *Snapshot) BackupNice() int {
	if s.opts.NoWriterPriority {
		return 0
	}
	return s.opts.BackupNice
}

// BackupNice is Snapshot.BackupNice of the image's snapshot: what a
// server of this image passes to Queue.ServeBackup.
func (img *Image) BackupNice() int { return img.area.snap.BackupNice() }
