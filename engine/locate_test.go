package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLocateLockFree: locate runs while extents are being appended (the
// race detector checks the publication), maps every extent's first and last
// byte to the right file and offset, and does not take the storage mutex
// (held here during the final checks, as alloc holds it while it waits for
// the grower: a locking locate would deadlock).
func TestLocateLockFree(t *testing.T) {
	dir := t.TempDir()
	s, err := newDiffStorage(StorageConfig{Path: filepath.Join(dir, "diff"), Limit: 1 << 20}, 1<<20, newEventQueue(16), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const appends, size = 8, 64 << 10
	var paths []string
	for i := 0; i < appends; i++ {
		p := filepath.Join(dir, fmt.Sprintf("more%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// Append from another goroutine while this one locates.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, p := range paths {
			if err := s.add(p, 4096, size, false, false); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := 0; i < 1000; i++ {
		s.locate(int64(i%256) * 4096 % (1 << 20))
	}
	wg.Wait()
	s.mu.Lock() // locate must not need it
	defer s.mu.Unlock()
	for i, e := range s.extents {
		for _, at := range []int64{0, e.maxLen - 1} {
			reg := s.locate(e.logical + at)
			if reg.fd != e.fd || reg.off != e.physOff+at {
				t.Fatalf("extent %d byte %d: located fd %d off %d, want fd %d off %d", i, at, reg.fd, reg.off, e.fd, e.physOff+at)
			}
		}
	}
}
