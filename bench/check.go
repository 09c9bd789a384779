package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/scenarios"
)

// memoryReserveBytes is left to the rest of the machine when tmpfs files and
// in-flight buffers are checked against free memory.
const memoryReserveBytes = 512 << 20

// Check validates what a scenario names on this machine, before Run creates
// or writes anything: every path exists and is what its kind says (a regular
// file, a directory, a block device not in use), every device is at least
// one block of each workload on it and one chunk, no file is named twice, an
// existing difference-storage file is refused unless overwrite is set, and
// the temporary files and in-flight memory fit what is free. Problems are
// reported like scenario errors (file:line when the scenario came from a
// file), wrapping scenarios.ErrInvalid and ErrRun. Check only stats, and opens block
// devices read-only to learn their size; it never writes.
func Check(cfg RunConfig) error {
	sc := cfg.Scenario
	if sc == nil {
		return fmt.Errorf("%w: no scenario", ErrRun)
	}
	c := checker{sc: sc, cfg: cfg, tempNeed: map[string]int64{}, tempKey: map[string]string{}}
	c.devices()
	c.diffStorage()
	c.space()
	return c.err
}

type checker struct {
	sc  *scenarios.Scenario
	cfg RunConfig
	err error
	// ids are the files already named, to refuse one named twice.
	ids   []fileRef
	sizes []int64 // per device, 0 when unknown (a problem was reported)
	// tempNeed is the bytes temporary files will take, per directory, and
	// tempKey the key to report a shortage at.
	tempNeed map[string]int64
	tempKey  map[string]string
}

type fileRef struct {
	id  [3]uint64
	key string
}

func (c *checker) failf(key, format string, args ...any) {
	if c.err == nil {
		c.err = checkError{c.sc.ErrorAt(key, format, args...)}
	}
}

// checkError is a scenario error (scenarios.ErrInvalid, file:line) that
// only the machine could show, so also ErrRun.
type checkError struct{ err error }

func (e checkError) Error() string   { return e.err.Error() }
func (e checkError) Unwrap() []error { return []error{e.err, ErrRun} }

// named records the file at key and refuses one already named.
func (c *checker) named(key string, fi os.FileInfo) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	id := [3]uint64{st.Dev, st.Ino, 0}
	if fi.Mode()&os.ModeDevice != 0 {
		id = [3]uint64{0, 0, st.Rdev}
	}
	for _, o := range c.ids {
		if o.id == id {
			c.failf(key, "impossible: the same file as %s", o.key)
			return
		}
	}
	c.ids = append(c.ids, fileRef{id: id, key: key})
}

func (c *checker) devices() {
	opts := engineOptions(c.sc)
	opts.EnsureDefaults()
	for i, d := range c.sc.Devices {
		key := fmt.Sprintf("devices[%d].backing.path", i)
		size := c.deviceSize(i, d, key)
		c.sizes = append(c.sizes, size)
		if size <= 0 {
			continue
		}
		if size%512 != 0 {
			c.failf(key, "device %s: %s has %d bytes, not a multiple of 512", d.Name, d.Backing.Path, size)
			continue
		}
		shift, err := opts.ChunkShift(size, 512)
		if err != nil {
			c.failf(key, "device %s: %v", d.Name, strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": "))
			continue
		}
		if chunk := int64(1) << shift; size < chunk {
			c.failf(key, "device %s: %s is smaller than one chunk (%s)", d.Name, scenarios.Size(size), scenarios.Size(chunk))
		}
		for j, w := range c.sc.Workloads {
			if w.Device == d.Name && int64(w.BlockSize) > size {
				c.failf(fmt.Sprintf("workloads[%d].block_size", j), "impossible: block_size %s larger than device %s (%s)", w.BlockSize, d.Name, scenarios.Size(size))
			}
		}
	}
}

// deviceSize checks device i's backing and returns its size (0 after a
// problem).
func (c *checker) deviceSize(i int, d scenarios.Device, key string) int64 {
	b := d.Backing
	if b.Kind == scenarios.BackingTempfile {
		dir := c.cfg.tempDir(b.FS)
		c.needTemp(dir, int64(d.Size), fmt.Sprintf("devices[%d].size", i))
		return int64(d.Size)
	}
	fi, err := os.Stat(b.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.failf(key, "device %s: %s does not exist", d.Name, b.Path)
		return 0
	case err != nil:
		c.failf(key, "device %s: %v", d.Name, err)
		return 0
	}
	isBlock := fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	switch {
	case b.Kind == scenarios.BackingBlockdev && !isBlock:
		c.failf(key, "device %s: %s is not a block device (kind path takes a file)", d.Name, b.Path)
		return 0
	case !isBlock && !fi.Mode().IsRegular():
		c.failf(key, "device %s: %s is neither a regular file nor a block device", d.Name, b.Path)
		return 0
	}
	c.named(key, fi)
	if !isBlock {
		if int64(d.Size) > 0 && fi.Size() < int64(d.Size) {
			c.failf(key, "device %s: %s has %d bytes, the scenario says %d", d.Name, b.Path, fi.Size(), int64(d.Size))
			return 0
		}
		if fi.Size() == 0 {
			c.failf(key, "device %s: %s is empty", d.Name, b.Path)
			return 0
		}
		return fi.Size()
	}
	size, err := blockSize(b.Path)
	if err != nil {
		c.failf(key, "device %s: %v", d.Name, err)
		return 0
	}
	return size
}

