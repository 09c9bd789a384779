package ublk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVMSnapshotKill9: the snapshot server (snapring snapshot run) is killed
// with SIGKILL while writers load its origin device. The kernel must not
// hang: the writers' I/O fails, the devices can be removed, and every write
// acknowledged before the kill is in the backing file.
func TestVMSnapshotKill9(t *testing.T) {
	requireUblk(t)
	bin := os.Getenv("SNAPRING_BIN")
	if bin == "" {
		if os.Getenv("SNAPRING_VM") == "1" {
			t.Fatal("SNAPRING_BIN not set in the VM")
		}
		t.Skip("SNAPRING_BIN not set (the snapring CLI to kill)")
	}
	const (
		size  = 32 << 20
		block = 64 << 10
	)
	path, _ := backingFile(t, size, 11)
	cmd := exec.Command(bin, "snapshot", "run", "--origin", path, "--storage", t.TempDir(), "--limit", "64MiB", "--chunk-shift", "16")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var names []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && (f[0] == "origin" || f[0] == "image") {
			names = append(names, f[2])
		}
		if f[0] == "image" {
			break
		}
	}
	if len(names) != 2 {
		t.Fatalf("snapring printed devices %v", names)
	}
	origin := names[0]

	// Each writer owns every other block and writes it with rising
	// generations; acked[b] is the last generation acknowledged for block b.
	var acked [size / block]atomic.Uint64
	var writes atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			f, err := os.OpenFile(origin, os.O_WRONLY|0o40000 /* O_DIRECT */, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			buf := alignedBuf(t, block)
			for gen := uint64(1); ; gen++ {
				for b := w; b < size/block; b += 2 {
					for s := 0; s < block; s += 512 {
						binary.LittleEndian.PutUint64(buf[s:], uint64(b))
						binary.LittleEndian.PutUint64(buf[s+8:], gen)
					}
					if _, err := f.WriteAt(buf, int64(b)*block); err != nil {
						return // the server is gone: the driver failed the write
					}
					acked[b].Store(gen)
					writes.Add(1)
					select {
					case <-done:
						return
					default:
					}
				}
			}
		}(w)
	}
	for writes.Load() < 300 {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		close(done)
		t.Fatal("writers still blocked 60s after the server was killed")
	}
	// Remove what the dead server left behind.
	for _, n := range names {
		id, err := strconv.Atoi(strings.TrimPrefix(n, "/dev/ublkb"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Remove(uint32(id), 10*time.Second); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove %s: %v", n, err)
		}
	}
	noUblkDevices(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for b := range acked {
		want := acked[b].Load()
		if want == 0 {
			continue
		}
		for s := b * block; s < (b+1)*block; s += 512 {
			gotB := binary.LittleEndian.Uint64(data[s:])
			gotGen := binary.LittleEndian.Uint64(data[s+8:])
			if gotB != uint64(b) || gotGen < want {
				if lost++; lost < 5 {
					t.Errorf("block %d sector %d: has block %d generation %d, acknowledged generation %d", b, (s-b*block)/512, gotB, gotGen, want)
				}
				break
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged blocks lost", lost)
	}
	t.Logf("%d writes acknowledged before the kill; all in the backing file", writes.Load())
}

var _ = filepath.Join
