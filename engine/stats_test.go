package engine

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDeviceStats: each device of a snapshot keeps its own chunk counters
// (copied, stored, in memory, failed, corrupted), in the order the devices
// were given; Stats sums them and reports the store queue's depth. The
// single store worker is held inside the fault seam while device B's
// chunks queue up behind it, so the in-memory and queued figures are
// exact, then the held store fails (one failed chunk, B corrupted, A not).
func TestDeviceStats(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	dir := t.TempDir()
	a, _ := tuOrigin(t, dir, 32*chunk, 1)
	b, _ := tuOrigin(t, dir, 32*chunk, 2)
	held := make(chan struct{})    // the store worker is inside Inject
	release := make(chan struct{}) // let it go (the store then fails)
	var hold atomic.Bool           // hold the next store of a chunk of B
	opts := tuOpts(shift, 8)
	opts.StoreWorkers = 1
	opts.Inject = InjectorFunc(func(io FaultIO) (Injection, bool) {
		if io.Op != FaultWrite || io.Target != FaultDiffStorage || io.Device != b {
			return Injection{}, false
		}
		if hold.CompareAndSwap(true, false) {
			close(held)
			<-release
			return Injection{Errno: unix.EIO}, true
		}
		return Injection{}, false
	})
	s := tuSnap(t, []*Device{a, b}, StorageConfig{}, opts)
	released := false
	defer func() {
		if !released {
			close(release) // Destroy waits for the worker
		}
	}()
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	want := func(what string, wantA, wantB DeviceStats, queued int64) {
		t.Helper()
		wantA.Device, wantB.Device = a, b
		got := s.DeviceStats()
		if len(got) != 2 || got[0] != wantA || got[1] != wantB {
			t.Fatalf("%s: DeviceStats %+v, want [%+v %+v]", what, got, wantA, wantB)
		}
		st := s.Stats()
		sum := Stats{ChunksCopied: wantA.ChunksCopied + wantB.ChunksCopied, ChunksStored: wantA.ChunksStored + wantB.ChunksStored,
			ChunksInMemory: wantA.ChunksInMemory + wantB.ChunksInMemory, ChunksFailed: wantA.ChunksFailed + wantB.ChunksFailed,
			Corrupted: wantA.Corrupted || wantB.Corrupted, StoreQueued: queued}
		if st.ChunksCopied != sum.ChunksCopied || st.ChunksStored != sum.ChunksStored || st.ChunksInMemory != sum.ChunksInMemory ||
			st.ChunksFailed != sum.ChunksFailed || st.Corrupted != sum.Corrupted || st.StoreQueued != sum.StoreQueued {
			t.Fatalf("%s: Stats %+v, want the sums %+v", what, st, sum)
		}
	}
	want("after take", DeviceStats{}, DeviceStats{}, 0)

	// Three chunks of A copied and stored; B untouched.
	if _, err := a.WriteAt(tuPattern(3*chunk, 3), 4*chunk); err != nil {
		t.Fatal(err)
	}
	waitStored(t, s)
	want("A written", DeviceStats{ChunksCopied: 3, ChunksStored: 3}, DeviceStats{}, 0)

	// B's first chunk holds the store worker; two more wait in its queue.
	hold.Store(true)
	if _, err := b.WriteAt(tuPattern(4096, 4), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(storedDeadline):
		t.Fatal("the store worker never reached B's chunk")
	}
	for _, n := range []int64{5, 9} {
		if _, err := b.WriteAt(tuPattern(512, n), n*chunk+1024); err != nil {
			t.Fatal(err)
		}
	}
	want("B held", DeviceStats{ChunksCopied: 3, ChunksStored: 3}, DeviceStats{ChunksCopied: 3, ChunksInMemory: 3}, 2)

	// The held store fails: B has one failed chunk and is corrupted; its
	// two queued chunks are still stored; A is untouched.
	released = true
	close(release)
	waitStored(t, s)
	want("B's store failed", DeviceStats{ChunksCopied: 3, ChunksStored: 3},
		DeviceStats{ChunksCopied: 3, ChunksStored: 2, ChunksFailed: 1, Corrupted: true}, 0)
	if _, err := s.Image(b).ReadAt(make([]byte, 4096), 0); !errors.Is(err, ErrCorrupted) {
		t.Fatalf("image B read: %v, want ErrCorrupted", err)
	}
	if _, err := s.Image(a).ReadAt(make([]byte, 4096), 4*chunk); err != nil {
		t.Fatalf("image A read: %v", err)
	}
}