// blockSize opens a block device read-only and exclusively (which fails
// while it is mounted or held) and returns its size.
func blockSize(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return 0, fmt.Errorf("block device %s is in use (mounted or held open exclusively)", path)
		}
		return 0, err
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %v", path, err)
	}
	return int64(n), nil
}

func (c *checker) diffStorage() {
	ds := c.sc.DiffStorage
	const key = "diff_storage.path"
	if ds.Kind == scenarios.DiffStorageTempfile {
		var devices int64
		for _, s := range c.sizes {
			devices += s
		}
		// It grows as chunks are stored, each once: at most the devices.
		need := devices
		if ds.Limit > 0 {
			need = min(need, int64(ds.Limit))
		}
		dir := c.cfg.tempDir(ds.FS)
		c.needTemp(dir, need, "diff_storage.limit")
		if _, err := os.Stat(dir); err == nil {
			c.tmpfileDir("diff_storage.kind", dir, "difference storage")
		}
		return
	}
	fi, err := os.Stat(ds.Path)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && ds.Kind == scenarios.DiffStorageFile) {
		if errors.Is(err, os.ErrNotExist) {
			c.failf(key, "difference storage %s does not exist", ds.Path)
		} else {
			c.failf(key, "difference storage: %v", err)
		}
		return
	}
	isBlock := err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	switch ds.Kind {
	case scenarios.DiffStorageFile:
		switch {
		case err != nil:
			c.writableDir(key, filepath.Dir(ds.Path), "for difference storage "+ds.Path)
			return
		case fi.IsDir():
			c.failf(key, "difference storage %s is a directory (kind dir makes a temporary file there)", ds.Path)
		case isBlock:
			c.failf(key, "difference storage %s is a block device (use kind blockdev)", ds.Path)
		case !fi.Mode().IsRegular():
			c.failf(key, "difference storage %s is not a regular file", ds.Path)
		case !ds.OverwriteAllowed():
			c.failf(key, "difference storage %s exists: refusing to overwrite it (set overwrite: true to replace its contents, or name a new file)", ds.Path)
		}
	case scenarios.DiffStorageDir:
		if !fi.IsDir() {
			c.failf(key, "difference storage %s is not a directory (kind file takes a file)", ds.Path)
			return
		}
		c.writableDir(key, ds.Path, "difference storage")
		c.tmpfileDir(key, ds.Path, "difference storage")
		return
	case scenarios.DiffStorageBlockdev:
		if !isBlock {
			c.failf(key, "difference storage %s is not a block device", ds.Path)
			return
		}
		if _, err := blockSize(ds.Path); err != nil {
			c.failf(key, "difference storage: %v", err)
		}
	}
	c.named(key, fi)
}

func (c *checker) writableDir(key, dir, what string) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		c.failf(key, "directory %s %s does not exist", dir, what)
	case !fi.IsDir():
		c.failf(key, "%s %s: %s is not a directory", what, filepath.Base(key), dir)
	case unix.Access(dir, unix.W_OK) != nil:
		c.failf(key, "directory %s %s is not writable", dir, what)
	}
}

// tmpfileDir checks that an O_TMPFILE can be made in dir (the engine makes
// its difference storage that way), by making one: it has no name and is
// gone when closed, so the probe leaves nothing.
func (c *checker) tmpfileDir(key, dir, what string) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		c.failf(key, "%s: cannot make a temporary file (O_TMPFILE) in %s: %v", what, dir, err)
		return
	}
	unix.Close(fd)
}

func (c *checker) needTemp(dir string, n int64, key string) {
	if _, ok := c.tempKey[dir]; !ok {
		c.tempKey[dir] = key
	}
	c.tempNeed[dir] += n
}

// space checks the temporary files against the free space of their file
// systems (and tmpfs, which lives in memory, against free memory too), and
// the run's buffers against free memory.
func (c *checker) space() {
	avail, haveMem := memAvailable()
	for dir, need := range c.tempNeed {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			c.failf(c.tempKey[dir], "temporary files in %s: %v", dir, err)
			continue
		}
		free := int64(st.Bavail) * st.Bsize
		if st.Type == unix.TMPFS_MAGIC && haveMem {
			free = min(free, avail-memoryReserveBytes)
		}
		if need > free {
			c.failf(c.tempKey[dir], "temporary files in %s need %s, but only %s is free", dir, scenarios.Size(need), scenarios.Size(max(free, 0)))
		}
	}
	if !haveMem {
		return
	}
	var inflight int64
	for _, w := range c.sc.Workloads {
		inflight += int64(w.Workers) * int64(w.QueueDepth) * int64(w.BlockSize)
	}
	opts := engineOptions(c.sc)
	opts.EnsureDefaults()
	var chunkMem int64
	for _, size := range c.sizes {
		if shift, err := opts.ChunkShift(size, 512); err == nil && size > 0 {
			chunkMem += int64(opts.ChunkMaximumInQueue) << shift
		}
	}
	if need := inflight + chunkMem; need > avail-memoryReserveBytes {
		c.failf("engine.chunk_maximum_in_queue", "in-flight buffers (%s) and chunks held in memory (%s) need %s, but only %s of memory is available",
			scenarios.Size(inflight), scenarios.Size(chunkMem), scenarios.Size(need), scenarios.Size(max(avail-memoryReserveBytes, 0)))
	}
}

// memAvailable is /proc/meminfo's MemAvailable in bytes.
func memAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}
