package ublk

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/internal/ioflusher"
)

// TestVMIOFlusher: every ublk queue thread (origin and image) and the
// engine's store workers run as I/O flushers (PR_SET_IO_FLUSHER), as
// /proc/self/task/<tid>/stat's flags show from this thread; once the
// devices and the snapshot are gone, no flusher thread is left (the threads
// exit with their goroutines instead of carrying the flag to others):
// the count is back where it was before the test.
func TestVMIOFlusher(t *testing.T) {
	requireUblk(t)
	if err := ioflusher.FirstError(); err != nil && os.Getenv("SNAPRING_VM") != "1" {
		t.Skipf("no PR_SET_IO_FLUSHER here: %v", err)
	}
	// Threads an earlier test left (flagged, and still winding down) are
	// not this test's: count relative to them.
	baseline := flusherThreads(t, map[int]bool{os.Getpid(): true})
	const workers = 2
	f := newSnapFixture(t, 4<<20, 64<<20, engine.Options{ChunkMinimumShift: 16, StoreWorkers: workers})
	f.take(t)
	if err := ioflusher.FirstError(); err != nil {
		t.Fatalf("PR_SET_IO_FLUSHER failed (as root in the VM it must not): %v", err)
	}
	queueTIDs := map[int]bool{}
	for _, d := range []*Device{f.origin, f.image} {
		for _, q := range d.queues {
			ok, err := ioflusher.ThreadIsFlusher(q.tid)
			if err != nil || !ok {
				t.Fatalf("%s queue %d (thread %d): I/O flusher %v, %v", d.Name(), q.ID(), q.tid, ok, err)
			}
			queueTIDs[q.tid] = true
		}
	}
	// The store workers start on their own: wait (bounded) until they are
	// all there among this process's flusher threads.
	deadline := time.Now().Add(10 * time.Second)
	for {
		others := flusherThreads(t, queueTIDs) - baseline // the main thread may be a store worker's
		if others >= workers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d I/O-flusher threads besides the ublk queues, want %d store workers", others, workers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.close()
	// A locked goroutine that exits on the main thread does not end it: Go
	// parks ("wedges") the main thread for good instead, flag and all, and
	// it runs no goroutine again. Every other thread must be gone.
	mainThread := map[int]bool{os.Getpid(): true}
	deadline = time.Now().Add(10 * time.Second)
	for flusherThreads(t, mainThread) > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d I/O-flusher threads besides the main one left after the devices and snapshot were closed, %d before",
				flusherThreads(t, mainThread), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// flusherThreads counts this process's threads flagged as I/O flushers,
// except those in skip.
func flusherThreads(t *testing.T, skip map[int]bool) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil || skip[tid] {
			continue
		}
		if ok, err := ioflusher.ThreadIsFlusher(tid); err == nil && ok {
			n++
		}
	}
	return n
}
