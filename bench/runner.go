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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/uring"
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
}

// ErrRun is a run that could not be set up (bad device, missing path).
var ErrRun = errors.New("bench: run")

// Run runs the scenario's workloads twice, on the raw backing files and on
// the engine with a snapshot, and returns the result. When ctx is
// cancelled the run stops early and the result is marked partial.
func Run(ctx context.Context, cfg RunConfig) (*results.Result, error) {
	sc := cfg.Scenario
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrRun)
	}
	sc.EnsureDefaults()
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	devs, cleanup, err := prepareDevices(sc, cfg.Seed)
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
	if !cfg.SkipBaseline {
		side, partial, err := runSide(ctx, cfg, devs, false)
		if err != nil {
			return nil, err
		}
		res.Baseline = side
		res.Partial = res.Partial || partial
	}
	if ctx.Err() == nil {
		side, partial, err := runSide(ctx, cfg, devs, true)
		if err != nil {
			return nil, err
		}
		res.Engine = *side
		res.Partial = res.Partial || partial
	} else {
		res.Partial = true
	}
	res.Duration = time.Since(res.Start)
	results.ComputeRatios(res)
	return res, nil
}

type preparedDevice struct {
	name string
	path string
	size int64
}

// prepareDevices makes the temp files (prefilled) or checks the given paths.
func prepareDevices(sc *scenarios.Scenario, seed int64) ([]preparedDevice, func(), error) {
	var made []string
	cleanup := func() {
		for _, p := range made {
			os.Remove(p)
		}
	}
	var out []preparedDevice
	for _, d := range sc.Devices {
		pd := preparedDevice{name: d.Name, size: int64(d.Size)}
		switch d.Backing.Kind {
		case scenarios.BackingTempfile:
			dir := tempDir(d.Backing.FS)
			f, err := os.CreateTemp(dir, "snapring-"+d.Name+"-*")
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("%w: device %s: temp file in %s: %v", ErrRun, d.Name, dir, err)
			}
			made = append(made, f.Name())
			pd.path = f.Name()
			if err := prefill(f, pd.size, seed, sc.Phases.PrefillEnabled()); err != nil {
				f.Close()
				cleanup()
				return nil, nil, fmt.Errorf("%w: device %s: %v", ErrRun, d.Name, err)
			}
			f.Close()
		default:
			fi, err := os.Stat(d.Backing.Path)
			if err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("%w: device %s: %s does not exist", ErrRun, d.Name, d.Backing.Path)
			}
			pd.path = d.Backing.Path
			if fi.Mode()&os.ModeDevice != 0 {
				f, err := os.OpenFile(pd.path, os.O_RDWR|unix.O_EXCL, 0)
				if err != nil {
					cleanup()
					if errors.Is(err, unix.EBUSY) {
						return nil, nil, fmt.Errorf("%w: device %s: block device %s is in use (mounted or held open exclusively)", ErrRun, d.Name, pd.path)
					}
					return nil, nil, fmt.Errorf("%w: device %s: %v", ErrRun, d.Name, err)
				}
				n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
				f.Close()
				if err != nil {
					cleanup()
					return nil, nil, fmt.Errorf("%w: device %s: size of %s: %v", ErrRun, d.Name, pd.path, err)
				}
				pd.size = int64(n)
			} else {
				pd.size = fi.Size()
				if int64(d.Size) > 0 && fi.Size() < int64(d.Size) {
					cleanup()
					return nil, nil, fmt.Errorf("%w: device %s: %s has %d bytes, the scenario says %d", ErrRun, d.Name, pd.path, fi.Size(), int64(d.Size))
				}
			}
		}
		out = append(out, pd)
	}
	return out, cleanup, nil
}

