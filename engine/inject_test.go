package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInjectorsCompose: the combinators select, count and draw as their
// docs say (table-driven over a fixed I/O sequence).
func TestInjectorsCompose(t *testing.T) {
	d1, d2 := &Device{}, &Device{}
	ios := []FaultIO{
		{Op: FaultRead, Target: FaultOrigin, Device: d1, Off: 0, Len: 4096},
		{Op: FaultWrite, Target: FaultOrigin, Device: d2, Off: 8192, Len: 4096},
		{Op: FaultDiscard, Target: FaultOrigin, Device: d1, Off: 4096, Len: 4096},
		{Op: FaultWrite, Target: FaultDiffStorage, Device: d1, Off: 0, Len: 4096},
		{Op: FaultGrow, Target: FaultDiffStorage, Off: 1 << 20, Len: 1 << 20},
		{Op: FaultFlush, Target: FaultOrigin, Device: d2},
	}
	eio := FailWith(unix.EIO)
	for _, c := range []struct {
		name string
		inj  Injector
		want string // per I/O: x injected, . not
	}{
		{"always", eio, "xxxxxx"},
		{"ops", If(OnOps(FaultWrite, FaultFlush), eio), ".x.x.x"},
		{"target", If(OnTarget(FaultDiffStorage), eio), "...xx."},
		{"device", If(OnDevice(d2), eio), ".x...x"},
		{"range", If(InRange(4096, 4096), eio), "..x..."},
		{"all of", If(AllOf(OnTarget(FaultOrigin), OnOps(FaultWrite)), eio), ".x...."},
		{"nth", OnNth(3, eio), "..x..."},
		{"times", Times(2, If(OnTarget(FaultOrigin), eio)), "xx...."},
		{"any of", AnyOf(If(OnOps(FaultGrow), eio), If(OnDevice(d2), eio)), ".x..xx"},
		{"never", Randomly(0, 1, eio), "......"},
		{"certain", Randomly(1, 1, eio), "xxxxxx"},
	} {
		got := make([]byte, len(ios))
		for i, io := range ios {
			got[i] = '.'
			if inj, ok := c.inj.Inject(io); ok {
				got[i] = 'x'
				if inj.Errno != unix.EIO {
					t.Errorf("%s: I/O %d injected %+v, want EIO", c.name, i, inj)
				}
			}
		}
		if string(got) != c.want {
			t.Errorf("%s: injected %s, want %s", c.name, got, c.want)
		}
	}
	// The same seed draws the same faults.
	draw := func(seed int64) string {
		inj := Randomly(0.5, seed, eio)
		b := make([]byte, 64)
		for i := range b {
			b[i] = '.'
			if _, ok := inj.Inject(ios[i%len(ios)]); ok {
				b[i] = 'x'
			}
		}
		return string(b)
	}
	if a, b := draw(42), draw(42); a != b {
		t.Errorf("seed 42 drew %s then %s", a, b)
	}
	if a, b := draw(42), draw(43); a == b {
		t.Errorf("seeds 42 and 43 drew the same %s", a)
	}
}

// TestInjectOriginFallocateAndFlush: discard, write-zeroes and flush go
// through the seam (they skipped the old fault plan): an injected errno
// fails the request and leaves the original untouched; the image, copied
// first, is intact.
func TestInjectOriginFallocateAndFlush(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 8*chunk, 1)
	inj := &Counted{Injector: If(OnOps(FaultDiscard, FaultWriteZeroes, FaultFlush), FailWith(unix.EIO))}
	opts := tuOpts(shift, 4)
	opts.Inject = inj
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	q := newAsyncQ(t, 4, chunk)
	reqs := []*Request{
		{Op: OpOriginDiscard, Device: d, Off: chunk, Len: chunk},
		{Op: OpOriginWriteZeroes, Device: d, Off: 3 * chunk, Len: chunk},
		{Op: OpOriginFlush, Device: d},
	}
	if err := q.run(reqs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if !errors.Is(r.Err, unix.EIO) {
			t.Errorf("%s with an injected EIO: %v", r.Op, r.Err)
		}
	}
	if inj.Hits() != 3 {
		t.Errorf("%d faults injected, want 3", inj.Hits())
	}
	tuMustEqual(t, "original after failed discard and write-zeroes", tuRead(t, d, 0, 8*chunk), data, 0)
	tuMustEqual(t, "image", tuRead(t, s.Image(d), 0, 8*chunk), data, 0)
}

// TestInjectGrowthAndAppend: the difference storage's fallocates go
// through the seam: a failed growth raises EventNoSpace and the snapshot
// overflows (the image is corrupted, the original keeps working); a failed
// allocation of an appended file fails AppendStorage.
func TestInjectGrowthAndAppend(t *testing.T) {
	const shift, chunk = 16, 1 << 16
	const portion = 1 << 20
	dir := t.TempDir()
	d, _ := tuOrigin(t, dir, 32*chunk, 1)
	opts := tuOpts(shift, 4)
	// The first growth is the storage's creation; fail every later one.
	grows := 0
	opts.Inject = If(OnOps(FaultGrow), InjectorFunc(func(FaultIO) (Injection, bool) {
		grows++ // one grower goroutine after creation: no race
		return Injection{Errno: unix.ENOSPC}, grows > 1
	}))
	s := tuSnap(t, []*Device{d}, StorageConfig{Path: filepath.Join(dir, "diff"), Limit: 4 * portion}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, chunk)
	for n := int64(0); n < 32; n++ {
		if _, err := d.WriteAt(buf, n*chunk); err != nil {
			t.Fatalf("origin write %d: %v (the original keeps working)", n, err)
		}
	}
	e, _ := tuWaitEvent(t, s, EventNoSpace, "")
	if !errors.Is(e.Err, unix.ENOSPC) {
		t.Errorf("no-space event %v: want the injected ENOSPC", e)
	}
	tuWaitEvent(t, s, EventCorrupted, d.Path())
	more := filepath.Join(dir, "more")
	if err := os.WriteFile(more, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s2Opts := tuOpts(shift, 4)
	s2Opts.Inject = If(OnOps(FaultFallocate), FailWith(unix.EIO))
	d2, _ := tuOrigin(t, dir, 4*chunk, 2)
	s2 := tuSnap(t, []*Device{d2}, StorageConfig{}, s2Opts)
	if err := s2.AppendStorage(more, 0, portion); !errors.Is(err, unix.EIO) {
		t.Fatalf("append with an injected fallocate EIO: %v", err)
	}
}
