package engine

import (
	"sync"
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
