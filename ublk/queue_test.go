package ublk

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// hostQueue builds a Queue by hand on this host's io_uring, with a Go slice
// standing in for the driver's descriptor array and /dev/null standing in
// for /dev/ublkcN (its URING_CMDs fail, its writes succeed), so that the
// request path can run without the driver.
func hostQueue(t *testing.T, target Target, userCopy bool) *Queue {
	t.Helper()
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(null) })
	const depth, maxIO = 4, 64 << 10
	q := newQueue(queueConfig{depth: depth, maxIOBytes: maxIO, userCopy: userCopy, encode: true, charFd: null, target: target})
	if q.ring, err = uring.New(uring.Options{Entries: 16}); err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	t.Cleanup(func() { q.ring.Close() })
	if q.arena, err = uring.NewArena(depth * maxIO); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.arena.Close() })
	q.descs = make([]ioDesc, depth)
	q.ios = make([]IO, depth)
	q.state = make([]tagState, depth)
	q.cqes = make([]uring.CQE, drainBatch)
	q.liveTags = depth
	return q
}

// serveOne delivers a request for tag as a completed fetch would, and runs
// the ring until the queue has sent the tag's COMMIT_AND_FETCH_REQ, whose
// completion (an error from /dev/null) it swallows. It returns how many ring
// completions it dispatched.
func serveOne(t *testing.T, q *Queue, tag uint16, d ioDesc) int {
	q.descs[tag] = d
	q.dispatch(&uring.CQE{UserData: packUserData(tag, udCmd, 0), Res: ioResOK})
	n := 0
	for q.state[tag] != tagFetching {
		if _, err := q.ring.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		for i := range q.ring.Drain(q.cqes) {
			q.dispatch(&q.cqes[i])
			n++
		}
	}
	// The commit went to /dev/null; take its completion off the ring.
	if _, err := q.ring.SubmitAndWait(1); err != nil {
		t.Fatal(err)
	}
	if got := q.ring.Drain(q.cqes[:1]); got != 1 || q.cqes[0].UserData != packUserData(tag, udCmd, 0) {
		t.Fatalf("expected the commit's completion, got %d: %+v", got, q.cqes[0])
	}
	return n
}

func TestQueueRequestPath(t *testing.T) {
	path, data := backingFile(t, 1<<20, 11)
	pt, err := OpenPassthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	for _, userCopy := range []bool{false, true} {
		q := hostQueue(t, pt, userCopy)
		read := ioDesc{opFlags: uint32(OpRead), nrSectors: 16, startSector: 8}
		n := serveOne(t, q, 2, read)
		// READ: the backend read, plus the copy to the driver with USER_COPY.
		if want := map[bool]int{false: 1, true: 2}[userCopy]; n != want {
			t.Errorf("userCopy=%v: READ took %d completions, want %d", userCopy, n, want)
		}
		if got := q.Buffer(2)[:8192]; firstDiff(got, data[4096:4096+8192]) >= 0 {
			t.Errorf("userCopy=%v: READ did not fill the tag's buffer from the file", userCopy)
		}
		if q.busyTags != 0 || q.inflightTarget != 0 || q.inflightCopies != 0 || q.err != nil {
			t.Errorf("userCopy=%v: after READ busy %d target %d copies %d err %v", userCopy, q.busyTags, q.inflightTarget, q.inflightCopies, q.err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			serveOne(t, q, 1, read)
			serveOne(t, q, 3, ioDesc{opFlags: uint32(OpFlush)})
		})
		if allocs != 0 {
			t.Errorf("userCopy=%v: %.1f allocations per request cycle, want 0", userCopy, allocs)
		}
	}
}

func TestQueueAbortAndStop(t *testing.T) {
	q := hostQueue(t, Null{}, false)
	if q.finished() {
		t.Fatal("finished with live tags")
	}
	q.dispatch(&uring.CQE{UserData: packUserData(0, udCmd, 0), Res: ioResAbort})
	q.stopping.Store(true)
	if !q.finished() {
		t.Error("stopping with no busy tag should finish")
	}
	q.stopping.Store(false)
	for tag := uint16(1); tag < 4; tag++ {
		q.dispatch(&uring.CQE{UserData: packUserData(tag, udCmd, 0), Res: ioResAbort})
	}
	if q.liveTags != 0 || !q.finished() || q.err != nil {
		t.Errorf("all tags aborted: live %d finished %v err %v", q.liveTags, q.finished(), q.err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Complete of a tag the target does not own did not panic")
		}
	}()
	q.Complete(0, 0)
}
