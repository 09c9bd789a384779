package engine

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Chunks waiting together for the store go to consecutive places of the
// difference storage in one vectored write, and the image reads each of
// them back from its own place. The first store write is held in the
// injector until eight more chunks are waiting, so the second batch is
// known to hold all eight.
func TestStoreWritesConsecutiveChunksAtOnce(t *testing.T) {
	const shift, chunk, n = 14, 1 << 14, 16
	d, data := tuOrigin(t, "", n*chunk, 1)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opts := tuOpts(shift, n)
	opts.StoreWorkers = 1
	opts.Inject = InjectorFunc(func(io FaultIO) (Injection, bool) {
		if io.Target == FaultDiffStorage && io.Op == FaultWrite {
			once.Do(func() {
				close(held)
				<-release
			})
		}
		return Injection{}, false
	})
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	want := append([]byte(nil), data...)
	write := func(c int64) {
		t.Helper()
		w := tuPattern(512, c+10)
		if _, err := d.WriteAt(w, c*chunk+1024); err != nil {
			t.Fatalf("origin write to chunk %d: %v", c, err)
		}
	}
	write(0)
	select {
	case <-held:
	case <-time.After(storedDeadline):
		t.Fatal("the first store write never reached the injector")
	}
	// Chunks 3, 5, ... 17 mod n: not in chunk order, so the storage's
	// order is not the device's.
	for i := int64(1); i <= 8; i++ {
		write((3 + 2*i) % n)
	}
	if q := s.Stats().StoreQueued; q != 8 {
		t.Fatalf("%d chunks waiting for the store, want 8", q)
	}
	close(release)
	waitStored(t, s)
	st := s.Stats()
	if st.ChunksStored != 9 || st.StoreWrites != 2 || st.ChunksFailed != 0 {
		t.Fatalf("stats %+v: want 9 chunks stored in 2 writes", st)
	}
	tuMustEqual(t, "image", tuRead(t, img, 0, len(want)), want, 0)
	// The diff storage's eight consecutive chunks, read in one request
	// across them and the original.
	tuMustEqual(t, "image, chunks 4-9", tuRead(t, img, 4*chunk-512, 6*chunk+1024), want[4*chunk-512:10*chunk+512], 4*chunk-512)
}

// An image read reads each run of chunks not copied from the original in
// one read, the copied chunks between them from the difference storage,
// and returns the snapshot's bytes, from and to offsets inside chunks.
func TestImageReadsOriginalRunsAtOnce(t *testing.T) {
	const shift, chunk, n = 14, 1 << 14, 16
	d, data := tuOrigin(t, "", n*chunk, 1)
	var origReads atomic.Int64
	opts := tuOpts(shift, n)
	opts.Inject = InjectorFunc(func(io FaultIO) (Injection, bool) {
		if io.Target == FaultOrigin && io.Op == FaultRead {
			origReads.Add(1)
		}
		return Injection{}, false
	})
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	for _, c := range []int64{2, 5} {
		if _, err := d.WriteAt(tuPattern(4096, c), c*chunk); err != nil {
			t.Fatal(err)
		}
	}
	waitStored(t, s)
	origReads.Store(0) // the copies' loads
	// Chunks 0-1, 3-4 and 6-8 from the original, 2 and 5 stored.
	off, end := int64(chunk/2), int64(8*chunk+1024)
	tuMustEqual(t, "image", tuRead(t, img, off, int(end-off)), data[off:end], off)
	if got := origReads.Load(); got != 3 {
		t.Fatalf("%d reads of the original, want 3 (one per run of chunks not copied)", got)
	}
	// A whole-device read: one read per run, then the bytes again.
	origReads.Store(0)
	tuMustEqual(t, "whole image", tuRead(t, img, 0, len(data)), data, 0)
	if got := origReads.Load(); got != 3 {
		t.Fatalf("whole image: %d reads of the original, want 3", got)
	}
}
