package engine

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestLinkedFirstWrite: a first write inside one chunk goes to the kernel
// linked behind its chunk's load, and the image still shows the old
// contents; a write across two new chunks is not linked (its write must
// wait for both loads) and is correct too.
func TestLinkedFirstWrite(t *testing.T) {
	const chunk = 64 << 10
	d, orig := tuOrigin(t, "", 1<<20, 7)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	aq := newAsyncQ(t, 2, 2*chunk)
	one := Request{Op: OpOriginWrite, Device: d, Off: 3*chunk + 8192, Buf: aq.buf(0, 4096)}
	copy(one.Buf, bytes.Repeat([]byte{0xA1}, 4096))
	two := Request{Op: OpOriginWrite, Device: d, Off: 6*chunk - 4096, Buf: aq.buf(1, 8192)}
	copy(two.Buf, bytes.Repeat([]byte{0xB2}, 8192))
	if err := aq.run(&one, &two); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Request{&one, &two} {
		if r.Err != nil || !r.Copied {
			t.Fatalf("write at %d: err %v copied %v", r.Off, r.Err, r.Copied)
		}
	}
	if !one.linked {
		t.Error("a first write inside one chunk was not linked behind its load")
	}
	if two.linked {
		t.Error("a write across two new chunks was linked behind one load only")
	}
	img := make([]byte, 1<<20)
	if _, err := s.Image(d).ReadAt(img, 0); err != nil {
		t.Fatal(err)
	}
	tuMustEqual(t, "image", img, orig, 0)
	now := make([]byte, 8192)
	if _, err := d.ReadAt(now[:4096], one.Off); err != nil || !bytes.Equal(now[:4096], one.Buf) {
		t.Fatalf("origin lost the linked write (%v)", err)
	}
	if _, err := d.ReadAt(now, two.Off); err != nil || !bytes.Equal(now, two.Buf) {
		t.Fatalf("origin lost the write across chunks (%v)", err)
	}
}

// TestLinkedLoadFails: when the load a write is linked behind comes back
// short (the file under the device was cut after it was opened), the
// kernel cancels the write: it fails with the load's error, the chunk is
// not copied, and the original is neither written nor grown.
func TestLinkedLoadFails(t *testing.T) {
	const chunk = 64 << 10
	d, _ := tuOrigin(t, "", 1<<20, 8)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	cut := int64(4 * chunk)
	if err := os.Truncate(d.path, cut); err != nil {
		t.Fatal(err)
	}
	aq := newAsyncQ(t, 1, chunk)
	w := Request{Op: OpOriginWrite, Device: d, Off: 9 * chunk, Buf: aq.buf(0, 4096)}
	copy(w.Buf, bytes.Repeat([]byte{0xC3}, 4096))
	if err := aq.run(&w); err != nil {
		t.Fatal(err)
	}
	if !w.linked {
		t.Fatal("the write was not linked behind its load: this test needs the linked path")
	}
	if !errors.Is(w.Err, ErrShortIO) {
		t.Fatalf("write behind a short load: err %v, want ErrShortIO (the load's)", w.Err)
	}
	if st, err := os.Stat(d.path); err != nil || st.Size() != cut {
		t.Fatalf("original after the cancelled write: size %v (%v), want %d untouched", st.Size(), err, cut)
	}
	// The chunk went back to new: with the file restored, the same write
	// copies it and succeeds.
	if err := os.Truncate(d.path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := aq.run(&w); err != nil || w.Err != nil || !w.Copied {
		t.Fatalf("write after the restore: %v, %v, copied %v", err, w.Err, w.Copied)
	}
}

// TestImageRewriteKeepsRegion: rewriting stored chunks through the image
// stores them again in their own regions: the difference storage does not
// grow with every rewrite, and the image reads the last data written while
// the origin keeps its own.
func TestImageRewriteKeepsRegion(t *testing.T) {
	const chunk = 64 << 10
	d, orig := tuOrigin(t, "", 1<<20, 9)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	want := append([]byte(nil), orig...)
	var used int64
	for pass := 0; pass < 8; pass++ {
		for n := int64(0); n < 4; n++ {
			w := bytes.Repeat([]byte{byte(pass*16 + int(n) + 1)}, 4096)
			off := n*chunk + int64(pass)*4096
			if _, err := img.WriteAt(w, off); err != nil {
				t.Fatal(err)
			}
			copy(want[off:], w)
		}
		waitStored(t, s)
		st := s.Stats()
		if pass == 0 {
			used = st.DiffUsedBytes
		} else if st.DiffUsedBytes != used {
			t.Fatalf("pass %d: difference storage used %d bytes, %d after the first pass: rewrites took new regions", pass, st.DiffUsedBytes, used)
		}
	}
	if used != 4*chunk {
		t.Fatalf("4 chunks stored in %d bytes, want %d", used, 4*chunk)
	}
	got := make([]byte, 1<<20)
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	tuMustEqual(t, "image", got, want, 0)
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	tuMustEqual(t, "origin", got, orig, 0)
}
