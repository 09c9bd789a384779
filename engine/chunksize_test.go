package engine

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// Chunk size as blksnap computes it: from the page size, raised to the
// minimum I/O size and to chunk_minimum_shift, doubled while the device has
// more than chunk_maximum_count chunks, refused above chunk_maximum_shift.
func TestChunkShiftTable(t *testing.T) {
	if os.Getpagesize() != 4096 {
		t.Skipf("table written for 4 KiB pages, this machine has %d", os.Getpagesize())
	}
	const (
		KiB = int64(1) << 10
		MiB = KiB << 10
		GiB = MiB << 10
		TiB = GiB << 10
	)
	def := func(f func(o *Options)) Options {
		o := Options{}
		if f != nil {
			f(&o)
		}
		o.EnsureDefaults()
		return o
	}
	cases := []struct {
		name   string
		opts   Options
		size   int64
		minIO  int
		want   uint
		errSub string
	}{
		{"defaults: 256 KiB", def(nil), 1 * GiB, 512, 18, ""},
		{"defaults, 1 TiB", def(nil), 1 * TiB, 512, 18, ""},
		{"page size floor", def(func(o *Options) { o.ChunkMinimumShift = 12 }), 1 * MiB, 512, 12, ""},
		{"min I/O 3000 rounds to the page", def(func(o *Options) { o.ChunkMinimumShift = 12 }), 1 * MiB, 3000, 12, ""},
		{"min I/O 8 KiB", def(func(o *Options) { o.ChunkMinimumShift = 12 }), 1 * MiB, 8192, 13, ""},
		{"min I/O 64 KiB over minimum 12", def(func(o *Options) { o.ChunkMinimumShift = 12 }), 1 * MiB, 65536, 16, ""},
		{"min I/O under the minimum shift", def(nil), 1 * MiB, 65536, 18, ""},
		{"min I/O over the minimum shift", def(nil), 1 * MiB, 1 << 20, 20, ""},
		{"v1-v3 count: 1 TiB doubles once", def(func(o *Options) { o.ChunkMaximumCount = 2097152 }), 1 * TiB, 512, 19, ""},
		{"v1-v3 count: 16 TiB", def(func(o *Options) { o.ChunkMaximumCount = 2097152 }), 16 * TiB, 512, 23, ""},
		{"count exactly at the maximum", def(func(o *Options) { o.ChunkMinimumShift = 16; o.ChunkMaximumCount = 16 }), 1 * MiB, 512, 16, ""},
		{"one sector over: a 17th short chunk doubles", def(func(o *Options) { o.ChunkMinimumShift = 16; o.ChunkMaximumCount = 16 }), 1*MiB + 512, 512, 17, ""},
		{"at the maximum shift", def(func(o *Options) { o.ChunkMaximumCount = 1024 }), 64 * GiB, 512, 26, ""},
		{"above the maximum shift", def(func(o *Options) { o.ChunkMaximumCount = 1024 }), 64*GiB + 512, 512, 0, "chunk_maximum_shift 26"},
		{"big device, small count, low maximum", def(func(o *Options) { o.ChunkMaximumCount = 1 << 20; o.ChunkMaximumShift = 19 }), 1 * TiB, 512, 0, "1<<20"},
		{"min I/O above the maximum shift", def(func(o *Options) { o.ChunkMaximumShift = 20 }), 1 * GiB, 1 << 21, 0, "chunk_maximum_shift 20"},
		{"tiny device", def(func(o *Options) { o.ChunkMinimumShift = 12 }), 512, 512, 12, ""},
	}
	for _, c := range cases {
		got, err := c.opts.ChunkShift(c.size, c.minIO)
		if c.errSub != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.errSub) {
				t.Errorf("%s: got %d, %v; want ErrInvalid saying %q", c.name, got, err, c.errSub)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
		if err == nil && c.opts.Validate() == nil {
			n := (c.size + 1<<got - 1) >> got
			if uint64(n) > c.opts.ChunkMaximumCount {
				t.Errorf("%s: %d chunks above the maximum %d", c.name, n, c.opts.ChunkMaximumCount)
			}
		}
	}
}

// The last chunk of a device whose size is not a multiple of the chunk size
// is shorter; its copy, storage and image reads use that length.
func TestLastChunkShorter(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 6*chunk+1536, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 2))
	a := s.areas[0]
	if a.nChunks != 7 || a.chunkLen(5) != chunk || a.chunkLen(6) != 1536 || len(a.buffer(0, 6)) != 1536 {
		t.Fatalf("chunks %d, last %d bytes (buffer %d): want 7 chunks, the last 1536 bytes", a.nChunks, a.chunkLen(6), len(a.buffer(0, 6)))
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	w := tuPattern(2048, 2)
	if _, err := d.WriteAt(w, 6*chunk-512); err != nil { // last sector of chunk 5, all of chunk 6
		t.Fatal(err)
	}
	img := s.Image(d)
	tuMustEqual(t, "image, in memory", tuRead(t, img, 0, len(data)), data, 0)
	waitStored(t, s)
	tuMustEqual(t, "image, stored", tuRead(t, img, 0, len(data)), data, 0)
	if used, _, _ := s.storage.stats(); used != chunk+4096 {
		t.Fatalf("storage used %d, want %d (a full chunk and the short one rounded to 4 KiB)", used, chunk+4096)
	}
	iw := tuPattern(1024, 3)
	if _, err := img.WriteAt(iw, 6*chunk+512); err != nil {
		t.Fatal(err)
	}
	copy(data[6*chunk+512:], iw)
	tuMustEqual(t, "image after a write to the short chunk", tuRead(t, img, 0, len(data)), data, 0)
}

// A chunk costs 16 bytes while untouched: 64 MiB of chunk map for a 1 TiB
// device at 256 KiB chunks.
func TestChunkSize16(t *testing.T) {
	if got := unsafe.Sizeof(chunk{}); got != 16 {
		t.Fatalf("unsafe.Sizeof(chunk{}) = %d, want 16", got)
	}
	const tib, chunkBytes = int64(1) << 40, int64(256) << 10
	if got := tib / chunkBytes * int64(unsafe.Sizeof(chunk{})); got != 64<<20 {
		t.Fatalf("chunk map of 1 TiB at 256 KiB chunks: %d bytes, want 64 MiB", got)
	}
}
