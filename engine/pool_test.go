package engine

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBufferPoolKeepsWarmBuffers: after a burst of copy-on-writes larger than
// free_diff_buffer_pool_size, once everything is stored exactly the pool's
// size of free buffers keep their memory (resident per mincore), and the
// rest went back to the kernel.
func TestBufferPoolKeepsWarmBuffers(t *testing.T) {
	const (
		shift   = 16 // 64 KiB chunks
		inQueue = 32
		pool    = 5
	)
	d, _ := tuOrigin(t, "", 64<<16, 1)
	opts := tuOpts(shift, inQueue)
	opts.FreeDiffBufferPoolSize = pool
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	a := s.areas[0]
	resident := func() int {
		page := unix.Getpagesize()
		vec := make([]byte, inQueue<<shift/page)
		mem := a.bufArena.Slice(0, inQueue<<shift)
		if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			t.Fatal("mincore:", errno)
		}
		n := 0
		for i := 0; i < inQueue; i++ {
			if vec[i*(1<<shift)/page]&1 != 0 {
				n++
			}
		}
		return n
	}
	if got := resident(); got != pool {
		t.Fatalf("after create: %d buffers resident, want %d (the pool)", got, pool)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 4096)
	for round := 0; round < 3; round++ {
		for n := int64(round * 20); n < int64(round*20+20); n++ {
			if _, err := d.WriteAt(one, n<<shift); err != nil {
				t.Fatal(err)
			}
		}
		waitStored(t, s)
		if got := resident(); got != pool {
			t.Fatalf("round %d, all stored: %d free buffers resident, want %d (free_diff_buffer_pool_size)", round, got, pool)
		}
	}
}
