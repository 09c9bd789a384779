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

// sideRun is the shared state of one side (baseline or engine) of a run.
type sideRun struct {
	cfg         RunConfig
	start       time.Time
	recordStart time.Time
	recording   atomic.Bool
	stop        atomic.Bool
	ops         [nClasses]atomic.Int64
	bytes       [nClasses]atomic.Int64

	mu        sync.Mutex
	events    []results.Event
	intervals []*intervalHists // one per worker, for the series' per-second latency
	hists     [nClasses]*hdrhistogram.Histogram
	errs      [nClasses]int64
	nbytes    [nClasses]int64
	firstErr  error
}

const nClasses = 8

// intervalHists is one worker's latency since the controller last sampled
// it. The worker records into it once per batch of completions; the
// controller merges and resets it every series interval. Nothing allocates
// after the first operation of each class.
type intervalHists struct {
	mu    sync.Mutex
	hists [nClasses]*hdrhistogram.Histogram
}

// drainInto merges the worker's interval histograms into agg (allocating an
// aggregate per class once) and resets them.
func (iv *intervalHists) drainInto(agg *[nClasses]*hdrhistogram.Histogram) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	for i, h := range iv.hists {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if agg[i] == nil {
			agg[i] = results.NewHistogram()
		}
		agg[i].Merge(h)
		h.Reset()
	}
}

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
		storage, path, err := storageConfig(cfg)
		if err != nil {
			return nil, false, err
		}
		snap, err = engine.NewSnapshot(devs, storage, engineOptions(sc))
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrRun, err)
		}
		// Only now is it the file the run made (the engine creates it with
		// O_EXCL), to remove when the side ends.
		storagePath = path
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
					s.event(eventKind(e.Kind), e.Device, e.String())
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
	var ivlAgg [nClasses]*hdrhistogram.Histogram
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
				p.ClassLatency = s.sampleLatency(&ivlAgg)
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
			s.event(results.EventDestroy, "", fmt.Sprintf("took %v", time.Since(t0).Round(time.Microsecond)))
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

// sampleLatency collects every worker's latency since the last sample into
// agg, summarises it by class and resets it.
func (s *sideRun) sampleLatency(agg *[nClasses]*hdrhistogram.Histogram) map[results.Class]results.IntervalLatency {
	s.mu.Lock()
	ivs := s.intervals
	s.mu.Unlock()
	for _, iv := range ivs {
		iv.drainInto(agg)
	}
	var out map[results.Class]results.IntervalLatency
	for i, h := range agg {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if out == nil {
			out = map[results.Class]results.IntervalLatency{}
		}
		out[results.Classes[i]] = results.IntervalLatency{P50Ns: h.ValueAtQuantile(50), P99Ns: h.ValueAtQuantile(99), MaxNs: h.Max()}
		h.Reset()
	}
	return out
}

func counters(snap *engine.Snapshot, s *sideRun) map[string]int64 {
	st := snap.Stats()
	s.mu.Lock()
	nev := int64(len(s.events))
	s.mu.Unlock()
	return map[string]int64{
		results.CounterChunksCopied:      st.ChunksCopied,
		results.CounterChunksStored:      st.ChunksStored,
		results.CounterChunksFailed:      st.ChunksFailed,
		results.CounterStoreQueue:        st.ChunksInMemory,
		results.CounterDiffBytesUsed:     st.DiffUsedBytes,
		results.CounterDiffBytesCapacity: st.DiffCapacityBytes,
		results.CounterEvents:            nev,
		results.CounterEventsDropped:     st.EventsDropped,
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
	ivl := &intervalHists{}
	s.mu.Lock()
	s.intervals = append(s.intervals, ivl)
	s.mu.Unlock()
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
		if rec {
			ivl.mu.Lock()
		}
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
					if ivl.hists[i] == nil {
						ivl.hists[i] = results.NewHistogram()
					}
					ivl.hists[i].RecordValue(lat)
					nbytes[i] += int64(bs)
				}
				s.ops[i].Add(1)
				s.bytes[i].Add(int64(bs))
				if c.class == c.agg {
					break
				}
			}
			if c.err != nil && !errors.Is(c.err, engine.ErrCorrupted) && !errors.Is(c.err, engine.ErrClosed) {
				if rec {
					ivl.mu.Unlock()
				}
				return fmt.Errorf("bench: workload %s: %w", w.Name, c.err)
			}
		}
		if rec {
			ivl.mu.Unlock()
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
