package engine

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantInvalid checks that err wraps ErrInvalid and names the problem.
func wantInvalid(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: %v, want an error wrapping ErrInvalid", what, err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: %q does not say %q", what, err, w)
		}
	}
}

func TestBadOpenDevice(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenDevice("")
	wantInvalid(t, "empty path", err, "no path")
	missing := filepath.Join(dir, "missing")
	_, err = OpenDevice(missing)
	wantInvalid(t, "missing device", err, missing, "does not exist")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	_, err = OpenDevice(empty)
	wantInvalid(t, "empty device", err, "size 0", "multiple of 512")
	odd := filepath.Join(dir, "odd")
	os.WriteFile(odd, make([]byte, 1000), 0o600)
	_, err = OpenDevice(odd)
	wantInvalid(t, "device of 1000 bytes", err, "size 1000")
	if _, err := OpenDevice(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a directory as a device: %v", err)
	}
	for _, depth := range []int{0, -1, 1 << 16} {
		_, err := NewQueue(depth)
		wantInvalid(t, "queue depth", err, "queue depth")
	}
}

func TestBadRequests(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	dir := t.TempDir()
	d, data := tuOrigin(t, dir, 8*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 2))
	img := s.Image(d)
	aq := newAsyncQ(t, 1, 2*chunk)
	size := d.Size()
	untouched := func(what string) {
		t.Helper()
		tuMustEqual(t, "origin after "+what, tuRead(t, d, 0, len(data)), data, 0)
		if b, _ := os.ReadFile(d.Path()); len(b) != len(data) {
			t.Fatalf("after %s the origin file has %d bytes", what, len(b))
		}
	}
	// Image I/O before Take.
	r := &Request{Op: OpImageRead, Image: img, Off: 0, Buf: aq.buf(0, 512)}
	if err := aq.run(r); err != nil || !errors.Is(r.Err, ErrNotTaken) {
		t.Fatalf("image read before Take: %v %v", err, r.Err)
	}
	if _, err := img.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrNotTaken) {
		t.Fatalf("image write before Take: %v", err)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, "second Take", s.Take(), "already taken")

	big, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(4 << 30) // sparse
	big.Close()
	bigDev, err := OpenDevice(big.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer bigDev.Close()

	cases := []struct {
		name  string
		r     Request
		words []string
	}{
		{"no op", Request{Device: d, Buf: aq.buf(0, 512)}, []string{"unknown operation"}},
		{"op 99", Request{Op: 99, Device: d, Buf: aq.buf(0, 512)}, []string{"unknown operation"}},
		{"no device", Request{Op: OpOriginWrite, Buf: aq.buf(0, 512)}, []string{"without a device"}},
		{"no image", Request{Op: OpImageWrite, Buf: aq.buf(0, 512)}, []string{"without an image"}},
		{"empty write", Request{Op: OpOriginWrite, Device: d, Buf: aq.buf(0, 0)}, []string{"length must be positive"}},
		{"zero discard", Request{Op: OpOriginDiscard, Device: d}, []string{"length must be positive"}},
		{"negative discard", Request{Op: OpOriginDiscard, Device: d, Len: -512}, []string{"length must be positive"}},
		{"negative write-zeroes", Request{Op: OpOriginWriteZeroes, Device: d, Len: -4096}, []string{"length must be positive"}},
		{"unaligned offset", Request{Op: OpOriginWrite, Device: d, Off: 100, Buf: aq.buf(0, 512)}, []string{"at 100", "multiples of 512"}},
		{"negative offset", Request{Op: OpOriginWrite, Device: d, Off: -512, Buf: aq.buf(0, 512)}, []string{"at -512", "offset"}},
		{"unaligned length", Request{Op: OpOriginWrite, Device: d, Buf: aq.buf(0, 1000)}, []string{"1000 bytes", "multiples of 512"}},
		{"unaligned discard", Request{Op: OpOriginDiscard, Device: d, Len: 700}, []string{"multiples of 512"}},
		{"write past the end", Request{Op: OpOriginWrite, Device: d, Off: size - 512, Buf: aq.buf(0, 1024)}, []string{"beyond the device end"}},
		{"write at the end", Request{Op: OpOriginWrite, Device: d, Off: size, Buf: aq.buf(0, 512)}, []string{"beyond the device end"}},
		{"discard past the end", Request{Op: OpOriginDiscard, Device: d, Off: 4096, Len: size}, []string{"beyond the device end"}},
		{"read past the end", Request{Op: OpOriginRead, Device: d, Off: size - 512, Buf: aq.buf(0, 4096)}, []string{"beyond the device end"}},
		{"image write past the end", Request{Op: OpImageWrite, Image: img, Off: size - 512, Buf: aq.buf(0, 1024)}, []string{"beyond the device end"}},
		{"image read unaligned", Request{Op: OpImageRead, Image: img, Off: 256, Buf: aq.buf(0, 512)}, []string{"multiples of 512"}},
		{"image write unaligned", Request{Op: OpImageWrite, Image: img, Buf: aq.buf(0, 513)}, []string{"multiples of 512"}},
		{"over 1 GiB", Request{Op: OpOriginDiscard, Device: bigDev, Len: 2 << 30}, []string{"at most 1 GiB"}},
	}
	for _, c := range cases {
		r := c.r
		err := aq.q.Submit(&r)
		wantInvalid(t, c.name, err, c.words...)
		if aq.q.InFlight() != 0 {
			t.Fatalf("%s: a refused request is in flight", c.name)
		}
		untouched(c.name)
	}
	if n, err := aq.q.Poll(aq.out, 0); n != 0 || err != nil {
		t.Fatalf("refused requests completed: %d %v", n, err)
	}

	// The synchronous API.
	p := tuPattern(8192, 5)
	for _, c := range []struct {
		name string
		err  func() error
		word string
	}{
		{"WriteAt unaligned offset", func() error { _, err := d.WriteAt(p[:512], 100); return err }, "multiples of 512"},
		{"WriteAt unaligned length", func() error { _, err := d.WriteAt(p[:1000], 0); return err }, "multiples of 512"},
		{"WriteAt negative offset", func() error { _, err := d.WriteAt(p[:512], -512); return err }, "-512"},
		{"WriteAt past the end", func() error { _, err := d.WriteAt(p, size-4096); return err }, "beyond the device end"},
		{"ReadAt unaligned", func() error { _, err := d.ReadAt(p[:512], 10); return err }, "multiples of 512"},
		{"image WriteAt past the end", func() error { _, err := img.WriteAt(p, size-512); return err }, "beyond the image end"},
		{"image WriteAt unaligned", func() error { _, err := img.WriteAt(p[:100], 0); return err }, "multiples of 512"},
		{"image ReadAt unaligned", func() error { _, err := img.ReadAt(p[:512], 1); return err }, "multiples of 512"},
	} {
		wantInvalid(t, c.name, c.err(), c.word)
		untouched(c.name)
	}
	// Reads at and across the end behave as io.ReaderAt says.
	if n, err := d.ReadAt(p[:512], size); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end: %d %v, want 0 EOF", n, err)
	}
	buf := make([]byte, 4096)
	if n, err := img.ReadAt(buf, size-1024); n != 1024 || err != io.EOF {
		t.Fatalf("image ReadAt across the end: %d %v, want 1024 EOF", n, err)
	}
	tuMustEqual(t, "image tail", buf[:1024], data[size-1024:], size-1024)
	if st := s.Stats(); st.ChunksCopied != 0 {
		t.Fatalf("refused writes copied chunks: %+v", st)
	}
	untouched("all refused requests")
}

