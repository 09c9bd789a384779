package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// faultKinds are the injected failures: errnos and a short transfer.
var faultKinds = []struct {
	name  string
	errno unix.Errno
	short bool
}{
	{"EIO", unix.EIO, false},
	{"ENOSPC", unix.ENOSPC, false},
	{"short", 0, true},
}

func wantFaultErr(t *testing.T, what string, err error, errno unix.Errno, short bool) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("%s: no error", what)
	case short && !errors.Is(err, ErrShortIO):
		t.Fatalf("%s: %v, want ErrShortIO", what, err)
	case !short && !errors.Is(err, errno):
		t.Fatalf("%s: %v, want %v", what, err, errno)
	}
}

// A failed copy-on-write read of the original fails the origin write and
// leaves the original (and the image) unmodified; the chunk goes back to new
// and the next write copies it.
func TestFaultCOWReadFailsWrite(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	for _, fk := range faultKinds {
		t.Run(fk.name, func(t *testing.T) {
			plan := &FaultPlan{}
			d, data := tuOrigin(t, "", 64*chunk, 1)
			opts := tuOpts(shift, 4)
			opts.Faults = plan
			s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
			if err := s.Take(); err != nil {
				t.Fatal(err)
			}
			img := s.Image(d)
			// The write straddles chunks 2 and 3; only chunk 3's copy fails.
			plan.Add(Fault{Target: FaultOrigin, Device: d, Off: 3 * chunk, Len: chunk, Errno: fk.errno, Short: fk.short, Times: 1})
			w := tuPattern(8192, 2)
			off := int64(3*chunk - 4096)
			_, err := d.WriteAt(w, off)
			wantFaultErr(t, "origin write over a failing copy", err, fk.errno, fk.short)
			if plan.Hits() != 1 {
				t.Fatalf("fault hits %d, want 1", plan.Hits())
			}
			tuMustEqual(t, "origin after a failed copy-on-write", tuRead(t, d, 0, len(data)), data, 0)
			tuMustEqual(t, "image after a failed copy-on-write", tuRead(t, img, 0, len(data)), data, 0)
			if st := s.Stats(); st.Corrupted || st.ChunksFailed != 0 {
				t.Fatalf("a failed read of the original corrupted the snapshot: %+v", st)
			}
			a := s.areas[0]
			a.chunks[3].mu.Lock()
			st3 := a.chunks[3].state
			a.chunks[3].mu.Unlock()
			if st3 != stateNew {
				t.Fatalf("chunk 3 state %d after its failed load, want new", st3)
			}
			// The fault is spent: the write now copies and goes through.
			if _, err := d.WriteAt(w, off); err != nil {
				t.Fatal(err)
			}
			want := append([]byte(nil), data...)
			copy(want[off:], w)
			tuMustEqual(t, "origin", tuRead(t, d, 0, len(data)), want, 0)
			tuMustEqual(t, "image", tuRead(t, img, 0, len(data)), data, 0)
			waitStored(t, s)
			tuMustEqual(t, "image from the difference storage", tuRead(t, img, 0, len(data)), data, 0)
			if n := tuCountKind(tuDrainEvents(s), EventCorrupted, ""); n != 0 {
				t.Fatalf("%d corrupted events", n)
			}
		})
	}
}

