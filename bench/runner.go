package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
	"golang.org/x/sys/unix"
)

// RunConfig is one invocation of a scenario.
type RunConfig struct {
	Scenario *scenarios.Scenario
	// Progress, when set, gets a one-line progress display (a terminal).
	Progress io.Writer
	// Commit is snapring's git commit, recorded in the result.
	Commit   string
	RunIndex int
	Seed     int64
	// SkipBaseline runs only the engine side.
	SkipBaseline bool
	// TempDir, when set, is where temporary files (devices and difference
	// storage of kind tempfile) are made, whatever their fs; by default
	// /dev/shm for tmpfs and os.TempDir for disk.
	TempDir string
}

// ErrRun is a run that could not be set up (bad device, missing path).
var ErrRun = errors.New("bench: run")

// Run runs the scenario's workloads twice, on the raw backing files and on
// the engine with a snapshot, and returns the result. When ctx is
// cancelled during the engine side the run stops early and the result is
// marked partial; before it, Run returns ErrInterrupted and no result.
func Run(ctx context.Context, cfg RunConfig) (*results.Result, error) {
	sc := cfg.Scenario
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrRun)
	}
	sc.EnsureDefaults()
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if err := Check(cfg); err != nil {
		return nil, err
	}
	devs, cleanup, err := prepareDevices(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	scJSON, _ := json.Marshal(sc)
	res := &results.Result{
		Schema:   results.SchemaV1,
		Scenario: scJSON,
		Env:      results.CollectEnv(devs[0].path, cfg.Commit),
		LoadMode: results.ClosedLoop,
		RunIndex: cfg.RunIndex,
		Start:    time.Now(),
	}
	for _, w := range sc.Workloads {
		if w.Rate > 0 {
			res.LoadMode = results.OpenLoop
		}
	}
	var capacity float64
	if d := time.Duration(sc.Phases.CowCapacity); d > 0 {
		if capacity, err = cowCapacity(ctx, cfg, devs, d); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ErrInterrupted
	}
	if !cfg.SkipBaseline {
		side, partial, err := runSide(ctx, cfg, devs, false)
		if err != nil {
			return nil, err
		}
		res.Baseline = side
		res.Partial = res.Partial || partial
	}
	if ctx.Err() != nil {
		// Stopped before the engine side measured anything: a result
		// would hold only half a baseline.
		return nil, ErrInterrupted
	}
	side, partial, err := runSide(ctx, cfg, devs, true)
	if err != nil {
		return nil, err
	}
	res.Engine = *side
	res.Partial = res.Partial || partial
	if capacity > 0 {
		res.CowUse = cowUse(capacity, &res.Engine)
	}
	res.Duration = time.Since(res.Start)
	results.ComputeRatios(res)
	return res, nil
}

type preparedDevice struct {
	name string
	path string
	size int64
	// file holds a temporary device open: it has no name (O_TMPFILE, or
	// unlinked at once), so nothing is left behind whatever ends the
	// process; path is its /proc/self/fd link.
	file *os.File
}

// ErrInterrupted is a run stopped (Ctrl-C) before its engine side measured
// anything: in the prefill or the baseline. There is no result.
var ErrInterrupted = errors.New("bench: interrupted before the run started: no result")

// prepareDevices makes the temp files (prefilled) or checks the given paths.
func prepareDevices(ctx context.Context, cfg RunConfig) ([]preparedDevice, func(), error) {
	sc := cfg.Scenario
	var out []preparedDevice
	cleanup := func() {
		for _, pd := range out {
			if pd.file != nil {
				pd.file.Close()
			}
		}
	}
	for _, d := range sc.Devices {
		pd := preparedDevice{name: d.Name, size: int64(d.Size)}
		switch d.Backing.Kind {
		case scenarios.BackingTempfile:
			dir := cfg.tempDir(d.Backing.FS)
			f, err := anonymousFile(dir, "snapring-"+d.Name+"-*")
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("%w: device %s: temp file in %s: %v", ErrRun, d.Name, dir, err)
			}
			pd.file = f
			pd.path = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
			out = append(out, pd)
			if err := prefill(ctx, f, pd.size, cfg.Seed, sc.Phases.PrefillEnabled()); err != nil {
				cleanup()
				if ctx.Err() != nil {
					return nil, nil, ErrInterrupted
				}
				return nil, nil, fmt.Errorf("%w: device %s: %v", ErrRun, d.Name, err)
			}
			continue
		default:
			// Check has made sure it exists and what it is.
			pd.path = d.Backing.Path
			fi, err := os.Stat(pd.path)
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("%w: device %s: %v", ErrRun, d.Name, err)
			}
			if fi.Mode()&os.ModeDevice != 0 {
				if pd.size, err = blockSize(pd.path); err != nil {
					cleanup()
					return nil, nil, fmt.Errorf("%w: device %s: %v", ErrRun, d.Name, err)
				}
			} else {
				pd.size = fi.Size()
			}
		}
		out = append(out, pd)
	}
	return out, cleanup, nil
}

// anonymousFile makes a file in dir that has no name: an O_TMPFILE, or,
// where the file system has none, a file unlinked as soon as it is made.
func anonymousFile(dir, pattern string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, strings.TrimSuffix(pattern, "*")+"(tmpfile)")), nil
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// tempDir is where the temporary files of a kind tempfile go.
func (cfg RunConfig) tempDir(fs scenarios.FS) string {
	if cfg.TempDir != "" {
		return cfg.TempDir
	}
	if fs != scenarios.FSDisk {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// prefill sizes f and, when random, fills it with random bytes; it stops at
// once when ctx is cancelled.
func prefill(ctx context.Context, f *os.File, size int64, seed int64, random bool) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	if !random {
		return nil
	}
	buf := make([]byte, 4<<20)
	rng := rand.New(rand.NewSource(seed))
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		rng.Read(buf)
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// storageConfig is the engine's difference storage for the scenario, and
// the path of a file the run creates there (to remove afterwards), if any.
// Check has made sure that the path is what its kind says.
func storageConfig(cfg RunConfig) (engine.StorageConfig, string, error) {
	ds := cfg.Scenario.DiffStorage
	sc := engine.StorageConfig{Limit: int64(ds.Limit), Path: ds.Path, Overwrite: ds.OverwriteAllowed()}
	switch ds.Kind {
	case scenarios.DiffStorageTempfile:
		sc.Path = cfg.tempDir(ds.FS) // an O_TMPFILE there, gone on close
	case scenarios.DiffStorageFile:
		if _, err := os.Stat(ds.Path); errors.Is(err, os.ErrNotExist) {
			return sc, ds.Path, nil
		}
	}
	return sc, "", nil
}

func engineOptions(sc *scenarios.Scenario) engine.Options {
	e := sc.Engine
	o := engine.Options{
		ChunkMinimumShift:       uint(e.ChunkMinimumShift),
		ChunkMaximumShift:       uint(e.ChunkMaximumShift),
		ChunkMaximumCount:       uint64(e.ChunkMaximumCount),
		ChunkMaximumInQueue:     e.ChunkMaximumInQueue,
		FreeDiffBufferPoolSize:  e.FreeDiffBufferPoolSize,
		DiffStorageMinimum:      int64(e.DiffStorageMinimum),
		StoreWorkers:            e.StoreWorkers,
		ImageReadBytesPerSecond: int64(e.ImageReadBytesPerSecond),
		NoWriterPriority:        !e.WriterPriorityEnabled(),
		BackupNice:              e.BackupNice,
	}
	if p := int64(sc.DiffStorage.Portion); p > 0 {
		o.DiffStorageMinimum = p
	}
	return o
}
