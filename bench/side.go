package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
)

// sideRun is the shared state of one side (baseline or engine) of a run:
// the workers record into it, the controller samples it.
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

// runSide runs the scenario's workloads on one side, the raw backing files
// or the engine with a snapshot, and returns what it measured and whether
// ctx cut it short. In order: open the side's devices, take the snapshot
// now (unless take_after delays it), start forwarding the engine's events,
// start the workers (image workloads wait for the take), run the controller
// until the run phase ends, wait for the workers, then record the
// counters, destroy the snapshot and close the devices.
func runSide(ctx context.Context, cfg RunConfig, pdevs []preparedDevice, withEngine bool) (*results.Side, bool, error) {
	sd, err := openSide(cfg, pdevs, withEngine)
	if err != nil {
		return nil, false, err
	}
	defer sd.close()
	s := newSideRun(cfg)
	takeLater := withEngine && cfg.Scenario.Phases.TakeAfter > 0
	if withEngine && !takeLater {
		if err := sd.snap.Take(); err != nil {
			return nil, false, err
		}
		s.event(results.EventTake, "", "")
	}
	eventsDone := s.forwardEvents(sd.snap)
	imageGate := make(chan struct{})
	if !takeLater {
		close(imageGate)
	}
	abort := make(chan struct{}) // a failed take: image workers never start
	wg := s.startWorkers(ctx, sd, imageGate, abort)
	c := newController(s, sd.snap, imageGate, !takeLater)
	partial, err := c.run(ctx)
	if err != nil {
		close(abort)
		wg.Wait() // no worker outlives its side's devices
		return nil, false, err
	}
	wg.Wait()
	side := c.side()
	if sd.snap != nil {
		s.endSnapshot(sd.snap, side, eventsDone)
	}
	if err := s.finish(side); err != nil {
		return nil, false, err
	}
	return side, partial, nil
}

// newSideRun starts a side's clock: the workloads start now, the
// measurement after the warmup.
func newSideRun(cfg RunConfig) *sideRun {
	s := &sideRun{cfg: cfg, start: time.Now()}
	s.recordStart = s.start.Add(time.Duration(cfg.Scenario.Phases.Warmup))
	return s
}

func (s *sideRun) event(kind, device, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Offsets count from the start of the measured part, like the series;
	// events during warmup are negative.
	s.events = append(s.events, results.Event{Offset: time.Since(s.recordStart), Kind: kind, Device: device, Detail: detail})
}

// fail records a worker's error, the side's first one wins, and stops the
// side.
func (s *sideRun) fail(err error) {
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
	s.stop.Store(true)
}

// forwardEvents records the snapshot's events as the side's until the
// snapshot is finalized. The channel it returns is closed when it stops; at
// once without a snapshot (the baseline).
func (s *sideRun) forwardEvents(snap *engine.Snapshot) <-chan struct{} {
	done := make(chan struct{})
	if snap == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
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
	return done
}

// startWorkers starts every workload's workers, in scenario order, each
// with its own slice of the offsets and its own seed (the run's seed plus
// the worker's number). An image workload's workers wait for imageGate,
// closed by the take, or for ctx or abort (the take failed).
func (s *sideRun) startWorkers(ctx context.Context, sd *sideDevices, imageGate, abort <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	seed := s.cfg.Seed
	for wi := range s.cfg.Scenario.Workloads {
		w := &s.cfg.Scenario.Workloads[wi]
		di := sd.deviceIndex(w.Device)
		for k := 0; k < w.Workers; k++ {
			seed++
			mk := sd.targetMaker(w, di)
			gen := newOffsetGen(w, sd.pdevs[di].size, k, w.Workers, seed)
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				s.runWorker(ctx, w, mk, gen, seed, imageGate, abort)
			}(seed)
		}
	}
	return &wg
}

// runWorker runs one worker, an image workload's once the snapshot is
// taken; its error stops the side.
func (s *sideRun) runWorker(ctx context.Context, w *scenarios.Workload, mk func() (target, error), gen *offsetGen, seed int64, imageGate, abort <-chan struct{}) {
	if w.Kind.IsImage() {
		select {
		case <-imageGate:
		case <-abort:
			return
		case <-ctx.Done():
			return
		}
	}
	if err := s.worker(w, mk, gen, seed); err != nil {
		s.fail(err)
	}
}

