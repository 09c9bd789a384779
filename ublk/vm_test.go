package ublk

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tests named TestVM* need the ublk driver: they skip without
// /dev/ublk-control, unless SNAPRING_VM=1 (set by the VM harness, whose
// kernel has ublk_drv loaded), where a missing driver is a failure.

func requireUblk(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(ControlPath); err != nil {
		if os.Getenv("SNAPRING_VM") == "1" {
			t.Fatalf("SNAPRING_VM=1 but %s is missing: %v", ControlPath, err)
		}
		t.Skipf("no ublk driver (%s missing; run in the VM: make vm-test)", ControlPath)
	}
	if os.Geteuid() != 0 {
		t.Skip("ublk devices need root")
	}
}

// backingFile makes a file of size bytes of seeded random data and returns
// its path and contents.
func backingFile(t *testing.T, size int, seed uint64) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	path := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// alignedBuf is page-aligned memory for O_DIRECT.
func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func newPassthroughDevice(t *testing.T, path string, cfg DeviceConfig) (*Device, *Passthrough) {
	t.Helper()
	pt, err := OpenPassthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Create(cfg, pt)
	if err != nil {
		pt.Close()
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		d.Close()
		pt.Close()
	})
	return d, pt
}

func openDirect(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// requireZeroCopy skips where the driver lacks UBLK_F_AUTO_BUF_REG (before
// Linux 6.16; the VM runs 6.18, where it must be there).
func requireZeroCopy(t *testing.T) {
	t.Helper()
	f, err := ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if f&FeatureAutoBufReg == 0 {
		t.Skipf("no zero copy: the driver (features %v) lacks UBLK_F_AUTO_BUF_REG (Linux 6.16)", f)
	}
}

func TestVMFeatures(t *testing.T) {
	requireUblk(t)
	f, err := ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("driver features %#x: %v", uint64(f), f)
	if f&FeatureCmdIoctlEncode == 0 {
		t.Errorf("no CMD_IOCTL_ENCODE: the VM's kernel (6.12 and later) has it")
	}
}

// TestVMPassthrough writes and reads random ranges concurrently through
// /dev/ublkbN with O_DIRECT, checks every read against a model, then
// checks the whole device and the backing file.
func TestVMPassthrough(t *testing.T) {
	requireUblk(t)
	const size = 16 << 20
	for _, c := range []struct {
		name   string
		mode   UserCopyMode
		zc     ZeroCopyMode
		queues int
	}{
		{"usercopy/1q", UserCopyOn, ZeroCopyAuto, 1},
		{"usercopy/2q", UserCopyOn, ZeroCopyAuto, 2},
		{"addr/1q", UserCopyOff, ZeroCopyAuto, 1},
		{"addr/2q", UserCopyOff, ZeroCopyAuto, 2},
		{"zerocopy/1q", UserCopyAuto, ZeroCopyOn, 1},
		{"zerocopy/2q", UserCopyAuto, ZeroCopyOn, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.zc == ZeroCopyOn {
				requireZeroCopy(t)
			}
			path, model := backingFile(t, size, 1)
			d, _ := newPassthroughDevice(t, path, DeviceConfig{Queues: c.queues, Depth: 16, MaxIOBytes: 256 << 10, UserCopy: c.mode, ZeroCopy: c.zc})
			if d.UserCopy() != (c.mode == UserCopyOn) || d.ZeroCopy() != (c.zc == ZeroCopyOn) {
				t.Fatalf("UserCopy() = %v, ZeroCopy() = %v", d.UserCopy(), d.ZeroCopy())
			}
			t.Logf("%s: %d queues, features %v", d.Name(), d.Info().NrHWQueues, Features(d.Info().Flags))
			st, err := d.Status()
			if err != nil || st.State != DevStateLive || st.ServerPID != int32(os.Getpid()) {
				t.Fatalf("Status = %+v, %v: want live, served by us", st, err)
			}
			p, err := d.ctrl.getParams(d.ID())
			if err != nil {
				t.Fatal(err)
			}
			if p.basic.devSectors != size>>9 || p.types&paramTypeDevt == 0 || p.devt.diskMajor == 0 {
				t.Fatalf("GET_PARAMS: %+v", p)
			}
			dev := openDirect(t, d.Name())
			const workers = 4
			stripe := size / workers
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- randomIO(dev, model[w*stripe:(w+1)*stripe], int64(w*stripe), uint64(w), alignedBuf(t, 1<<20))
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			whole := alignedBuf(t, size)
			if _, err := dev.ReadAt(whole, 0); err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(whole, model); i >= 0 {
				t.Fatalf("device differs from the model at byte %d", i)
			}
			dev.Close()
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, model); i >= 0 {
				t.Fatalf("backing file differs from the model at byte %d", i)
			}
		})
	}
}