func tempDir(fs scenarios.FS) string {
	if fs != scenarios.FSDisk {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

func prefill(f *os.File, size int64, seed int64, random bool) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	if !random {
		return nil
	}
	buf := make([]byte, 4<<20)
	rng := rand.New(rand.NewSource(seed))
	for off := int64(0); off < size; off += int64(len(buf)) {
		rng.Read(buf)
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// sideRun is the shared state of one side (baseline or engine) of a run.
type sideRun struct {
	cfg         RunConfig
	start       time.Time
	recordStart time.Time
	recording   atomic.Bool
	stop        atomic.Bool
	ops         [nClasses]atomic.Int64
	bytes       [nClasses]atomic.Int64

	mu       sync.Mutex
	events   []results.Event
	hists    [nClasses]*hdrhistogram.Histogram
	errs     [nClasses]int64
	nbytes   [nClasses]int64
	firstErr error
}

const nClasses = 8

func classIndex(c results.Class) int {
	for i, k := range results.Classes {
		if k == c {
			return i
		}
	}
	panic("bench: unknown class " + string(c))
}

func (s *sideRun) event(kind, device, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Offsets count from the start of the measured part, like the series;
	// events during warmup are negative.
	s.events = append(s.events, results.Event{Offset: time.Since(s.recordStart), Kind: kind, Device: device, Detail: detail})
}

func runSide(ctx context.Context, cfg RunConfig, pdevs []preparedDevice, withEngine bool) (*results.Side, bool, error) {
	sc := cfg.Scenario
	s := &sideRun{cfg: cfg}
	var devs []*engine.Device
	var files []*os.File
	var snap *engine.Snapshot
	var storagePath string
	defer func() {
		for _, f := range files {
			f.Close()
		}
		if snap != nil {
			snap.Destroy()
			<-snap.Done()
		}
		for _, d := range devs {
			d.Close()
		}
		if storagePath != "" {
			os.Remove(storagePath)
		}
	}()
	if withEngine {
		for _, pd := range pdevs {
			d, err := engine.OpenDevice(pd.path)
			if err != nil {
				return nil, false, fmt.Errorf("%w: device %s: %v", ErrRun, pd.name, err)
			}
			devs = append(devs, d)
		}
		storage, path, err := storageConfig(sc)
		if err != nil {
			return nil, false, err
		}
		storagePath = path
		snap, err = engine.NewSnapshot(devs, storage, engineOptions(sc))
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrRun, err)
		}
	} else {
		for _, pd := range pdevs {
			f, err := os.OpenFile(pd.path, os.O_RDWR, 0)
			if err != nil {
				return nil, false, fmt.Errorf("%w: device %s: %v", ErrRun, pd.name, err)
			}
			files = append(files, f)
		}
	}
	devIndex := func(name string) int {
		for i, pd := range pdevs {
			if pd.name == name {
				return i
			}
		}
		return 0
	}

	warmup := time.Duration(sc.Phases.Warmup)
	runFor := time.Duration(sc.Phases.Run)
	takeAfter := time.Duration(sc.Phases.TakeAfter)
	s.start = time.Now()
	s.recordStart = s.start.Add(warmup)
	if withEngine && takeAfter == 0 {
		if err := snap.Take(); err != nil {
			return nil, false, err
		}
		s.event(results.EventTake, "", "")
	}
	eventsDone := make(chan struct{})
	if withEngine {
		go func() {
			defer close(eventsDone)
			for {
				select {
				case e, ok := <-snap.Events():
					if !ok { // closed once the snapshot is finalized
						return
					}
					s.event(e.Kind.String(), e.Device, e.String())
				case <-snap.Done():
					return
				}
			}
		}()
	} else {
		close(eventsDone)
	}

	var wg sync.WaitGroup
	imageGate := make(chan struct{})
	if !withEngine || takeAfter == 0 {
		close(imageGate)
	}
	seed := cfg.Seed
	for wi := range sc.Workloads {
		w := &sc.Workloads[wi]
		di := devIndex(w.Device)
		for k := 0; k < w.Workers; k++ {
			seed++
			var mk func() (target, error)
			if withEngine {
				d := devs[di]
				mk = func() (target, error) { return newEngineTarget(w.QueueDepth, d, snap.Image(d)) }
			} else {
				fd := int32(files[di].Fd())
				mk = func() (target, error) { return newRawTarget(w.QueueDepth, fd) }
			}
			gen := newOffsetGen(w, pdevs[di].size, k, w.Workers, seed)
			wg.Add(1)
			go func(w *scenarios.Workload, gen *offsetGen, seed int64) {
				defer wg.Done()
				if w.Kind.IsImage() {
					select {
					case <-imageGate:
					case <-ctx.Done():
						return
					}
				}
				if err := s.worker(w, mk, gen, seed); err != nil {
					s.mu.Lock()
					if s.firstErr == nil {
						s.firstErr = err
					}
					s.mu.Unlock()
					s.stop.Store(true)
				}
			}(w, gen, seed)
		}
	}

	// The controller: take, warmup, run, progress and series sampling.
	var series []results.SeriesPoint
	var counterSeries []results.CounterPoint
	var mem results.Memory
	var lastOps, lastBytes [nClasses]int64
	lastSample := time.Now()
	recordStart := s.start.Add(warmup)
	end := recordStart.Add(runFor)
	kicks0 := uring.Kicks()
	var mallocs0 uint64
	if warmup == 0 {
		s.recording.Store(true)
		mallocs0 = mallocs()
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	partial := false
	taken := !withEngine || takeAfter == 0
	sampleEvery := time.Second
	for !s.stop.Load() {
		select {
		case <-ctx.Done():
			partial = true
			s.stop.Store(true)
			continue
		case now := <-tick.C:
			if !taken && now.Sub(s.start) >= takeAfter {
				if err := snap.Take(); err != nil {
					s.stop.Store(true)
					return nil, false, err
				}
				s.event(results.EventTake, "", "")
				close(imageGate)
				taken = true
			}
			if !s.recording.Load() && !now.Before(recordStart) {
				s.recording.Store(true)
				mallocs0 = mallocs()
				lastSample = now
				for i := range lastOps {
					lastOps[i], lastBytes[i] = s.ops[i].Load(), s.bytes[i].Load()
				}
			}
			if s.recording.Load() && now.Sub(lastSample) >= sampleEvery || !now.Before(end) {
				p := results.SeriesPoint{Offset: lastSample.Sub(recordStart), Length: now.Sub(lastSample), ClassOps: map[results.Class]int64{}}
				for i, c := range results.Classes {
					o, b := s.ops[i].Load(), s.bytes[i].Load()
					if do := o - lastOps[i]; do > 0 {
						p.ClassOps[c] = do
						if c.Aggregate() {
							p.Ops += do
							p.Bytes += b - lastBytes[i]
						}
					}
					lastOps[i], lastBytes[i] = o, b
				}
				if s.recording.Load() && p.Length > 0 {
					series = append(series, p)
				}
				lastSample = now
				if snap != nil {
					counterSeries = append(counterSeries, results.CounterPoint{Offset: now.Sub(recordStart), Values: counters(snap, s)})
				}
				sampleMemory(&mem)
			}
			if cfg.Progress != nil {
				progress(cfg.Progress, withEngine, now.Sub(s.start), warmup+runFor, s)
			}
			if !now.Before(end) {
				s.stop.Store(true)
			}
		}
	}
	wg.Wait()
	if s.recording.Load() {
		// Before the histograms are encoded, which allocates per bucket.
		mem.Mallocs = int64(mallocs() - mallocs0)
	}
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	elapsed := min(time.Since(recordStart), runFor)
	if elapsed <= 0 {
		elapsed = time.Since(s.start)
	}
	sampleMemory(&mem)
	side := &results.Side{Start: recordStart, Duration: elapsed, Classes: map[results.Class]results.ClassResult{}, Series: series, CounterSeries: counterSeries, Memory: mem,
		IOWQKicks: uring.Kicks() - kicks0}
	for i, c := range results.Classes {
		h := s.hists[i]
		if h == nil || h.TotalCount() == 0 && s.errs[i] == 0 {
			continue
		}
		side.Classes[c] = results.SummaryFromHistogram(h, s.errs[i], s.nbytes[i], elapsed)
	}
	if snap != nil {
		side.Counters = counters(snap, s)
		if sc.Phases.DestroyEnabled() {
			t0 := time.Now()
			snap.Destroy()
			<-snap.Done()
			s.event("destroy", "", fmt.Sprintf("took %v", time.Since(t0).Round(time.Microsecond)))
		}
	}
	if withEngine {
		snap.Destroy()
		<-eventsDone
	}
	s.mu.Lock()
	side.Events = append([]results.Event(nil), s.events...)
	err := s.firstErr
	s.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	return side, partial, nil
}

func counters(snap *engine.Snapshot, s *sideRun) map[string]int64 {
	st := snap.Stats()
	s.mu.Lock()
	nev := int64(len(s.events))
	s.mu.Unlock()
	return map[string]int64{
		results.CounterChunksCopied:  st.ChunksCopied,
		results.CounterChunksStored:  st.ChunksStored,
		results.CounterStoreQueue:    st.ChunksInMemory,
		results.CounterDiffBytesUsed: st.DiffUsedBytes,
		results.CounterEvents:        nev,
		"chunks_failed":              st.ChunksFailed,
		"events_dropped":             st.EventsDropped,
		"diff_bytes_capacity":        st.DiffCapacityBytes,
	}
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

func sampleMemory(m *results.Memory) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapBytes = int64(ms.HeapAlloc)
	m.HeapPeakBytes = max(m.HeapPeakBytes, m.HeapBytes)
	rss, hwm := readRSS()
	m.RSSBytes = rss
	m.RSSPeakBytes = max(m.RSSPeakBytes, hwm, rss)
}

func readRSS() (rss, hwm int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || key != "VmRSS" && key != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}

func progress(w io.Writer, engineSide bool, elapsed, total time.Duration, s *sideRun) {
	var ops int64
	for i, c := range results.Classes {
		if c.Aggregate() {
			ops += s.ops[i].Load()
		}
	}
	name := "baseline"
	if engineSide {
		name = "engine  "
	}
	iops := float64(ops) / max(elapsed.Seconds(), 0.001)
	fmt.Fprintf(w, "\r%s %5.1fs/%-5.0fs %10d ops %9.0f IOPS", name, elapsed.Seconds(), total.Seconds(), ops, iops)
}

func storageConfig(sc *scenarios.Scenario) (engine.StorageConfig, string, error) {
	ds := sc.DiffStorage
	cfg := engine.StorageConfig{Limit: int64(ds.Limit)}
	switch ds.Kind {
	case scenarios.DiffStorageTempfile:
		cfg.Path = tempDir(ds.FS) // an O_TMPFILE there, gone on close
		return cfg, "", nil
	case scenarios.DiffStorageDir:
		cfg.Path = ds.Path
	case scenarios.DiffStorageFile:
		cfg.Path = ds.Path
		if _, err := os.Stat(filepath.Dir(ds.Path)); err != nil {
			return cfg, "", fmt.Errorf("%w: difference storage %s: directory does not exist", ErrRun, ds.Path)
		}
		return cfg, "", nil
	case scenarios.DiffStorageBlockdev:
		cfg.Path = ds.Path
	}
	if _, err := os.Stat(cfg.Path); err != nil {
		return cfg, "", fmt.Errorf("%w: difference storage %s does not exist", ErrRun, cfg.Path)
	}
	return cfg, "", nil
}

func engineOptions(sc *scenarios.Scenario) engine.Options {
	e := sc.Engine
	o := engine.Options{
		ChunkMinimumShift:      uint(e.ChunkMinimumShift),
		ChunkMaximumShift:      uint(e.ChunkMaximumShift),
		ChunkMaximumCount:      uint64(e.ChunkMaximumCount),
		ChunkMaximumInQueue:    e.ChunkMaximumInQueue,
		FreeDiffBufferPoolSize: e.FreeDiffBufferPoolSize,
		DiffStorageMinimum:     int64(e.DiffStorageMinimum),
		StoreWorkers:           e.StoreWorkers,
	}
	if p := int64(sc.DiffStorage.Portion); p > 0 {
		o.DiffStorageMinimum = p
	}
	return o
}

// worker keeps QueueDepth operations of one workload in flight.
func (s *sideRun) worker(w *scenarios.Workload, mk func() (target, error), gen *offsetGen, seed int64) error {
	// One thread submits all of this worker's I/O (see engine.Queue).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := mk()
	if err != nil {
		return err
	}
	defer t.close()
	qd, bs := w.QueueDepth, int(w.BlockSize)
	arena, err := uring.NewArena(qd * bs)
	if err != nil {
		return err
	}
	defer arena.Close()
	rng := rand.New(rand.NewSource(seed))
	rng.Read(arena.Bytes())
	var base ioKind
	switch w.Kind {
	case scenarios.OriginWrite:
		base = ioOriginWrite
	case scenarios.ImageRead:
		base = ioImageRead
	case scenarios.ImageWrite:
		base = ioImageWrite
	}
	hists := make(map[int]*hdrhistogram.Histogram, 4)
	var errs, nbytes [nClasses]int64
	start := make([]time.Time, qd)
	free := make([]int, 0, qd)
	for i := qd - 1; i >= 0; i-- {
		free = append(free, i)
	}
	var interval time.Duration
	if w.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.Workers) / float64(w.Rate))
	}
	nextAt := time.Now()
	done := false
	issue := func(now time.Time) error {
		off, ok := gen.next()
		if !ok {
			done = true
			return nil
		}
		slot := free[len(free)-1]
		free = free[:len(free)-1]
		k := base
		if base == ioOriginWrite && w.DiscardShare > 0 && rng.Float64() < w.DiscardShare {
			k = ioOriginDiscard
		}
		start[slot] = now
		if interval > 0 {
			// Open loop: latency counts from the intended start.
			start[slot] = nextAt
			nextAt = nextAt.Add(interval)
		}
		return t.submit(slot, k, off, arena.Slice(slot*bs, bs))
	}
	out := make([]completion, qd)
	for {
		now := time.Now()
		stopping := s.stop.Load() || done
		for !stopping && len(free) > 0 && (interval == 0 || !now.Before(nextAt)) {
			if err := issue(now); err != nil {
				return err
			}
			if done {
				break
			}
		}
		inflight := qd - len(free)
		if inflight == 0 {
			if stopping || done {
				break
			}
			time.Sleep(time.Until(nextAt))
			continue
		}
		var n int
		if interval > 0 && len(free) > 0 {
			n, err = t.poll(out, 1, max(time.Until(nextAt), time.Microsecond))
		} else {
			n, err = t.poll(out, 1, 0)
		}
		if err != nil {
			return err
		}
		now = time.Now()
		rec := s.recording.Load()
		for _, c := range out[:n] {
			free = append(free, c.slot)
			if !rec {
				continue
			}
			// Clamp to the histogram's range so that nothing is dropped.
			lat := min(int64(now.Sub(start[c.slot])), results.HistogramHighestNs)
			for _, cls := range [2]results.Class{c.class, c.agg} {
				i := classIndex(cls)
				h := hists[i]
				if h == nil {
					h = results.NewHistogram()
					hists[i] = h
				}
				if c.err != nil {
					errs[i]++
				} else {
					h.RecordValue(lat)
					nbytes[i] += int64(bs)
				}
				s.ops[i].Add(1)
				s.bytes[i].Add(int64(bs))
				if c.class == c.agg {
					break
				}
			}
			if c.err != nil && !errors.Is(c.err, engine.ErrCorrupted) && !errors.Is(c.err, engine.ErrClosed) {
				return fmt.Errorf("bench: workload %s: %w", w.Name, c.err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range hists {
		if s.hists[i] == nil {
			s.hists[i] = results.NewHistogram()
		}
		s.hists[i].Merge(h)
	}
	for i := range errs {
		s.errs[i] += errs[i]
		s.nbytes[i] += nbytes[i]
	}
	return nil
}