// A failed or short write to the difference storage fails the chunk and
// marks that device's image corrupted (ErrCorrupted on every image read and
// write of it, EventCorrupted once); the other device of the snapshot and
// every origin keep working.
func TestFaultDiffWriteCorruptsOneDevice(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	for _, fk := range faultKinds {
		t.Run(fk.name, func(t *testing.T) {
			plan := &FaultPlan{}
			dir := t.TempDir()
			a, dataA := tuOrigin(t, dir, 32*chunk, 1)
			b, dataB := tuOrigin(t, dir, 32*chunk+512, 2)
			opts := tuOpts(shift, 4)
			opts.Faults = plan
			s := tuSnap(t, []*Device{a, b}, StorageConfig{}, opts)
			if err := s.Take(); err != nil {
				t.Fatal(err)
			}
			imgA, imgB := s.Image(a), s.Image(b)
			plan.Add(Fault{Target: FaultDiffStorage, Write: true, Errno: fk.errno, Short: fk.short, Times: 1})

			// The origin write succeeds: storing happens after it.
			wA := tuPattern(4096, 3)
			if _, err := a.WriteAt(wA, chunk); err != nil {
				t.Fatalf("origin write: %v", err)
			}
			ev, _ := tuWaitEvent(t, s, EventCorrupted, a.Path())
			wantFaultErr(t, "corrupted event", ev.Err, fk.errno, fk.short)
			waitStored(t, s)
			for _, off := range []int64{0, chunk, 5 * chunk} {
				if _, err := imgA.ReadAt(make([]byte, 4096), off); !errors.Is(err, ErrCorrupted) {
					t.Fatalf("image A read at %d: %v, want ErrCorrupted", off, err)
				}
			}
			if _, err := imgA.WriteAt(make([]byte, 4096), 7*chunk); !errors.Is(err, ErrCorrupted) {
				t.Fatalf("image A write: %v, want ErrCorrupted", err)
			}
			st := s.Stats()
			if !st.Corrupted || st.ChunksFailed != 1 {
				t.Fatalf("stats %+v, want corrupted with one failed chunk", st)
			}

			// Origin A keeps every acknowledged write.
			wantA := append([]byte(nil), dataA...)
			copy(wantA[chunk:], wA)
			w2 := tuPattern(3*chunk, 4)
			if _, err := a.WriteAt(w2, 10*chunk-512); err != nil {
				t.Fatalf("origin write to a corrupted device: %v", err)
			}
			copy(wantA[10*chunk-512:], w2)
			tuMustEqual(t, "origin A", tuRead(t, a, 0, len(dataA)), wantA, 0)

			// Device B is not affected: its copies still work.
			wB := tuPattern(2*chunk, 5)
			if _, err := b.WriteAt(wB, 3*chunk-1024); err != nil {
				t.Fatal(err)
			}
			waitStored(t, s)
			tuMustEqual(t, "image B", tuRead(t, imgB, 0, len(dataB)), dataB, 0)
			wantB := append([]byte(nil), dataB...)
			copy(wantB[3*chunk-1024:], wB)
			tuMustEqual(t, "origin B", tuRead(t, b, 0, len(dataB)), wantB, 0)
			iw := tuPattern(1024, 6)
			if _, err := imgB.WriteAt(iw, 4*chunk-512); err != nil {
				t.Fatalf("image B write: %v", err)
			}
			copy(dataB[4*chunk-512:], iw)
			tuMustEqual(t, "image B after an image write", tuRead(t, imgB, 0, len(dataB)), dataB, 0)

			evs := tuDrainEvents(s)
			if n := tuCountKind(evs, EventCorrupted, ""); n != 0 {
				t.Fatalf("more corrupted events: %v", evs)
			}
			if st := s.Stats(); st.ChunksFailed != 1 {
				t.Fatalf("stats %+v, want one failed chunk", st)
			}
		})
	}
}

// A failed read of the difference storage fails the image read (an error,
// never bytes) and marks the image corrupted.
func TestFaultDiffReadFailsImageRead(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	for _, fk := range faultKinds {
		t.Run(fk.name, func(t *testing.T) {
			plan := &FaultPlan{}
			d, data := tuOrigin(t, "", 16*chunk, 1)
			opts := tuOpts(shift, 4)
			opts.Faults = plan
			s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
			if err := s.Take(); err != nil {
				t.Fatal(err)
			}
			img := s.Image(d)
			if _, err := d.WriteAt(tuPattern(chunk, 2), 2*chunk); err != nil {
				t.Fatal(err)
			}
			waitStored(t, s)
			tuMustEqual(t, "image", tuRead(t, img, 0, len(data)), data, 0)
			plan.Add(Fault{Target: FaultDiffStorage, Errno: fk.errno, Short: fk.short, Times: 1})
			_, err := img.ReadAt(make([]byte, 2*chunk), 2*chunk-chunk/2)
			wantFaultErr(t, "image read of a stored chunk", err, fk.errno, fk.short)
			tuWaitEvent(t, s, EventCorrupted, d.Path())
			if _, err := img.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrCorrupted) {
				t.Fatalf("image read after a failed storage read: %v, want ErrCorrupted", err)
			}
		})
	}
}

