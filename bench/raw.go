package bench

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/uring"
)

// RawConfig is a plain io_uring load on one file or block device, with no
// snapshot: the baseline every snapring figure is compared against, and our
// side of `make bench-uring` against fio.
type RawConfig struct {
	Path       string
	Write      bool // write instead of read
	Random     bool // random offsets instead of sequential
	BlockSize  int
	QueueDepth int
	Duration   time.Duration
	Seed       int64
}

// RawResult is what a raw run measured.
type RawResult struct {
	Ops     int64
	Bytes   int64
	Elapsed time.Duration
}

// IOPS is operations per second.
func (r RawResult) IOPS() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// Validate checks the configuration.
func (c *RawConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("bench: raw: no file given")
	case c.BlockSize <= 0 || c.BlockSize%512 != 0:
		return fmt.Errorf("bench: raw: block size %d: want a positive multiple of 512", c.BlockSize)
	case c.QueueDepth < 1 || c.QueueDepth > 4096:
		return fmt.Errorf("bench: raw: queue depth %d: want 1..4096", c.QueueDepth)
	case c.Duration <= 0:
		return fmt.Errorf("bench: raw: duration %v: must be positive", c.Duration)
	}
	return nil
}

// RunRaw keeps QueueDepth operations in flight on one ring with a registered
// file and buffer for Duration.
func RunRaw(cfg RawConfig) (RawResult, error) {
	if err := cfg.Validate(); err != nil {
		return RawResult{}, err
	}
	flag := os.O_RDONLY
	if cfg.Write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(cfg.Path, flag, 0)
	if err != nil {
		return RawResult{}, fmt.Errorf("bench: raw: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return RawResult{}, fmt.Errorf("bench: raw: size of %s: %w", cfg.Path, err)
	}
	blocks := size / int64(cfg.BlockSize)
	if blocks < 1 {
		return RawResult{}, fmt.Errorf("bench: raw: %s (%d bytes) is smaller than one block of %d", cfg.Path, size, cfg.BlockSize)
	}
	// A SINGLE_ISSUER ring refuses (EEXIST) submissions from any thread but
	// the one that set it up: keep this goroutine on its thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ring, err := uring.New(uring.Options{Entries: uint32(cfg.QueueDepth), SingleIssuer: true, DeferTaskrun: true})
	if err != nil {
		ring, err = uring.New(uring.Options{Entries: uint32(cfg.QueueDepth)})
		if err != nil {
			return RawResult{}, err
		}
	}
	defer ring.Close()
	arena, err := uring.NewArena(cfg.QueueDepth * cfg.BlockSize)
	if err != nil {
		return RawResult{}, err
	}
	defer arena.Close()
	if err := ring.RegisterFiles([]int32{int32(f.Fd())}); err != nil {
		return RawResult{}, err
	}
	if err := ring.RegisterBuffers([][]byte{arena.Bytes()}); err != nil {
		return RawResult{}, err
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	var next int64
	op := uring.OpReadFixed
	if cfg.Write {
		op = uring.OpWriteFixed
	}
	prep := func(slot int) error {
		s, err := ring.NextSQE()
		if err != nil {
			return err
		}
		var blk int64
		if cfg.Random {
			blk = rng.Int63n(blocks)
		} else {
			blk = next
			next = (next + 1) % blocks
		}
		buf := arena.Slice(slot*cfg.BlockSize, cfg.BlockSize)
		if cfg.Write {
			s.PrepWriteFixed(0, buf, uint64(blk*int64(cfg.BlockSize)), 0)
		} else {
			s.PrepReadFixed(0, buf, uint64(blk*int64(cfg.BlockSize)), 0)
		}
		s.SetFlags(uring.SQEFixedFile)
		s.SetUserData(uint64(slot))
		return nil
	}
	for i := 0; i < cfg.QueueDepth; i++ {
		if err := prep(i); err != nil {
			return RawResult{}, err
		}
	}
	cqes := make([]uring.CQE, cfg.QueueDepth)
	var res RawResult
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	inflight := cfg.QueueDepth
	stopping := false
	for inflight > 0 {
		if _, err := ring.SubmitAndWait(1); err != nil {
			return res, err
		}
		n := ring.Drain(cqes)
		for _, c := range cqes[:n] {
			inflight--
			if c.Res != int32(cfg.BlockSize) {
				if err := uring.ResultError(op, c.Res); err != nil {
					return res, fmt.Errorf("bench: raw on %s: %w", cfg.Path, err)
				}
				return res, fmt.Errorf("bench: raw on %s: short %s: %d of %d bytes", cfg.Path, op, c.Res, cfg.BlockSize)
			}
			res.Ops++
			res.Bytes += int64(cfg.BlockSize)
			if !stopping {
				if err := prep(int(c.UserData)); err != nil {
					return res, err
				}
				inflight++
			}
		}
		// Checking the clock once per batch keeps it off the per-op path.
		if !stopping && time.Now().After(deadline) {
			stopping = true
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// TempFile makes the file of a raw benchmark: size bytes in /dev/shm (or
// os.TempDir), filled with a pattern, after checking that they fit what is
// free (tmpfs: free memory too). The file has no name, so nothing is left
// behind whatever ends the process; path is its /proc/PID/fd link, which
// another process of this user (fio) can open too. Closing f removes it.
func TempFile(size int64) (f *os.File, path string, err error) {
	if size < 512 || size%512 != 0 {
		return nil, "", fmt.Errorf("bench: raw: size %d: want a positive multiple of 512", size)
	}
	dir := RunConfig{}.tempDir(scenarios.FSTmpfs)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, "", fmt.Errorf("bench: raw: %s: %w", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if avail, ok := memAvailable(); ok && st.Type == unix.TMPFS_MAGIC {
		free = min(free, avail-memoryReserveBytes)
	}
	if size > free {
		return nil, "", fmt.Errorf("bench: raw: --size %d bytes does not fit in %s (%d bytes free)", size, dir, max(free, 0))
	}
	f, err = anonymousFile(dir, "snapring-uring-bench-*")
	if err != nil {
		return nil, "", fmt.Errorf("bench: raw: temp file in %s: %w", dir, err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("bench: raw: filling the temp file: %w", err)
		}
	}
	return f, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), nil
}