// randomIO does writes and verified reads of random 4 KiB-aligned ranges
// inside model (the part of the device at base).
func randomIO(dev *os.File, model []byte, base int64, seed uint64, buf []byte) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	maxBlocks := min(len(buf), len(model)) / 4096
	for i := range 120 {
		n := (1 + rng.IntN(maxBlocks)) * 4096
		off := rng.IntN((len(model)-n)/4096+1) * 4096
		b := buf[:n]
		if rng.IntN(2) == 0 {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if _, err := dev.WriteAt(b, base+int64(off)); err != nil {
				return fmt.Errorf("op %d: write %d at %d: %w", i, n, base+int64(off), err)
			}
			copy(model[off:], b)
		} else {
			if _, err := dev.ReadAt(b, base+int64(off)); err != nil {
				return fmt.Errorf("op %d: read %d at %d: %w", i, n, base+int64(off), err)
			}
			if j := firstDiff(b, model[off:off+n]); j >= 0 {
				return fmt.Errorf("op %d: read %d at %d differs at byte %d", i, n, base+int64(off), j)
			}
		}
	}
	return nil
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Block-device ioctls (linux/fs.h) taking a {start, length} byte range.
const (
	ioctlBlkDiscard = 0x1277 // BLKDISCARD, _IO(0x12, 119)
	ioctlBlkZeroout = 0x127f // BLKZEROOUT, _IO(0x12, 127)
)

func blkRange(f *os.File, req uintptr, off, n uint64) error {
	r := [2]uint64{off, n}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&r)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return errno
	}
	return nil
}

func TestVMDiscard(t *testing.T) {
	requireUblk(t)
	const size = 8 << 20
	path, model := backingFile(t, size, 2)
	d, _ := newPassthroughDevice(t, path, DeviceConfig{Depth: 8})
	name := filepath.Base(d.Name())
	maxDiscard, _ := os.ReadFile("/sys/block/" + name + "/queue/discard_max_bytes")
	if strings.TrimSpace(string(maxDiscard)) == "0" {
		t.Fatalf("%s does not advertise discard", d.Name())
	}
	dev := openDirect(t, d.Name())
	defer dev.Close()
	for _, c := range []struct {
		name   string
		req    uintptr
		off, n uint64
	}{
		{"BLKDISCARD", ioctlBlkDiscard, 1 << 20, 256 << 10},
		{"BLKZEROOUT", ioctlBlkZeroout, 3 << 20, 1 << 20},
	} {
		if err := blkRange(dev, c.req, c.off, c.n); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		clear(model[c.off : c.off+c.n])
	}
	buf := alignedBuf(t, size)
	if _, err := dev.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(buf, model); i >= 0 {
		t.Fatalf("after discard and zero-out the device differs from the model at byte %d", i)
	}
	dev.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if i := firstDiff(got, model); i >= 0 {
		t.Fatalf("backing file differs from the model at byte %d", i)
	}
}

// noUblkDevices checks that no ublk block or character device is left.
func noUblkDevices(t *testing.T) {
	t.Helper()
	for _, pattern := range []string{"/sys/block/ublkb*", "/sys/class/ublk-char/ublkc*", "/dev/ublkb*", "/dev/ublkc*"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			t.Errorf("left behind: %v", m)
		}
	}
}

// TestVMCleanShutdown closes a device while a reader keeps it busy: Close
// must serve what is in flight, stop and delete the device, and leave
// nothing in /sys/block or /dev.
func TestVMCleanShutdown(t *testing.T) {
	requireUblk(t)
	path, _ := backingFile(t, 4<<20, 3)
	pt, err := OpenPassthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	d, err := Create(DeviceConfig{Queues: 2, Depth: 8}, pt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/block/" + filepath.Base(d.Name())); err != nil {
		t.Fatalf("started device not in /sys/block: %v", err)
	}
	dev := openDirect(t, d.Name())
	buf := alignedBuf(t, 64<<10)
	reads := make(chan int)
	go func() {
		n := 0
		for ; ; n++ {
			if _, err := dev.ReadAt(buf, int64(n%64)*int64(len(buf))); err != nil {
				break
			}
		}
		// The driver frees the device when its last opener is gone.
		dev.Close()
		reads <- n
	}()
	time.Sleep(200 * time.Millisecond)
	// STOP_DEV lets the reads in flight finish, then fails further I/O:
	// the reader ends with an error while it still holds the device open.
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n := <-reads
	t.Logf("reader did %d reads before the device went away", n)
	if n == 0 {
		t.Errorf("no read succeeded before Close")
	}
	select {
	case <-d.Done():
	default:
		t.Errorf("Done not closed after Close")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	noUblkDevices(t)
}

// TestVMCloseWhileOpen closes a device that a process still holds open:
// Close reports ErrBusy after deleteWait, and the driver removes the device
// once the opener closes it.
func TestVMCloseWhileOpen(t *testing.T) {
	requireUblk(t)
	old := deleteWait
	deleteWait = 300 * time.Millisecond
	defer func() { deleteWait = old }()
	path, _ := backingFile(t, 1<<20, 8)
	pt, err := OpenPassthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	d, err := Create(DeviceConfig{Depth: 4}, pt)
	if err != nil {
		t.Fatal(err)
	}
	dev := openDirect(t, d.Name())
	err = d.Close()
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Close with the device open: %v, want ErrBusy", err)
	}
	t.Logf("Close: %v", err)
	dev.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/sys/class/ublk-char/ublkc%d", d.ID())); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %d still present 5s after its last opener closed it", d.ID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	noUblkDevices(t)
}

