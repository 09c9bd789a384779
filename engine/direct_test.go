package engine

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// directOrigin writes a pseudo-random original of size bytes at path (a
// file) and opens it with O_DIRECT, or skips where the file system lacks it.
func directOrigin(t *testing.T, path string, size int64) (*Device, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(3)).Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDeviceWith(path, DeviceOptions{Direct: true})
	if err != nil && strings.Contains(err.Error(), "O_DIRECT") {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, data
}

// checkDirectCOW takes a snapshot of d, overwrites the origin across a
// chunk boundary and checks the image (from memory, then from the
// difference storage) and the origin, byte for byte.
func checkDirectCOW(t *testing.T, d *Device, orig []byte) {
	t.Helper()
	if !d.Direct() || d.Alignment() < 512 {
		t.Fatalf("Direct() %v, Alignment() %d", d.Direct(), d.Alignment())
	}
	s := tuSnap(t, []*Device{d}, StorageConfig{Limit: 64 << 20}, smallOpts())
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	w := bytes.Repeat([]byte{0xD1}, 16384)
	if _, err := d.WriteAt(w, 65536-8192); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(orig))
	for pass := range 2 {
		if _, err := img.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		tuMustEqual(t, "image", got, orig, 0)
		if pass == 0 {
			waitStored(t, s)
		}
	}
	now := make([]byte, len(w))
	if _, err := d.ReadAt(now, 65536-8192); err != nil || !bytes.Equal(now, w) {
		t.Fatalf("origin lost the write (%v)", err)
	}
	if st := s.Stats(); st.ChunksCopied != 2 {
		t.Fatalf("%d chunks copied, want 2", st.ChunksCopied)
	}
	tuDestroy(t, s)
}

// TestDirectDevice: an original opened with O_DIRECT serves copy-on-write
// and image reads like a buffered one; the page cache holds none of it.
func TestDirectDevice(t *testing.T) {
	d, orig := directOrigin(t, filepath.Join(t.TempDir(), "origin"), 4<<20)
	checkDirectCOW(t, d, orig)
}

// TestDirectDeviceAlignment: on a block device with 4 KiB logical blocks
// (a loop device made so), O_DIRECT requests must be 4 KiB-aligned: a
// 512-byte-aligned one is refused with ErrInvalid before any I/O, where a
// buffered open takes it; aligned copy-on-write works.
func TestDirectDeviceAlignment(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not found")
	}
	const size = 4 << 20
	data := make([]byte, size)
	rand.New(rand.NewSource(4)).Read(data)
	f := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--sector-size", "4096", f).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: losetup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	d, err := OpenDeviceWith(loop, DeviceOptions{Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if d.Alignment() != 4096 {
		t.Fatalf("Alignment() = %d on a 4 KiB-sector loop device", d.Alignment())
	}
	buf := make([]byte, 4096)
	if _, err := d.ReadAt(buf[:512], 512); !errors.Is(err, ErrInvalid) {
		t.Fatalf("512-byte read at 512 with O_DIRECT: %v, want ErrInvalid", err)
	}
	if _, err := d.WriteAt(buf[:512], 4096); !errors.Is(err, ErrInvalid) {
		t.Fatalf("512-byte write with O_DIRECT: %v, want ErrInvalid", err)
	}
	b, err := OpenDevice(loop)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAt(buf[:512], 512); err != nil {
		t.Fatalf("buffered 512-byte read: %v", err)
	}
	tuMustEqual(t, "buffered read", buf[:512], data[512:1024], 512)
	b.Close()
	checkDirectCOW(t, d, data)
}