func TestBadOptions(t *testing.T) {
	cases := []struct {
		name string
		set  func(o *Options)
		word string
	}{
		{"min shift below the page", func(o *Options) { o.ChunkMinimumShift = 9 }, "chunk_minimum_shift"},
		{"min shift too big", func(o *Options) { o.ChunkMinimumShift = 31; o.ChunkMaximumShift = 31 }, "chunk_minimum_shift"},
		{"max below min", func(o *Options) { o.ChunkMinimumShift = 16; o.ChunkMaximumShift = 14 }, "chunk_maximum_shift"},
		{"max too big", func(o *Options) { o.ChunkMaximumShift = 31 }, "chunk_maximum_shift"},
		{"in queue negative", func(o *Options) { o.ChunkMaximumInQueue = -1 }, "chunk_maximum_in_queue"},
		{"in queue huge", func(o *Options) { o.ChunkMaximumInQueue = 5000 }, "chunk_maximum_in_queue"},
		{"pool negative", func(o *Options) { o.FreeDiffBufferPoolSize = -1 }, "free_diff_buffer_pool_size"},
		{"portion small", func(o *Options) { o.DiffStorageMinimum = 4096 }, "diff_storage_minimum"},
		{"portion unaligned", func(o *Options) { o.DiffStorageMinimum = 1<<20 + 512 }, "diff_storage_minimum"},
		{"portion negative", func(o *Options) { o.DiffStorageMinimum = -1 << 20 }, "diff_storage_minimum"},
		{"workers", func(o *Options) { o.StoreWorkers = 65 }, "store_workers"},
		{"workers negative", func(o *Options) { o.StoreWorkers = -1 }, "store_workers"},
		{"events", func(o *Options) { o.EventQueueSize = -1 }, "event queue size"},
	}
	d, data := tuOrigin(t, "", 1<<20, 1)
	for _, c := range cases {
		o := Options{}
		c.set(&o)
		o.EnsureDefaults()
		wantInvalid(t, c.name, o.Validate(), c.word)
		o = Options{}
		c.set(&o)
		_, err := NewSnapshot([]*Device{d}, StorageConfig{Path: t.TempDir(), Limit: 1 << 30}, o)
		wantInvalid(t, "NewSnapshot with "+c.name, err, c.word)
	}
	o := Options{}
	if err := o.EnsureDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tuMustEqual(t, "origin", tuRead(t, d, 0, len(data)), data, 0)
}

