package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func smallOpts() Options {
	return Options{ChunkMinimumShift: 16, ChunkMaximumInQueue: 4, DiffStorageMinimum: 1 << 20}
}

func TestBasicCOW(t *testing.T) {
	d, orig := tuOrigin(t, "", 4<<20, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: 64 << 20}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	// Overwrite the origin across a chunk boundary (chunks are 64 KiB).
	w := bytes.Repeat([]byte{0xEE}, 8192)
	if _, err := d.WriteAt(w, 65536-4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4<<20)
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, orig) {
		t.Fatal("image differs from the origin as of take")
	}
	now := make([]byte, 8192)
	d.ReadAt(now, 65536-4096)
	if !bytes.Equal(now, w) {
		t.Fatal("origin lost the write")
	}
	// Image write lands in the image only.
	iw := bytes.Repeat([]byte{0x11}, 4096)
	if _, err := img.WriteAt(iw, 1<<20); err != nil {
		t.Fatal(err)
	}
	img.ReadAt(now[:4096], 1<<20)
	if !bytes.Equal(now[:4096], iw) {
		t.Fatal("image write not visible in the image")
	}
	d.ReadAt(now[:4096], 1<<20)
	if !bytes.Equal(now[:4096], orig[1<<20:1<<20+4096]) {
		t.Fatal("image write reached the origin")
	}
	// Let the store workers store everything, then read again from the diff storage.
	waitStored(t, s)
	st := s.Stats()
	if st.ChunksStored < 3 || st.ChunksCopied != 2 {
		t.Fatalf("stats %+v", st)
	}
	img.ReadAt(got, 0)
	copy(orig[1<<20:], iw)
	if !bytes.Equal(got, orig) {
		t.Fatal("image differs after storing")
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := img.ReadAt(got[:512], 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after destroy: %v", err)
	}
}

// TestWriteZeroesOnTmpfs: where ZERO_RANGE is unsupported (tmpfs), write-
// zeroes falls back to a punched hole, after copying the chunk.
func TestWriteZeroesOnTmpfs(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	d, orig := tuOrigin(t, "/dev/shm", 1<<20, 5)
	t.Cleanup(func() { os.Remove(d.Path()) })
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: 16 << 20}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	r := Request{Op: OpOriginWriteZeroes, Device: d, Off: 60 << 10, Len: 8 << 10}
	if err := q.Submit(&r); err != nil {
		t.Fatal(err)
	}
	var out [1]*Request
	for n, _ := q.Poll(out[:], 1); n == 0; n, _ = q.Poll(out[:], 1) {
	}
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	got := make([]byte, 8<<10)
	d.ReadAt(got, 60<<10)
	if !bytes.Equal(got, make([]byte, 8<<10)) {
		t.Fatal("origin range not zeroed")
	}
	s.Image(d).ReadAt(got, 60<<10)
	if !bytes.Equal(got, orig[60<<10:68<<10]) {
		t.Fatal("write-zeroes reached the image")
	}
}

// TestStorageRefusals: a storage file the engine created is removed again
// when the snapshot is refused, and no snapshot may use another live
// snapshot's original as its difference storage.
func TestStorageRefusals(t *testing.T) {
	d1, _ := tuOrigin(t, "", 1<<20, 1)
	dir := t.TempDir()
	missing := filepath.Join(dir, "diff.img")
	if _, err := NewSnapshot([]*Device{d1}, StorageConfig{Path: missing}, smallOpts()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no limit: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused snapshot left %s behind (%v)", missing, err)
	}
	s1 := tuSnap(t, []*Device{d1}, StorageConfig{Limit: 16 << 20}, smallOpts())
	d2, _ := tuOrigin(t, "", 1<<20, 2)
	if _, err := NewSnapshot([]*Device{d2}, StorageConfig{Path: d1.Path(), Limit: 1 << 20}, smallOpts()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another snapshot's original as storage: %v", err)
	}
	s1.Destroy()
	<-s1.Done()
	// Once that snapshot is gone, the file is no longer anyone's original.
	s2, err := NewSnapshot([]*Device{d2}, StorageConfig{Path: filepath.Join(dir, "other.img"), Limit: 4 << 20}, smallOpts())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.AppendStorage(d1.Path(), 0, 1<<20); err != nil {
		t.Fatalf("append a file no live snapshot covers: %v", err)
	}
	s2.Destroy()
	<-s2.Done()
}

// TestQueueCloseDisarms: Close first cancels the armed doorbell read and
// waits for it, so the kernel cannot complete it into the unmapped arena:
// after disarm, ringing the doorbell completes nothing.
func TestQueueCloseDisarms(t *testing.T) {
	q, err := NewQueue(4)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s, err := q.ring.NextSQE()
	if err != nil {
		t.Fatal(err)
	}
	s.PrepRead(int32(q.efd), q.efdBuf, 0)
	s.SetUserData(packUD(0, kindEvent, 0))
	q.armed = true
	if _, err := q.ring.Submit(); err != nil {
		t.Fatal(err)
	}
	if !q.disarm() || q.armed {
		t.Fatal("still armed")
	}
	one := [8]byte{1}
	if _, err := unix.Write(q.efd, one[:]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := q.ring.Drain(q.cqes); n != 0 {
		t.Fatalf("%d completions after disarm (user data %#x): the read was still armed", n, q.cqes[0].UserData)
	}
}
