package uring

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory rule: the kernel reads and writes the buffers named in SQEs after
// Prep returns and until the operation's CQE is reaped. Such memory must not
// move and must not be freed in between. Go's heap does not promise either for
// a []byte the program may drop, and goroutine stacks do move; so every buffer
// handed to an SQE must come from an Arena: anonymous memory mmap'd outside
// the Go heap, that lives until Arena.Close. Prep functions check this and
// panic on a buffer outside every open Arena (a programmer error). Close an
// Arena only after every Ring that used it is closed or idle.

// Arena is a block of pinned memory outside the Go heap.
type Arena struct {
	mem    []byte
	closed bool
}

type span struct{ start, end uintptr }

var arenas struct {
	mu    sync.Mutex
	spans atomic.Pointer[[]span] // sorted by start; replaced, never mutated
}

// NewArena maps size bytes of zeroed, page-aligned memory.
func NewArena(size int) (*Arena, error) {
	if size <= 0 {
		return nil, fmt.Errorf("uring: arena size %d: must be positive", size)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap arena of %d bytes: %w", size, err)
	}
	a := &Arena{mem: mem}
	start := uintptr(unsafe.Pointer(&mem[0]))
	updateSpans(func(s []span) []span {
		s = append(s, span{start, start + uintptr(len(mem))})
		sort.Slice(s, func(i, j int) bool { return s[i].start < s[j].start })
		return s
	})
	return a, nil
}

// Bytes returns the whole arena.
func (a *Arena) Bytes() []byte { return a.mem }

// Slice returns n bytes at off, with capacity limited to n.
func (a *Arena) Slice(off, n int) []byte { return a.mem[off : off+n : off+n] }

// IovecSize is the size of one iovec struct in an arena (Iovecs).
const IovecSize = int(unsafe.Sizeof(unix.Iovec{}))

// Iovecs carves n iovec structs out of the arena at off (which must be
// 8-byte aligned), for READV and WRITEV.
func (a *Arena) Iovecs(off, n int) []unix.Iovec {
	if off%8 != 0 || off+n*IovecSize > len(a.mem) {
		panic("uring: Iovecs outside the arena or unaligned")
	}
	return unsafe.Slice((*unix.Iovec)(unsafe.Pointer(&a.mem[off])), n)
}

// Close unmaps the arena. Call it only when no operation uses it.
func (a *Arena) Close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	start := uintptr(unsafe.Pointer(&a.mem[0]))
	updateSpans(func(s []span) []span {
		out := s[:0:0]
		for _, sp := range s {
			if sp.start != start {
				out = append(out, sp)
			}
		}
		return out
	})
	return unix.Munmap(a.mem)
}

func updateSpans(f func([]span) []span) {
	arenas.mu.Lock()
	defer arenas.mu.Unlock()
	var cur []span
	if p := arenas.spans.Load(); p != nil {
		cur = append(cur, *p...)
	}
	next := f(cur)
	arenas.spans.Store(&next)
}

// pinned reports whether [p, p+n) lies inside one open arena.
func pinned(p unsafe.Pointer, n int) bool {
	sp := arenas.spans.Load()
	if sp == nil {
		return false
	}
	addr := uintptr(p)
	for _, s := range *sp {
		if addr >= s.start && addr+uintptr(n) <= s.end {
			return true
		}
	}
	return false
}

// bufAddr returns the address of buf after checking it is pinned memory.
func bufAddr(buf []byte) uint64 {
	if len(buf) == 0 {
		return 0
	}
	p := unsafe.Pointer(unsafe.SliceData(buf))
	if !pinned(p, len(buf)) {
		panic("uring: buffer is not in an Arena: memory the kernel uses must be pinned (see the memory rule in package docs)")
	}
	return uint64(uintptr(p))
}

func iovecAddr(iovs []unix.Iovec) uint64 {
	if len(iovs) == 0 {
		return 0
	}
	p := unsafe.Pointer(unsafe.SliceData(iovs))
	if !pinned(p, len(iovs)*int(unsafe.Sizeof(unix.Iovec{}))) {
		panic("uring: iovec array is not in an Arena (use Arena.Iovecs)")
	}
	for i := range iovs {
		if iovs[i].Len > 0 && !pinned(unsafe.Pointer(iovs[i].Base), int(iovs[i].Len)) {
			panic("uring: iovec buffer is not in an Arena")
		}
	}
	return uint64(uintptr(p))
}