// A snapshot whose storage limit is too small overflows: EventNoSpace and
// EventOverflow, the image of the device that needed space is corrupted, and
// the original never loses an acknowledged write. A device of the same
// snapshot that needed no space keeps a valid image until it does.
func TestOverflow(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	dir := t.TempDir()
	a, dataA := tuOrigin(t, dir, 64*chunk, 1)
	b, dataB := tuOrigin(t, dir, 8*chunk, 2)
	s := tuSnap(t, []*Device{a, b}, StorageConfig{Limit: 4 * chunk}, tuOpts(shift, 2))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	imgA, imgB := s.Image(a), s.Image(b)
	want := append([]byte(nil), dataA...)
	for i := int64(0); i < 24; i++ {
		w := tuPattern(chunk, 100+i)
		off := i*2*chunk + chunk/2 // straddles chunks 2i and 2i+1
		if off+chunk > int64(len(want)) {
			off = int64(len(want)) - chunk
		}
		if _, err := a.WriteAt(w, off); err != nil {
			t.Fatalf("origin write %d: %v", i, err)
		}
		copy(want[off:], w)
		tuMustEqual(t, fmt.Sprintf("origin after write %d", i), tuRead(t, a, off, chunk), w, off)
	}
	_, seen := tuWaitEvent(t, s, EventCorrupted, a.Path())
	waitStored(t, s)
	seen = append(seen, tuDrainEvents(s)...)
	if tuCountKind(seen, EventNoSpace, "") != 1 {
		t.Errorf("no-space events: %v, want one", seen)
	}
	if n := tuCountKind(seen, EventOverflow, a.Path()); n < 1 || int64(n) != s.Stats().ChunksFailed {
		t.Errorf("%d overflow events, %d failed chunks: %v", n, s.Stats().ChunksFailed, seen)
	}
	for _, e := range seen {
		if e.Kind == EventOverflow && e.RequestedBytes != chunk {
			t.Errorf("overflow event %v: want requested=%d", e, chunk)
		}
	}
	if _, err := imgA.ReadAt(make([]byte, 512), 40*chunk); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("image A read: %v, want ErrCorrupted", err)
	}
	tuMustEqual(t, "origin A", tuRead(t, a, 0, len(want)), want, 0)
	// B needed nothing yet.
	tuMustEqual(t, "image B", tuRead(t, imgB, 0, len(dataB)), dataB, 0)
	// Now B needs space too: it overflows as well, and its origin still
	// takes the write.
	wB := tuPattern(chunk, 7)
	if _, err := b.WriteAt(wB, 0); err != nil {
		t.Fatal(err)
	}
	tuWaitEvent(t, s, EventCorrupted, b.Path())
	if _, err := imgB.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("image B read after its overflow: %v", err)
	}
	tuMustEqual(t, "origin B", tuRead(t, b, 0, chunk), wB, 0)
	if used, _, limit := s.storage.stats(); used > limit {
		t.Fatalf("used %d beyond the limit %d", used, limit)
	}
}

