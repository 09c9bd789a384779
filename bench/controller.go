package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/uring"
)

const (
	// controllerTick is how often the controller wakes to take the
	// snapshot, start recording, sample, show progress and end the run:
	// the resolution of every phase boundary.
	controllerTick = 250 * time.Millisecond
	// seriesInterval is the length of a series point, and how often the
	// counters and memory are sampled.
	seriesInterval = time.Second
)

// controller drives one side while its workers run: it takes the snapshot
// at take_after, starts recording at the end of the warmup, samples the
// series, the counters and the memory, shows progress, and stops the side
// at the end of the run phase. All of it runs on runSide's goroutine.
type controller struct {
	s         *sideRun
	snap      *engine.Snapshot // nil on the baseline
	imageGate chan struct{}    // closed by the take
	taken     bool
	warmup    time.Duration
	runFor    time.Duration
	takeAfter time.Duration
	end       time.Time // of the run phase

	series        []results.SeriesPoint
	counterSeries []results.CounterPoint
	mem           results.Memory
	// lastSample is when the series point being counted began, and
	// lastOps and lastBytes the totals then.
	lastSample           time.Time
	lastOps, lastBytes   [nClasses]int64
	ivlAgg               [nClasses]*hdrhistogram.Histogram
	kicksAtStart         int64
	mallocsAtRecordStart uint64
}

// newController is the controller of s, made once its workers are started.
// With no warmup it starts recording at once.
func newController(s *sideRun, snap *engine.Snapshot, imageGate chan struct{}, taken bool) *controller {
	ph := s.cfg.Scenario.Phases
	c := &controller{
		s: s, snap: snap, imageGate: imageGate, taken: taken,
		warmup: time.Duration(ph.Warmup), runFor: time.Duration(ph.Run), takeAfter: time.Duration(ph.TakeAfter),
		lastSample: time.Now(),
	}
	c.end = s.recordStart.Add(c.runFor)
	c.kicksAtStart = uring.Kicks()
	if c.warmup == 0 {
		s.recording.Store(true)
		c.mallocsAtRecordStart = mallocs()
	}
	return c
}

// run is the controller's loop, until the side stops: at the end of the run
// phase, on a worker's error, or when ctx is cancelled (partial). Its
// error is the take's.
func (c *controller) run(ctx context.Context) (partial bool, err error) {
	tick := time.NewTicker(controllerTick)
	defer tick.Stop()
	for !c.s.stop.Load() {
		select {
		case <-ctx.Done():
			partial = true
			c.s.stop.Store(true)
		case now := <-tick.C:
			if err := c.tick(now); err != nil {
				return false, err
			}
		}
	}
	return partial, nil
}

// tick does what is due at now, in this order: the take, the start of
// recording, a sample (also at the end of the run phase), progress, the
// end.
func (c *controller) tick(now time.Time) error {
	s := c.s
	if !c.taken && now.Sub(s.start) >= c.takeAfter {
		if err := c.take(); err != nil {
			return err
		}
	}
	if !s.recording.Load() && !now.Before(s.recordStart) {
		c.startRecording(now)
	}
	if s.recording.Load() && now.Sub(c.lastSample) >= seriesInterval || !now.Before(c.end) {
		c.sample(now)
	}
	if s.cfg.Progress != nil {
		progress(s.cfg.Progress, c.snap != nil, now.Sub(s.start), c.warmup+c.runFor, s)
	}
	if !now.Before(c.end) {
		s.stop.Store(true)
	}
	return nil
}

// take takes the snapshot at take_after and lets the image workloads
// start; a failed take stops the side.
func (c *controller) take() error {
	if err := c.snap.Take(); err != nil {
		c.s.stop.Store(true)
		return err
	}
	c.s.event(results.EventTake, "", "")
	close(c.imageGate)
	c.taken = true
	return nil
}

// startRecording ends the warmup: the workers record from now on, and the
// first series point counts from here.
func (c *controller) startRecording(now time.Time) {
	s := c.s
	s.recording.Store(true)
	c.mallocsAtRecordStart = mallocs()
	c.lastSample = now
	for i := range c.lastOps {
		c.lastOps[i], c.lastBytes[i] = s.ops[i].Load(), s.bytes[i].Load()
	}
}

// sample ends the series point that began at lastSample (kept only while
// recording), and samples the counters and the memory.
func (c *controller) sample(now time.Time) {
	s := c.s
	p := results.SeriesPoint{Offset: c.lastSample.Sub(s.recordStart), Length: now.Sub(c.lastSample), ClassOps: map[results.Class]int64{}}
	p.ClassLatency = s.sampleLatency(&c.ivlAgg)
	for i, cls := range results.Classes {
		o, b := s.ops[i].Load(), s.bytes[i].Load()
		if do := o - c.lastOps[i]; do > 0 {
			p.ClassOps[cls] = do
			if cls.Aggregate() {
				p.Ops += do
				p.Bytes += b - c.lastBytes[i]
			}
		}
		c.lastOps[i], c.lastBytes[i] = o, b
	}
	if s.recording.Load() && p.Length > 0 {
		c.series = append(c.series, p)
	}
	c.lastSample = now
	if c.snap != nil {
		c.counterSeries = append(c.counterSeries, results.CounterPoint{Offset: now.Sub(s.recordStart), Values: counters(c.snap, s)})
	}
	sampleMemory(&c.mem)
}

// side is the side's result, once its workers are done: the measured
// duration, each class's summary, the samples, the memory and the io-wq
// kicks. The engine's final counters and the events are added after.
func (c *controller) side() *results.Side {
	s := c.s
	if s.recording.Load() {
		// Before the histograms are encoded, which allocates per bucket.
		c.mem.Mallocs = int64(mallocs() - c.mallocsAtRecordStart)
	}
	if s.cfg.Progress != nil {
		fmt.Fprintln(s.cfg.Progress)
	}
	elapsed := min(time.Since(s.recordStart), c.runFor)
	if elapsed <= 0 {
		elapsed = time.Since(s.start)
	}
	sampleMemory(&c.mem)
	side := &results.Side{Start: s.recordStart, Duration: elapsed, Series: c.series, CounterSeries: c.counterSeries, Memory: c.mem,
		IOWQKicks: uring.Kicks() - c.kicksAtStart}
	side.Classes = s.classResults(elapsed)
	return side
}

// progress rewrites the one-line progress display of a side.
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