// endSnapshot ends the engine side once the workers are done: the final
// counters, then the destroy phase (timed, when the scenario asks for it),
// and the events' forwarder's last deliveries.
func (s *sideRun) endSnapshot(snap *engine.Snapshot, side *results.Side, eventsDone <-chan struct{}) {
	side.Counters = counters(snap, s)
	if s.cfg.Scenario.Phases.DestroyEnabled() {
		t0 := time.Now()
		snap.Destroy()
		<-snap.Done()
		s.event(results.EventDestroy, "", fmt.Sprintf("took %v", time.Since(t0).Round(time.Microsecond)))
	}
	snap.Destroy()
	<-eventsDone
}

// finish hands the side its events and returns the first worker error.
func (s *sideRun) finish(side *results.Side) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	side.Events = append([]results.Event(nil), s.events...)
	return s.firstErr
}

// sideDevices are what one side opens: the raw backing files for the
// baseline, or the engine's devices and the snapshot over them.
type sideDevices struct {
	pdevs []preparedDevice
	files []*os.File       // baseline
	devs  []*engine.Device // engine
	snap  *engine.Snapshot // engine; nil on the baseline
	// storagePath is the difference-storage file the side made, removed
	// when it closes.
	storagePath string
}

// openSide opens a side's devices; on an error it closes what it opened.
func openSide(cfg RunConfig, pdevs []preparedDevice, withEngine bool) (*sideDevices, error) {
	sd := &sideDevices{pdevs: pdevs}
	open := sd.openFiles
	if withEngine {
		open = func() error { return sd.openEngine(cfg) }
	}
	if err := open(); err != nil {
		sd.close()
		return nil, err
	}
	return sd, nil
}

func (sd *sideDevices) openFiles() error {
	for _, pd := range sd.pdevs {
		f, err := os.OpenFile(pd.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("%w: device %s: %v", ErrRun, pd.name, err)
		}
		sd.files = append(sd.files, f)
	}
	return nil
}

func (sd *sideDevices) openEngine(cfg RunConfig) error {
	for _, pd := range sd.pdevs {
		d, err := engine.OpenDevice(pd.path)
		if err != nil {
			return fmt.Errorf("%w: device %s: %v", ErrRun, pd.name, err)
		}
		sd.devs = append(sd.devs, d)
	}
	storage, path, err := storageConfig(cfg)
	if err != nil {
		return err
	}
	sd.snap, err = engine.NewSnapshot(sd.devs, storage, engineOptions(cfg.Scenario))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRun, err)
	}
	// Only now is it the file the run made (the engine creates it with
	// O_EXCL), to remove when the side ends.
	sd.storagePath = path
	return nil
}

// close tears the side down: the raw files; the snapshot, destroyed and
// waited for, before the devices under it; the storage file the side made.
func (sd *sideDevices) close() {
	for _, f := range sd.files {
		f.Close()
	}
	if sd.snap != nil {
		sd.snap.Destroy()
		<-sd.snap.Done()
	}
	for _, d := range sd.devs {
		d.Close()
	}
	if sd.storagePath != "" {
		os.Remove(sd.storagePath)
	}
}

// deviceIndex is the index of the device a workload names (validated, so
// always found).
func (sd *sideDevices) deviceIndex(name string) int {
	for i, pd := range sd.pdevs {
		if pd.name == name {
			return i
		}
	}
	return 0
}

// targetMaker returns how a worker of w makes its target on device di, on
// the worker's own thread: a queue on the engine and an image of the
// device, or a ring on the raw file.
func (sd *sideDevices) targetMaker(w *scenarios.Workload, di int) func() (target, error) {
	if sd.snap != nil {
		d, snap := sd.devs[di], sd.snap
		backup := 0
		if w.Kind == scenarios.ImageRead {
			backup = snap.BackupNice()
		}
		return func() (target, error) { return newEngineTarget(w.QueueDepth, d, snap.Image(d), backup) }
	}
	fd := int32(sd.files[di].Fd())
	return func() (target, error) { return newRawTarget(w.QueueDepth, fd) }
}
