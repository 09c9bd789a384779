package engine

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMemoryStoragePopulated: a difference storage on tmpfs has every byte
// of its capacity written (populated) before it is handed out, at creation
// and after the grower's growth; one on a disk file system is only
// fallocated (no zeros written to the disk). SEEK_HOLE tells them apart:
// fallocated, unwritten ranges are holes to it on both.
func TestMemoryStoragePopulated(t *testing.T) {
	for _, c := range []struct {
		name, dir string
		memory    bool
	}{{"tmpfs", "/dev/shm", true}, {"disk", os.TempDir(), false}} {
		t.Run(c.name, func(t *testing.T) {
			var st unix.Statfs_t
			if err := unix.Statfs(c.dir, &st); err != nil {
				t.Skipf("%s: %v", c.dir, err)
			}
			if (st.Type == unix.TMPFS_MAGIC) != c.memory {
				t.Skipf("%s is not on the kind of file system this case needs (f_type %#x)", c.dir, st.Type)
			}
			const portion, limit, region = 2 << 20, 8 << 20, 64 << 10
			s, err := newDiffStorage(StorageConfig{Path: c.dir, Limit: limit}, portion, newEventQueue(16), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			e := s.extents[0]
			if e.inMemory != c.memory {
				t.Fatalf("inMemory %v, want %v", e.inMemory, c.memory)
			}
			check := func(when string) {
				s.mu.Lock()
				capacity := e.capacity
				s.mu.Unlock()
				hole, err := unix.Seek(int(e.fd), e.physOff, unix.SEEK_HOLE)
				if err != nil && !errors.Is(err, unix.ENXIO) {
					t.Fatal(err)
				}
				if c.memory && hole < e.physOff+capacity {
					t.Fatalf("%s: a hole at %d inside the capacity %d: not populated", when, hole-e.physOff, capacity)
				}
				if !c.memory && hole != e.physOff {
					t.Fatalf("%s: data at %d on a disk file system: zeros written to the disk (capacity %d)", when, e.physOff, capacity)
				}
			}
			check("at creation")
			// Past half a portion the grower adds one; alloc waits for it
			// when the capacity runs out, so 3 MiB of regions need it.
			for i := 0; i < 3<<20/region; i++ {
				if _, err := s.alloc(region); err != nil {
					t.Fatal(err)
				}
			}
			s.mu.Lock()
			capacity := e.capacity
			s.mu.Unlock()
			if capacity <= portion {
				t.Fatalf("capacity %d after 3 MiB of regions: the grower did not grow it", capacity)
			}
			check("after growth")
		})
	}
}
