package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// Helpers shared by the engine's tests. Names carry a "tu" prefix so they
// do not collide with helpers in other test files.

var tuFileSeq atomic.Int64

// tuOrigin creates a regular file of size bytes filled from seed in dir (a
// fresh temporary directory if empty) and opens it as a Device, closed at
// cleanup.
func tuOrigin(t testing.TB, dir string, size int64, seed int64) (*Device, []byte) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	path := filepath.Join(dir, fmt.Sprintf("origin-%d", tuFileSeq.Add(1)))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, data
}

// tuOpts are small options that make chunk boundaries and the in-memory
// budget easy to hit.
func tuOpts(shift uint, inQueue int) Options {
	return Options{ChunkMinimumShift: shift, ChunkMaximumInQueue: inQueue, DiffStorageMinimum: 1 << 20}
}

// tuSnap creates a snapshot destroyed (and waited for) at cleanup. An empty
// storage path means an O_TMPFILE in a temporary directory.
func tuSnap(t testing.TB, devs []*Device, storage StorageConfig, opts Options) *Snapshot {
	t.Helper()
	if storage.Path == "" {
		storage.Path = t.TempDir()
	}
	if storage.Limit == 0 {
		storage.Limit = 1 << 30
	}
	s, err := NewSnapshot(devs, storage, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tuDestroy(t, s) })
	return s
}

// tuDestroy destroys s and waits until it released everything.
func tuDestroy(t testing.TB, s *Snapshot) {
	t.Helper()
	if err := s.Destroy(); err != nil {
		t.Errorf("destroy: %v", err)
	}
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Errorf("snapshot not released 20 s after Destroy (a request still holds it)")
	}
	if err := s.Err(); err != nil {
		t.Errorf("snapshot release: %v", err)
	}
}

// asyncQ is a Queue with pinned buffers, one slot per request in flight.
type asyncQ struct {
	t         interface{ Errorf(string, ...any) }
	q         *Queue
	arena     *uring.Arena
	slotBytes int
	reqs      []Request
	out       []*Request
}

func newAsyncQ(t testing.TB, depth, slotBytes int) *asyncQ {
	t.Helper()
	q, err := NewQueue(depth)
	if err != nil {
		t.Fatal(err)
	}
	arena, err := uring.NewArena(depth * slotBytes)
	if err != nil {
		q.Close()
		t.Fatal(err)
	}
	a := &asyncQ{t: t, q: q, arena: arena, slotBytes: slotBytes, reqs: make([]Request, depth), out: make([]*Request, depth)}
	t.Cleanup(a.close)
	return a
}

func (a *asyncQ) close() {
	if a.q == nil {
		return
	}
	// A test that failed part way may leave requests in flight: complete
	// them first (a queue must not close under the kernel's feet).
	deadline := time.Now().Add(10 * time.Second)
	for a.q.InFlight() != 0 && time.Now().Before(deadline) {
		if _, err := a.q.PollTimeout(a.out, 1, 100*time.Millisecond); err != nil {
			break
		}
	}
	if n := a.q.InFlight(); n != 0 {
		a.t.Errorf("a queue still has %d requests in flight at cleanup: leaking it", n)
		a.q = nil
		return
	}
	a.q.Close()
	a.arena.Close()
	a.q = nil
}

// buf is slot i's pinned buffer, n bytes long.
func (a *asyncQ) buf(i, n int) []byte {
	if n > a.slotBytes {
		panic(fmt.Sprintf("test bug: %d bytes in a %d-byte slot", n, a.slotBytes))
	}
	return a.arena.Slice(i*a.slotBytes, n)
}

// run submits reqs and polls until every one of them completed. It returns
// the first Submit error (requests submitted before it are still waited for).
func (a *asyncQ) run(reqs ...*Request) error {
	var subErr error
	submitted := 0
	for _, r := range reqs {
		if err := a.q.Submit(r); err != nil {
			subErr = err
			break
		}
		submitted++
	}
	for done := 0; done < submitted; {
		n, err := a.q.Poll(a.out, 1)
		if err != nil {
			return err
		}
		done += n
	}
	return subErr
}

// storedDeadline bounds waitStored: the store workers of a healthy
// snapshot empty its buffers in far less, even behind a benchmark's prefill.
const storedDeadline = 60 * time.Second

// fataler is what waitStored needs of a test: testing.TB or rapid's T.
type fataler interface {
	Fatalf(format string, args ...any)
}

// waitStored waits until no chunk is held in memory (all stored or
// failed), so that image reads go to the difference storage; it fails t
// after storedDeadline. The one "wait until stored" of the engine's tests.
func waitStored(t fataler, s *Snapshot) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	deadline := time.Now().Add(storedDeadline)
	for s.Stats().ChunksInMemory > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("chunks still in memory after %v: %+v", storedDeadline, s.Stats())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// tuDrainEvents returns the events queued now, without waiting (and stops
// at the end of a closed channel).
func tuDrainEvents(s *Snapshot) []Event {
	var evs []Event
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				return evs
			}
			evs = append(evs, e)
		default:
			return evs
		}
	}
}

// tuWaitEvent waits for an event of kind (and device, if not empty); it
// returns it and every event seen on the way.
func tuWaitEvent(t testing.TB, s *Snapshot, kind EventKind, device string) (Event, []Event) {
	t.Helper()
	var seen []Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				t.Fatalf("no %s event for %q before the snapshot was finalized; saw %v", kind, device, seen)
			}
			seen = append(seen, e)
			if e.Kind == kind && (device == "" || e.Device == device) {
				return e, seen
			}
		case <-timeout:
			t.Fatalf("no %s event for %q within 10 s; saw %v", kind, device, seen)
		}
	}
}

func tuCountKind(evs []Event, kind EventKind, device string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind && (device == "" || e.Device == device) {
			n++
		}
	}
	return n
}

// tuRead reads n bytes at off through the synchronous API.
func tuRead(t testing.TB, r interface {
	ReadAt([]byte, int64) (int, error)
}, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if got, err := r.ReadAt(buf, off); err != nil || got != n {
		t.Fatalf("read %d bytes at %d: got %d, %v", n, off, got, err)
	}
	return buf
}

// tuMustEqual fails with the first differing offset.
func tuMustEqual(t testing.TB, what string, got, want []byte, base int64) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: first difference at offset %d (sector %d): got %#x, want %#x", what, base+int64(i), (base+int64(i))/512, got[i], want[i])
		}
	}
}

// tuIsIOErr reports whether err is one of the errors the fault plans inject.
func tuIsIOErr(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.ENOSPC) || errors.Is(err, ErrShortIO)
}

// tuFDs counts the process's open file descriptors.
func tuFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// tuPattern fills n bytes from a seed: distinct data per write.
func tuPattern(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}
