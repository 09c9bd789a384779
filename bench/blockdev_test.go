package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/scenarios"
)

// loopDevice attaches a file to a free loop device, or skips with the
// reason when this machine cannot.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not found")
	}
	f := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: losetup: %v: %s", err, strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// TestRunBlockDevice runs on a real block device, and refuses one in use.
func TestRunBlockDevice(t *testing.T) {
	dev := loopDevice(t, 32<<20)
	src := `
name: blockdev
devices: [{name: d0, backing: {kind: blockdev, path: ` + dev + `}}]
diff_storage: {kind: tempfile, limit: 64MiB, portion: 16MiB}
engine: {chunk_minimum_shift: 16}
phases: {run: 500ms}
workloads: [{kind: origin-write, queue_depth: 4}]
`
	sc, err := scenarios.Parse("blockdev.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), RunConfig{Scenario: sc, SkipBaseline: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine.Classes["origin-write"].Count == 0 {
		t.Fatal("no writes on the block device")
	}
	// Held exclusively (as a mounted file system would): refused, clearly.
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	_, err = Run(context.Background(), RunConfig{Scenario: sc, SkipBaseline: true})
	if !errors.Is(err, ErrRun) || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("device in use: %v", err)
	}
}

// TestCheckSmallBlockDevice: a loop device smaller than the block size is
// refused before anything runs (it used to panic in the offset generator),
// and a block device named as a kind file storage is refused too.
func TestCheckSmallBlockDevice(t *testing.T) {
	dev := loopDevice(t, 64<<10)
	for _, c := range []struct{ src, want string }{
		{`
name: small
devices: [{name: d0, backing: {kind: blockdev, path: ` + dev + `}}]
diff_storage: {kind: tempfile, limit: 64MiB}
phases: {run: 500ms}
workloads: [{kind: origin-write, block_size: 128KiB, distribution: zipf}]
`, "small.yaml:3: device d0: 64KiB is smaller than one chunk"},
		{`
name: small
devices: [{name: d0, size: 16MiB}]
diff_storage: {kind: file, path: ` + dev + `, limit: 64MiB}
phases: {run: 500ms}
workloads: [{kind: origin-write}]
`, "small.yaml:4: difference storage " + dev + " is a block device (use kind blockdev)"},
	} {
		sc, err := scenarios.Parse("small.yaml", []byte(c.src))
		if err != nil {
			t.Fatal(err)
		}
		err = Check(RunConfig{Scenario: sc})
		if !errors.Is(err, scenarios.ErrInvalid) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}
