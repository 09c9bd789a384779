package engine

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// A NoWait origin write fails with ErrWouldBlock (EAGAIN) when a chunk it
// touches still needs copying (new or being loaded), writing nothing; on
// chunks already copied (in memory or stored) it succeeds without copying.
func TestNoWait(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 16*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
	img := s.Image(d)
	aq := newAsyncQ(t, 2, 2*chunk)
	want := append([]byte(nil), data...)

	noWait := func(op Op, off, n int64) *Request {
		t.Helper()
		r := &aq.reqs[0]
		*r = Request{Op: op, Device: d, Off: off, NoWait: true}
		if op == OpOriginWrite {
			r.Buf = aq.buf(0, int(n))
			copy(r.Buf, tuPattern(int(n), off))
		} else {
			r.Len = n
		}
		if err := aq.run(r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	wouldBlock := func(r *Request) {
		t.Helper()
		if !errors.Is(r.Err, ErrWouldBlock) || !errors.Is(r.Err, unix.EAGAIN) {
			t.Fatalf("NoWait %s at %d: %v, want ErrWouldBlock (EAGAIN)", r.Op, r.Off, r.Err)
		}
		if r.Copied {
			t.Fatal("a NoWait write that would block copied a chunk")
		}
		tuMustEqual(t, "origin after a refused NoWait write", tuRead(t, d, 0, len(want)), want, 0)
	}
	succeeded := func(r *Request) {
		t.Helper()
		if r.Err != nil || r.Copied {
			t.Fatalf("NoWait %s at %d on copied chunks: err %v, copied %v", r.Op, r.Off, r.Err, r.Copied)
		}
		copy(want[r.Off:], r.Buf)
		tuMustEqual(t, "origin after a NoWait write", tuRead(t, d, 0, len(want)), want, 0)
	}

	// Before Take nothing needs copying.
	succeeded(noWait(OpOriginWrite, 0, 4096))
	copy(data, want) // the image will show it
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	wouldBlock(noWait(OpOriginWrite, 2*chunk, 4096))
	wouldBlock(noWait(OpOriginDiscard, 2*chunk, 4096))
	wouldBlock(noWait(OpOriginWriteZeroes, 7*chunk, 512))
	if st := s.Stats(); st.ChunksCopied != 0 {
		t.Fatalf("refused NoWait writes copied chunks: %+v", st)
	}

	// Copy chunk 2 with an ordinary write; chunk 3 is still new.
	w := tuPattern(512, 9)
	if _, err := d.WriteAt(w, 2*chunk); err != nil {
		t.Fatal(err)
	}
	copy(want[2*chunk:], w)
	succeeded(noWait(OpOriginWrite, 2*chunk+512, 4096))                 // in memory
	wouldBlock(noWait(OpOriginWrite, 3*chunk-1024, 2048))               // straddles into new chunk 3
	waitStored(t, s)                                                    // chunk 2 stored
	succeeded(noWait(OpOriginWrite, 2*chunk+8192, 4096))                // stored
	if _, err := img.WriteAt(tuPattern(512, 10), 5*chunk); err != nil { // an image write copies chunk 5
		t.Fatal(err)
	}
	succeeded(noWait(OpOriginWrite, 5*chunk+chunk/2, chunk/2))
	wouldBlock(noWait(OpOriginWrite, 6*chunk-512, 1024)) // chunk 6 is new

	// A chunk being loaded: an ordinary write on another queue has started
	// copying chunk 9 (its read is prepared, not yet reaped).
	q2 := newAsyncQ(t, 1, chunk)
	loader := &Request{Op: OpOriginWrite, Device: d, Off: 9 * chunk, Buf: q2.buf(0, 4096)}
	copy(loader.Buf, tuPattern(4096, 11))
	if err := q2.q.Submit(loader); err != nil {
		t.Fatal(err)
	}
	a := s.areas[0]
	a.chunks[9].mu.Lock()
	st9 := a.chunks[9].state
	a.chunks[9].mu.Unlock()
	if st9 != stateLoading {
		t.Fatalf("chunk 9 state %d, want loading", st9)
	}
	wouldBlock(noWait(OpOriginWrite, 9*chunk+4096, 4096))
	for q2.q.InFlight() > 0 {
		if _, err := q2.q.Poll(q2.out, 1); err != nil {
			t.Fatal(err)
		}
	}
	if loader.Err != nil || !loader.Copied {
		t.Fatalf("loader: %v copied %v", loader.Err, loader.Copied)
	}
	copy(want[9*chunk:], loader.Buf)
	succeeded(noWait(OpOriginWrite, 9*chunk+4096, 4096))
	tuMustEqual(t, "image", tuRead(t, img, 0, len(data)), func() []byte {
		b := append([]byte(nil), data...)
		copy(b[5*chunk:], tuPattern(512, 10))
		return b
	}(), 0)
}