type failingInit struct{ Null }

func (failingInit) Init(q *Queue) error {
	if q.ID() == 1 {
		return errors.New("queue 1 refuses")
	}
	return nil
}

func TestVMInitFailureLeavesNothing(t *testing.T) {
	requireUblk(t)
	_, err := Create(DeviceConfig{Queues: 2, Depth: 4, SizeBytes: 1 << 20}, failingInit{})
	if err == nil || !strings.Contains(err.Error(), "queue 1 refuses") {
		t.Fatalf("Create: %v, want the Init error", err)
	}
	noUblkDevices(t)
}

// parkingTarget holds every request until another goroutine says go, the
// way the snapshot engine parks requests on a chunk being copied.
type parkingTarget struct {
	*Passthrough
	mu     sync.Mutex
	parked map[*Queue][]uint16
	ready  map[*Queue][]uint16
	woken  int
}

func (p *parkingTarget) Handle(q *Queue, tag uint16, io *IO) {
	p.mu.Lock()
	p.parked[q] = append(p.parked[q], tag)
	p.mu.Unlock()
	go func() {
		time.Sleep(time.Millisecond)
		p.mu.Lock()
		i := 0
		for i < len(p.parked[q]) && p.parked[q][i] != tag {
			i++
		}
		p.parked[q] = append(p.parked[q][:i], p.parked[q][i+1:]...)
		p.ready[q] = append(p.ready[q], tag)
		p.mu.Unlock()
		q.Wake()
	}()
}

func (p *parkingTarget) Wake(q *Queue) {
	p.mu.Lock()
	tags := p.ready[q]
	p.ready[q] = nil
	p.woken++
	p.mu.Unlock()
	for _, tag := range tags {
		p.Passthrough.Handle(q, tag, q.IO(tag))
	}
}

func TestVMWake(t *testing.T) {
	requireUblk(t)
	path, model := backingFile(t, 4<<20, 4)
	pt, err := OpenPassthrough(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	target := &parkingTarget{Passthrough: pt, parked: map[*Queue][]uint16{}, ready: map[*Queue][]uint16{}}
	d, err := Create(DeviceConfig{Queues: 2, Depth: 8}, target)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dev := openDirect(t, d.Name())
	err = randomIO(dev, model, 0, 9, alignedBuf(t, 256<<10))
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if target.woken == 0 {
		t.Errorf("Wake never ran")
	}
	t.Logf("target woken %d times", target.woken)
}

// TestVMFio runs fio with data verification against the passthrough device.
func TestVMFio(t *testing.T) {
	requireUblk(t)
	fio, err := exec.LookPath("fio")
	if err != nil {
		if os.Getenv("SNAPRING_VM") == "1" {
			t.Fatal("fio not found in the VM")
		}
		t.Skip("fio not found")
	}
	path, _ := backingFile(t, 32<<20, 5)
	d, _ := newPassthroughDevice(t, path, DeviceConfig{Queues: 2, Depth: 32})
	for _, job := range [][]string{
		{"--rw=randwrite", "--bs=4k", "--iodepth=32"},
		{"--rw=write", "--bsrange=4k-256k", "--iodepth=8"},
	} {
		args := append([]string{
			"--name=verify", "--filename=" + d.Name(), "--ioengine=io_uring", "--direct=1",
			"--size=16M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
			"--numjobs=1", "--output-format=terse", "--terse-version=3",
		}, job...)
		out, err := exec.Command(fio, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("fio %v: %v\n%s", job, err, out)
		}
		fields := strings.Split(strings.TrimSpace(string(out)), ";")
		if len(fields) > 48 {
			t.Logf("fio %v: write %s KiB/s, %s IOPS; read (verify) %s KiB/s", job, fields[47], fields[48], fields[6])
		}
	}
}

// TestVMNoAllocsPerIO checks that serving requests does not allocate: the
// process's malloc count over many reads stays far below one per read.
func TestVMNoAllocsPerIO(t *testing.T) {
	requireUblk(t)
	path, _ := backingFile(t, 4<<20, 6)
	d, _ := newPassthroughDevice(t, path, DeviceConfig{Depth: 8})
	dev := openDirect(t, d.Name())
	defer dev.Close()
	buf := alignedBuf(t, 4096)
	fd := int(dev.Fd())
	do := func(n int) {
		for i := range n {
			if _, err := unix.Pread(fd, buf, int64(i%1024)*4096); err != nil {
				t.Fatal(err)
			}
			if _, err := unix.Pwrite(fd, buf, int64(i%1024)*4096); err != nil {
				t.Fatal(err)
			}
		}
	}
	do(200)
	const ios = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	do(ios / 2)
	runtime.ReadMemStats(&after)
	allocs := after.Mallocs - before.Mallocs
	t.Logf("%d allocations over %d requests", allocs, ios)
	if allocs > ios/20 {
		t.Errorf("%d allocations over %d requests: the hot path allocates", allocs, ios)
	}
}
