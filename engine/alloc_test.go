package engine

import (
	"runtime"
	"testing"
)

// TestNoAllocPerIO: a request costs no allocation on the hot paths (the
// whole process is counted, store workers included): origin reads, writes
// to copied chunks, copy-on-write writes to new chunks, and image reads
// from the original, from memory and from the difference storage.
func TestNoAllocPerIO(t *testing.T) {
	const shift, chunk, chunks = 14, 1 << 14, 1024
	d, _ := tuOrigin(t, "", chunks*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: 1 << 30}, tuOpts(shift, 16))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d) // Image allocates; the requests must not
	q := newAsyncQ(t, 1, 4096)
	r := &Request{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	run := func(op Op, off int64) {
		*r = Request{Op: op, Off: off, Buf: q.buf(0, 4096)}
		if op >= OpImageRead {
			r.Image = img
		} else {
			r.Device = d
		}
		if err := q.run(r); err != nil || r.Err != nil {
			t.Fatalf("%s at %d: %v %v", op, off, err, r.Err)
		}
	}
	// Chunks 0..99 copied and stored; 100..199 left for copy-on-write.
	for n := int64(0); n < 100; n++ {
		run(OpOriginWrite, n*chunk)
	}
	waitStored(t, s)
	next := int64(100)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"origin read", func() { run(OpOriginRead, 5*chunk) }},
		{"origin write to a copied chunk", func() { run(OpOriginWrite, 6*chunk) }},
		{"copy-on-write write", func() { run(OpOriginWrite, next*chunk); next++ }},
		{"image read of an unchanged chunk", func() { run(OpImageRead, 900*chunk) }},
		{"image read from the difference storage", func() { run(OpImageRead, 7*chunk) }},
	} {
		if n := testing.AllocsPerRun(50, c.f); n != 0 {
			t.Errorf("%s: %v allocations per request", c.name, n)
		}
	}
}
