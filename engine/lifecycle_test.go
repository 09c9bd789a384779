package engine

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/internal/ioflusher"
)

// TestEventsClosedAtFinalize: a consumer ranging over Events ends once the
// snapshot is finalized, after reading what was queued.
func TestEventsClosedAtFinalize(t *testing.T) {
	d, _ := tuOrigin(t, "", 1<<20, 1)
	s, err := NewSnapshot([]*Device{d}, StorageConfig{Path: t.TempDir(), Limit: 1 << 30}, tuOpts(14, 4))
	if err != nil {
		t.Fatal(err)
	}
	s.events.raise(Event{Kind: EventLowFreeSpace})
	got := make(chan int, 1)
	go func() {
		n := 0
		for range s.Events() {
			n++
		}
		got <- n
	}()
	tuDestroy(t, s)
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("read %d events before the channel closed, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Events not closed 10 s after the snapshot was finalized")
	}
	s.events.raise(Event{Kind: EventNoSpace}) // after close: dropped, no panic
	if s.DroppedEvents() != 1 {
		t.Fatalf("dropped %d events after close, want 1", s.DroppedEvents())
	}
}

// TestTakeContextTimeout: a Take whose in-flight write is never polled
// fails with context.DeadlineExceeded, lifts its barrier (a write held by it
// goes on, uncopied), and a later Take succeeds.
func TestTakeContextTimeout(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 16*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
	q1 := newAsyncQ(t, 1, chunk)
	w1 := &Request{Op: OpOriginWrite, Device: d, Off: 0, Buf: q1.buf(0, chunk)}
	copy(w1.Buf, tuPattern(chunk, 2))
	if err := q1.q.Submit(w1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.TakeContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TakeContext with a write never polled: %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("TakeContext took %v past a 50 ms deadline", el)
	}
	if d.barrier.Load() {
		t.Fatal("barrier still up after a failed Take")
	}
	if n, err := q1.q.Poll(q1.out, 1); err != nil || n != 1 || w1.Err != nil {
		t.Fatalf("w1: %d polled, %v, %v", n, err, w1.Err)
	}
	if w1.Copied {
		t.Fatal("a write during a failed Take was copied")
	}
	if err := s.Take(); err != nil {
		t.Fatalf("Take after a failed one: %v", err)
	}
	tuMustEqual(t, "image after the failed and the good Take", tuRead(t, s.Image(d), chunk, chunk), data[chunk:2*chunk], chunk)
}

// TestQueueCloseReleases: Close completes what its requests have in the
// kernel and fails the requests left waiting with ErrQueueClosed, releasing
// their snapshot references: Done fires after Destroy.
func TestQueueCloseReleases(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 16*chunk, 1)
	s, err := NewSnapshot([]*Device{d}, StorageConfig{Path: t.TempDir(), Limit: 1 << 30}, tuOpts(shift, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	q1, err := NewQueue(1)
	if err != nil {
		t.Fatal(err)
	}
	q2 := newAsyncQ(t, 1, chunk)
	arena := newAsyncQ(t, 1, chunk) // only for its pinned buffer
	// w loads chunk 3 (not polled: the chunk stays loading); rd parks on it.
	w := &Request{Op: OpOriginWrite, Device: d, Off: 3 * chunk, Buf: arena.buf(0, chunk)}
	copy(w.Buf, tuPattern(chunk, 7))
	if err := q1.Submit(w); err != nil {
		t.Fatal(err)
	}
	rd := &Request{Op: OpImageRead, Image: s.Image(d), Off: 3 * chunk, Buf: q2.buf(0, chunk)}
	if err := q2.q.Submit(rd); err != nil {
		t.Fatal(err)
	}
	if rd.state != reqParked {
		t.Fatalf("image read on a loading chunk is %s, want parked", rd.state)
	}
	if err := q2.q.Close(); err != nil {
		t.Fatalf("close a queue holding a parked read: %v", err)
	}
	if !errors.Is(rd.Err, ErrQueueClosed) {
		t.Fatalf("parked read after Close: %v, want ErrQueueClosed", rd.Err)
	}
	if rd.state != reqIdle {
		t.Fatalf("a request Close failed is %s, want idle (the caller's again)", rd.state)
	}
	if err := q2.q.Submit(rd); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Submit on a closed queue: %v", err)
	}
	q2.q = nil // closed here, not at cleanup
	// q1's load and then its write are in the kernel: Close completes them.
	if err := q1.Close(); err != nil {
		t.Fatalf("close a queue with I/O in flight: %v", err)
	}
	if w.Err != nil || !w.Copied {
		t.Fatalf("write completed by Close: err %v, copied %v", w.Err, w.Copied)
	}
	tuMustEqual(t, "image of the chunk the write copied", tuRead(t, s.Image(d), 3*chunk, chunk), data[3*chunk:4*chunk], 3*chunk)
	tuDestroy(t, s)
}

// TestValidateReportsAll: Validate names every bad option at once, each
// wrapping ErrInvalid; one bad option reads as before.
func TestValidateReportsAll(t *testing.T) {
	o := Options{ChunkMaximumInQueue: 5000, StoreWorkers: 65, FreeDiffBufferPoolSize: -1}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate: %v, want ErrInvalid", err)
	}
	for _, name := range []string{"chunk_maximum_in_queue 5000", "store_workers 65", "free_diff_buffer_pool_size -1"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Validate's error does not name %q: %v", name, err)
		}
	}
	one := Options{StoreWorkers: 65}
	one.EnsureDefaults()
	if got, want := one.Validate().Error(), "engine: invalid argument: store_workers 65: want 1..64"; got != want {
		t.Errorf("one problem: %q, want %q", got, want)
	}
}

// TestStoreWorkersIOFlusher: the store workers run as I/O flushers
// (PR_SET_IO_FLUSHER) where the process may set it (CAP_SYS_RESOURCE: root
// in the VM), as /proc shows from this thread; elsewhere they run anyway.
func TestStoreWorkersIOFlusher(t *testing.T) {
	d, _ := tuOrigin(t, "", 1<<20, 1)
	opts := tuOpts(14, 4)
	opts.StoreWorkers = 2
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	var tids []int
	deadline := time.Now().Add(10 * time.Second)
	for len(tids) < opts.StoreWorkers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d store workers started in 10 s", len(tids), opts.StoreWorkers)
		}
		time.Sleep(time.Millisecond)
		s.workerTIDs.Lock()
		tids = append([]int(nil), s.workerTIDs.ids...)
		s.workerTIDs.Unlock()
	}
	if err := ioflusher.FirstError(); err != nil {
		if os.Getenv("SNAPRING_VM") == "1" {
			t.Fatalf("PR_SET_IO_FLUSHER in the VM: %v", err)
		}
		t.Skipf("store workers run without the flag here: %v", err)
	}
	for _, tid := range tids {
		if ok, err := ioflusher.ThreadIsFlusher(tid); err != nil || !ok {
			t.Errorf("store worker thread %d: I/O flusher %v, %v", tid, ok, err)
		}
	}
}