func TestBadSnapshot(t *testing.T) {
	dir := t.TempDir()
	// Warm the synchronous API's pool: failed snapshots must not leak.
	a, dataA := tuOrigin(t, dir, 1<<20, 1)
	b, dataB := tuOrigin(t, dir, 1<<20, 2)
	tuRead(t, a, 0, 512)
	fds := tuFDs(t)
	opts := tuOpts(14, 2)
	store := StorageConfig{Path: dir, Limit: 1 << 30}

	_, err := NewSnapshot(nil, store, opts)
	wantInvalid(t, "no devices", err, "at least one device")
	_, err = NewSnapshot([]*Device{a, nil}, store, opts)
	wantInvalid(t, "nil device", err, "nil or closed")
	_, err = NewSnapshot([]*Device{a, b, a}, store, opts)
	wantInvalid(t, "device twice", err, "given twice", a.Path())
	a2, err := OpenDevice(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSnapshot([]*Device{a, a2}, store, opts)
	wantInvalid(t, "the same file through two Devices", err, "given twice")
	a2.Close()
	_, err = NewSnapshot([]*Device{a2}, store, opts)
	wantInvalid(t, "closed device", err, "nil or closed")

	_, err = NewSnapshot([]*Device{a, b}, StorageConfig{Path: b.Path(), Limit: 1 << 20}, opts)
	wantInvalid(t, "storage on an original", err, "one of the snapshot's original devices")
	_, err = NewSnapshot([]*Device{a}, StorageConfig{Limit: 1 << 20}, opts)
	wantInvalid(t, "no storage path", err, "no path")
	_, err = NewSnapshot([]*Device{a}, StorageConfig{Path: dir}, opts)
	wantInvalid(t, "no limit", err, "limit is required")
	_, err = NewSnapshot([]*Device{a}, StorageConfig{Path: dir, Limit: -4096}, opts)
	wantInvalid(t, "negative limit", err, "multiples of 4096")
	_, err = NewSnapshot([]*Device{a}, StorageConfig{Path: dir, Limit: 1000}, opts)
	wantInvalid(t, "unaligned limit", err, "multiples of 4096")

	// A big (sparse) device whose chunks would exceed chunk_maximum_shift.
	bigPath := filepath.Join(dir, "big")
	f, err := os.Create(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 40)
	f.Close()
	bigDev, err := OpenDevice(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	bigOpts := Options{ChunkMaximumCount: 1 << 20, ChunkMaximumShift: 19, DiffStorageMinimum: 1 << 20}
	_, err = NewSnapshot([]*Device{a, bigDev}, store, bigOpts)
	wantInvalid(t, "chunks above the maximum shift", err, bigPath, "1<<20", "chunk_maximum_shift 19")
	bigOpts.ChunkMaximumShift = 20
	sb, err := NewSnapshot([]*Device{bigDev}, store, bigOpts)
	if err != nil {
		t.Fatalf("a 1 TiB device with 1 MiB chunks: %v", err)
	}
	if got := sb.Image(bigDev).ChunkSize(); got != 1<<20 {
		t.Fatalf("chunk size %d, want 1 MiB", got)
	}
	tuDestroy(t, sb)
	bigDev.Close()
	if fi, err := os.Stat(bigPath); err != nil || fi.Size() != 1<<40 {
		t.Fatalf("big device changed: %v %v", fi, err)
	}

	// A device already covered by a live snapshot.
	s := tuSnap(t, []*Device{a}, StorageConfig{}, opts)
	_, err = NewSnapshot([]*Device{b, a}, store, opts)
	wantInvalid(t, "device in another snapshot", err, "already has a snapshot")
	wantInvalid(t, "closing a covered device", a.Close(), "live snapshot")
	if s.Image(b) != nil {
		t.Fatal("Image of a device not in the snapshot")
	}
	// The refused snapshot left b free and s intact.
	sb2 := tuSnap(t, []*Device{b}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	w := tuPattern(4096, 9)
	if _, err := a.WriteAt(w, 8192); err != nil {
		t.Fatal(err)
	}
	tuMustEqual(t, "image of the first snapshot", tuRead(t, s.Image(a), 0, len(dataA)), dataA, 0)

	// AppendStorage refusals.
	wantInvalid(t, "append an original", s.AppendStorage(a.Path(), 0, 1<<20), "original devices")
	wantInvalid(t, "append a missing file", s.AppendStorage(filepath.Join(dir, "nope"), 0, 1<<20), "nope")
	extra := filepath.Join(dir, "extra")
	os.WriteFile(extra, nil, 0o600)
	wantInvalid(t, "append unaligned", s.AppendStorage(extra, 100, 1<<20), "multiples of 4096")
	wantInvalid(t, "append without a length", s.AppendStorage(extra, 0, 0), "length is required")
	wantInvalid(t, "append with no path", s.AppendStorage("", 0, 4096), "no path")

	tuDestroy(t, sb2)
	tuDestroy(t, s)
	if err := s.Take(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Take after Destroy: %v", err)
	}
	if err := s.AppendStorage(extra, 0, 4096); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendStorage after Destroy: %v", err)
	}
	if _, err := s.Image(a).WriteAt(w, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("image write after Destroy: %v", err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	copy(dataA[8192:], w)
	tuMustEqual(t, "origin a", tuRead(t, a, 0, len(dataA)), dataA, 0)
	tuMustEqual(t, "origin b", tuRead(t, b, 0, len(dataB)), dataB, 0)
	if got := tuFDs(t); got != fds {
		t.Fatalf("%d file descriptors after the refused and destroyed snapshots, %d before", got, fds)
	}
}

// Appending a piece of the difference storage that is already in it would
// hand out the same bytes twice (regions must never overlap): refused.
func TestBadAppendOverlap(t *testing.T) {
	const shift, chunk = 16, 1 << 16
	dir := t.TempDir()
	d, data := tuOrigin(t, dir, 32*chunk, 1)
	storePath := filepath.Join(dir, "diff")
	s := tuSnap(t, []*Device{d}, StorageConfig{Path: storePath, Limit: 1 << 20}, tuOpts(shift, 4))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "extra")
	os.WriteFile(extra, nil, 0o600)
	if err := s.AppendStorage(extra, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, "append the storage file itself", s.AppendStorage(storePath, 0, 1<<20), "already")
	wantInvalid(t, "append an appended range again", s.AppendStorage(extra, 512<<10, 1<<20), "already")
	// A disjoint range of an appended file is fine.
	if err := s.AppendStorage(extra, 1<<20, 1<<20); err != nil {
		t.Fatalf("append a disjoint range: %v", err)
	}
	// Fill well past the first piece: every stored chunk must stay intact.
	for k := int64(0); k < 30; k++ {
		if _, err := d.WriteAt(tuPattern(512, k), k*chunk); err != nil {
			t.Fatal(err)
		}
	}
	waitStored(t, s)
	tuMustEqual(t, "image", tuRead(t, s.Image(d), 0, len(data)), data, 0)
}