// A growable storage file starts at one portion and grows by fallocate one
// portion at a time when what is left drops below half a portion, up to
// its limit: EventLowFreeSpace at each growth and once at the limit,
// EventNoSpace when it is full, EventOverflow for the chunk that finds no
// room.
func TestLowFreeSpaceGrowth(t *testing.T) {
	const shift, chunk = 16, 1 << 16
	const portion = 1 << 20
	dir := t.TempDir()
	d, data := tuOrigin(t, dir, 64*chunk, 1)
	storePath := filepath.Join(dir, "diff")
	s := tuSnap(t, []*Device{d}, StorageConfig{Path: storePath, Limit: 3 * portion}, tuOpts(shift, 4))
	fileSize := func() int64 {
		fi, err := os.Stat(storePath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if st := s.Stats(); st.DiffCapacityBytes != portion || st.DiffLimitBytes != 3*portion || fileSize() != portion {
		t.Fatalf("initial capacity %d (file %d), limit %d: want one portion", st.DiffCapacityBytes, fileSize(), st.DiffLimitBytes)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	// Expected, for the k-th chunk stored (64 KiB each): growth when what
	// is left drops below 512 KiB.
	type step struct {
		capacity int64
		low, no  int
	}
	expect := func(k int64) step {
		switch {
		case k < 9: // 1 MiB - 9*64 KiB = 448 KiB < 512 KiB
			return step{portion, 0, 0}
		case k < 25: // 2 MiB - 25*64 KiB = 448 KiB
			return step{2 * portion, 1, 0}
		case k < 41:
			return step{3 * portion, 2, 0}
		case k < 48: // at the limit: low once more, no growth
			return step{3 * portion, 3, 0}
		default: // 48 chunks fill 3 MiB
			return step{3 * portion, 3, 1}
		}
	}
	var evs []Event
	for k := int64(1); k <= 50; k++ {
		if _, err := d.WriteAt(tuPattern(4096, k), (k-1)*chunk); err != nil {
			t.Fatal(err)
		}
		waitStored(t, s)
		evs = append(evs, tuDrainEvents(s)...)
		if k > 48 {
			continue
		}
		want := expect(k)
		// The storage grows in the background: give it a moment.
		deadline := time.Now().Add(10 * time.Second)
		for s.Stats().DiffCapacityBytes != want.capacity && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		evs = append(evs, tuDrainEvents(s)...)
		st := s.Stats()
		if st.DiffUsedBytes != k*chunk || st.DiffCapacityBytes != want.capacity || fileSize() != want.capacity ||
			tuCountKind(evs, EventLowFreeSpace, "") != want.low || tuCountKind(evs, EventNoSpace, "") != want.no {
			t.Fatalf("after %d chunks: used %d, capacity %d, file %d, events %v; want capacity %d, %d low, %d no-space",
				k, st.DiffUsedBytes, st.DiffCapacityBytes, fileSize(), evs, want.capacity, want.low, want.no)
		}
		if st.Corrupted {
			t.Fatalf("corrupted after %d chunks", k)
		}
	}
	if tuCountKind(evs, EventCorrupted, d.Path()) != 1 || tuCountKind(evs, EventOverflow, d.Path()) != 1 ||
		tuCountKind(evs, EventNoSpace, "") != 1 {
		t.Fatalf("events %v: want one overflow (chunk 49: chunk 50 is not copied once corrupted), one corrupted, one no-space", evs)
	}
	for _, e := range evs {
		if e.Kind == EventLowFreeSpace && e.RequestedBytes != portion {
			t.Fatalf("low-free-space event %v: want requested=%d", e, portion)
		}
	}
	if st := s.Stats(); st.DiffCapacityBytes != 3*portion || st.DiffUsedBytes != 48*chunk || fileSize() != 3*portion {
		t.Fatalf("grew past the limit: %+v, file %d", st, fileSize())
	}
	_ = data
}

// With fixed-size storage (at its limit), low free space is raised once;
// AppendStorage clears the condition, the allocator moves on to the new
// piece, and the event comes again when that runs low.
func TestAppendStorageClearsLowSpace(t *testing.T) {
	const shift, chunk = 16, 1 << 16
	const portion = 1 << 20
	dir := t.TempDir()
	d, data := tuOrigin(t, dir, 40*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: portion}, tuOpts(shift, 4))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	write := func(k int64) {
		t.Helper()
		if _, err := d.WriteAt(tuPattern(512, k), k*chunk); err != nil {
			t.Fatal(err)
		}
		waitStored(t, s)
		evs = append(evs, tuDrainEvents(s)...)
	}
	lows := func() int { return tuCountKind(evs, EventLowFreeSpace, "") }
	for k := int64(0); k < 12; k++ {
		write(k)
		want := 0
		if k >= 8 { // the 9th chunk leaves 448 KiB
			want = 1
		}
		if lows() != want {
			t.Fatalf("after %d chunks: %d low-free-space events, want %d (%v)", k+1, lows(), want, evs)
		}
	}
	more := filepath.Join(dir, "more")
	if err := os.WriteFile(more, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendStorage(more, 0, portion); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(more); err != nil || fi.Size() != portion {
		t.Fatalf("appended file not allocated: %v %v", fi, err)
	}
	if st := s.Stats(); st.DiffCapacityBytes != 2*portion || st.DiffLimitBytes != 2*portion {
		t.Fatalf("after append: %+v", st)
	}
	// 4 chunks fill the first piece; the next 8 go to the appended one and
	// leave 512 KiB: not low yet. The 9th in it leaves 448 KiB.
	for k := int64(12); k < 24; k++ {
		write(k)
		if lows() != 1 {
			t.Fatalf("after %d chunks (appended storage): %d low events (%v)", k+1, lows(), evs)
		}
	}
	write(24)
	if lows() != 2 {
		t.Fatalf("the appended storage ran low without an event: %v", evs)
	}
	if n := tuCountKind(evs, EventOverflow, "") + tuCountKind(evs, EventCorrupted, "") + tuCountKind(evs, EventNoSpace, ""); n != 0 {
		t.Fatalf("unexpected events %v", evs)
	}
	tuMustEqual(t, "image", tuRead(t, s.Image(d), 0, len(data)), data, 0)
	if st := s.Stats(); st.DiffUsedBytes != 25*chunk || st.ChunksStored != 25 {
		t.Fatalf("stats %+v", st)
	}
}

// overflowEvents runs a scenario with a known set of events: a 4 KiB-chunk
// device and 8 KiB of storage, one write over 20 chunks (all copied, as the
// write started before any failure): 2 stored, 18 overflow.
// Events: low-free-space (first region), no-space (second), 18 overflow, 1
// corrupted.
func overflowEvents(t *testing.T, queueSize int, consume bool) (*Snapshot, []Event) {
	t.Helper()
	d, _ := tuOrigin(t, "", 32*4096, 1)
	opts := tuOpts(12, 4)
	opts.EventQueueSize = queueSize
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: 8192}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	done := make(chan struct{})
	stop := make(chan struct{})
	if consume {
		go func() {
			defer close(done)
			for {
				select {
				case e := <-s.Events():
					evs = append(evs, e)
				case <-stop:
					return
				}
			}
		}()
	}
	if _, err := d.WriteAt(tuPattern(20*4096, 2), 4096); err != nil {
		t.Fatal(err)
	}
	waitStored(t, s)
	if consume {
		close(stop)
		<-done
	}
	evs = append(evs, tuDrainEvents(s)...)
	if st := s.Stats(); st.ChunksStored != 2 || st.ChunksFailed != 18 {
		t.Fatalf("stats %+v: want 2 stored, 18 failed", st)
	}
	return s, evs
}

// Events go through a bounded queue; what does not fit is counted, never
// blocking the I/O path.
func TestEventsBounded(t *testing.T) {
	t.Run("consumed", func(t *testing.T) {
		s, evs := overflowEvents(t, 256, true)
		if s.DroppedEvents() != 0 || s.Stats().EventsDropped != 0 {
			t.Fatalf("dropped %d with a consumer", s.DroppedEvents())
		}
		counts := map[EventKind]int{}
		for _, e := range evs {
			counts[e.Kind]++
			if e.Time.IsZero() {
				t.Fatalf("event without a time: %v", e)
			}
		}
		want := map[EventKind]int{EventLowFreeSpace: 1, EventNoSpace: 1, EventOverflow: 18, EventCorrupted: 1}
		for k, n := range want {
			if counts[k] != n {
				t.Fatalf("%s events: %d, want %d (%v)", k, counts[k], n, evs)
			}
		}
	})
	t.Run("nobody consumes", func(t *testing.T) {
		s, evs := overflowEvents(t, 2, false)
		if len(evs) != 2 || evs[0].Kind != EventLowFreeSpace || evs[1].Kind != EventNoSpace {
			t.Fatalf("queued %v, want the first two events (low-free-space, no-space)", evs)
		}
		if s.DroppedEvents() != 19 || s.Stats().EventsDropped != 19 {
			t.Fatalf("dropped %d (stats %d), want 19", s.DroppedEvents(), s.Stats().EventsDropped)
		}
	})
}

// An image read in flight on the original must not return bytes that an
// origin write put there after the image became corrupted (origin writes
// then skip copy-on-write): it fails, or returns the data as of take.
func TestImageReadInFlightDuringCorruption(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	plan := &FaultPlan{}
	d, data := tuOrigin(t, "", 16*chunk, 1)
	opts := tuOpts(shift, 4)
	opts.Faults = plan
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	aq := newAsyncQ(t, 1, chunk)
	r := &Request{Op: OpImageRead, Image: s.Image(d), Off: 5 * chunk, Buf: aq.buf(0, chunk)}
	// Submit prepares the read of the original; it reaches the kernel at Poll.
	if err := aq.q.Submit(r); err != nil {
		t.Fatal(err)
	}
	plan.Add(Fault{Target: FaultDiffStorage, Write: true, Errno: unix.EIO, Times: 1})
	if _, err := d.WriteAt(tuPattern(512, 2), chunk); err != nil {
		t.Fatal(err)
	}
	tuWaitEvent(t, s, EventCorrupted, d.Path())
	w := bytes.Repeat([]byte{0xAB}, chunk)
	if _, err := d.WriteAt(w, 5*chunk); err != nil {
		t.Fatal(err)
	}
	if n, err := aq.q.Poll(aq.out, 1); err != nil || n != 1 {
		t.Fatalf("poll: %d %v", n, err)
	}
	if r.Err == nil {
		tuMustEqual(t, "image read in flight while the image was corrupted", r.Buf, data[5*chunk:6*chunk], 5*chunk)
	} else if !errors.Is(r.Err, ErrCorrupted) {
		t.Fatalf("image read: %v, want ErrCorrupted", r.Err)
	}
}

// Likewise across Destroy: origin writes stop copying at once, so an image
// read still in flight fails with ErrClosed instead of returning new data.
func TestImageReadInFlightDuringDestroy(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 16*chunk, 1)
	s, err := NewSnapshot([]*Device{d}, StorageConfig{Path: t.TempDir(), Limit: 1 << 30}, tuOpts(shift, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	aq := newAsyncQ(t, 1, chunk)
	r := &Request{Op: OpImageRead, Image: s.Image(d), Off: 5 * chunk, Buf: aq.buf(0, chunk)}
	if err := aq.q.Submit(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	w := bytes.Repeat([]byte{0xCD}, chunk)
	if _, err := d.WriteAt(w, 5*chunk); err != nil {
		t.Fatal(err)
	}
	if n, err := aq.q.Poll(aq.out, 1); err != nil || n != 1 {
		t.Fatalf("poll: %d %v", n, err)
	}
	if r.Err == nil {
		tuMustEqual(t, "image read in flight across Destroy", r.Buf, data[5*chunk:6*chunk], 5*chunk)
	} else if !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("image read: %v, want ErrClosed", r.Err)
	}
	<-s.Done()
}

// Faults on origin writes, matched by device and offset: a failed write
// reports the errno and writes nothing (a short one moves half); other
// devices and other offsets are untouched by the fault; the image is
// unaffected either way.
func TestFaultOriginWrite(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	for _, fk := range faultKinds {
		t.Run(fk.name, func(t *testing.T) {
			plan := &FaultPlan{}
			dir := t.TempDir()
			a, dataA := tuOrigin(t, dir, 8*chunk, 1)
			b, dataB := tuOrigin(t, dir, 8*chunk, 2)
			opts := tuOpts(shift, 4)
			opts.Faults = plan
			s := tuSnap(t, []*Device{a, b}, StorageConfig{}, opts)
			if err := s.Take(); err != nil {
				t.Fatal(err)
			}
			plan.Add(Fault{Target: FaultOrigin, Device: a, Write: true, Off: 2 * chunk, Len: 4096, Errno: fk.errno, Short: fk.short})
			w := tuPattern(8192, 3)
			wantA, wantB := append([]byte(nil), dataA...), append([]byte(nil), dataB...)
			// The same offset on b, and another offset on a, are not matched.
			if _, err := b.WriteAt(w, 2*chunk); err != nil {
				t.Fatalf("write to b: %v", err)
			}
			copy(wantB[2*chunk:], w)
			if _, err := a.WriteAt(w, 4*chunk); err != nil {
				t.Fatalf("write to a elsewhere: %v", err)
			}
			copy(wantA[4*chunk:], w)
			_, err := a.WriteAt(w, 2*chunk-4096)
			wantFaultErr(t, "origin write over the fault", err, fk.errno, fk.short)
			if fk.short {
				copy(wantA[2*chunk-4096:], w[:len(w)/2])
			}
			if plan.Hits() != 1 {
				t.Fatalf("hits %d, want 1", plan.Hits())
			}
			tuMustEqual(t, "origin a", tuRead(t, a, 0, len(wantA)), wantA, 0)
			tuMustEqual(t, "origin b", tuRead(t, b, 0, len(wantB)), wantB, 0)
			tuMustEqual(t, "image a", tuRead(t, s.Image(a), 0, len(dataA)), dataA, 0)
			tuMustEqual(t, "image b", tuRead(t, s.Image(b), 0, len(dataB)), dataB, 0)
			if st := s.Stats(); st.Corrupted {
				t.Fatalf("a failed origin write corrupted the snapshot: %+v", st)
			}
		})
	}
}
