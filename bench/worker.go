package bench

import (
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/uring"
)

// worker keeps QueueDepth operations of one workload in flight, on a
// thread of its own, and adds what it recorded to the side when it ends
// (not after an error, which fails the side).
func (s *sideRun) worker(w *scenarios.Workload, mk func() (target, error), gen *offsetGen, seed int64) error {
	// One thread submits all of this worker's I/O (see engine.Queue).
	runtime.LockOSThread()
	t, err := mk()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	if !t.keepsThread() {
		defer runtime.UnlockOSThread()
	} // else the thread ends with this goroutine (engine.Queue.ServeBackup)
	defer t.close()
	arena, err := uring.NewArena(w.QueueDepth * int(w.BlockSize))
	if err != nil {
		return err
	}
	defer arena.Close()
	wl := newWorkerLoop(s, w, t, gen, arena, seed)
	if err := wl.run(); err != nil {
		return err
	}
	s.merge(&wl.hists, &wl.errs, &wl.nbytes)
	return nil
}

// workerLoop is one worker's state: its slots, one per operation in
// flight, its pace in open loop, and what it recorded. Everything is
// allocated before the first operation.
type workerLoop struct {
	s     *sideRun
	w     *scenarios.Workload
	t     target
	gen   *offsetGen
	arena *uring.Arena
	rng   *rand.Rand // the discard share's draws
	base  ioKind     // the workload's operation
	bs    int
	start []time.Time // per slot: when its operation started (open loop: was meant to)
	free  []int       // the free slots, a stack
	out   []completion
	// interval is the time between operations in open loop (0: closed
	// loop), nextAt when the next one is meant to start.
	interval time.Duration
	nextAt   time.Time
	done     bool // the offsets ran out

	hists        [nClasses]*hdrhistogram.Histogram
	ivl          *intervalHists // registered with the side, for the series
	errs, nbytes [nClasses]int64
}

// newWorkerLoop fills the arena with the seed's random bytes (what the
// writes write) and registers the worker's interval histograms with s.
func newWorkerLoop(s *sideRun, w *scenarios.Workload, t target, gen *offsetGen, arena *uring.Arena, seed int64) *workerLoop {
	qd := w.QueueDepth
	wl := &workerLoop{s: s, w: w, t: t, gen: gen, arena: arena, rng: rand.New(rand.NewSource(seed)), base: baseIOKind(w.Kind), bs: int(w.BlockSize)}
	wl.rng.Read(arena.Bytes())
	wl.ivl = &intervalHists{}
	s.mu.Lock()
	s.intervals = append(s.intervals, wl.ivl)
	s.mu.Unlock()
	wl.start = make([]time.Time, qd)
	wl.free = make([]int, 0, qd)
	for i := qd - 1; i >= 0; i-- {
		wl.free = append(wl.free, i)
	}
	if w.Rate > 0 {
		wl.interval = time.Duration(float64(time.Second) * float64(w.Workers) / float64(w.Rate))
	}
	wl.nextAt = time.Now()
	wl.out = make([]completion, qd)
	return wl
}

// baseIOKind is the operation a workload of kind k issues.
func baseIOKind(k scenarios.WorkloadKind) ioKind {
	switch k {
	case scenarios.ImageRead:
		return ioImageRead
	case scenarios.ImageWrite:
		return ioImageWrite
	}
	return ioOriginWrite
}

// run issues what is due and reaps completions until the side stops or the
// offsets run out, and then until nothing is in flight.
func (wl *workerLoop) run() error {
	for {
		now := time.Now()
		stopping := wl.s.stop.Load() || wl.done
		if !stopping {
			if err := wl.issueDue(now); err != nil {
				return err
			}
		}
		if inflight := len(wl.start) - len(wl.free); inflight == 0 {
			if stopping || wl.done {
				return nil
			}
			time.Sleep(time.Until(wl.nextAt))
			continue
		}
		n, err := wl.poll()
		if err != nil {
			return err
		}
		if err := wl.complete(wl.out[:n]); err != nil {
			return err
		}
	}
}

// issueDue fills the free slots: all of them in closed loop, those whose
// time has come in open loop.
func (wl *workerLoop) issueDue(now time.Time) error {
	for len(wl.free) > 0 && (wl.interval == 0 || !now.Before(wl.nextAt)) {
		if err := wl.issue(now); err != nil {
			return err
		}
		if wl.done {
			break
		}
	}
	return nil
}

// issue submits the next offset's operation in a free slot.
func (wl *workerLoop) issue(now time.Time) error {
	off, ok := wl.gen.next()
	if !ok {
		wl.done = true
		return nil
	}
	slot := wl.free[len(wl.free)-1]
	wl.free = wl.free[:len(wl.free)-1]
	k := wl.base
	if k == ioOriginWrite && wl.w.DiscardShare > 0 && wl.rng.Float64() < wl.w.DiscardShare {
		k = ioOriginDiscard
	}
	wl.start[slot] = now
	if wl.interval > 0 {
		// Open loop: latency counts from the intended start.
		wl.start[slot] = wl.nextAt
		wl.nextAt = wl.nextAt.Add(wl.interval)
	}
	return wl.t.submit(slot, k, off, wl.arena.Slice(slot*wl.bs, wl.bs))
}

// poll waits for at least one completion; in open loop with a free slot,
// no longer than until the next operation is due.
func (wl *workerLoop) poll() (int, error) {
	if wl.interval > 0 && len(wl.free) > 0 {
		return wl.t.poll(wl.out, 1, max(time.Until(wl.nextAt), time.Microsecond))
	}
	return wl.t.poll(wl.out, 1, 0)
}

// complete frees the completions' slots and, while the side records,
// records them. An error other than the engine's corrupted or closed
// snapshot (which the results count) ends the worker.
func (wl *workerLoop) complete(cs []completion) error {
	now := time.Now()
	if !wl.s.recording.Load() {
		for _, c := range cs {
			wl.free = append(wl.free, c.slot)
		}
		return nil
	}
	wl.ivl.mu.Lock()
	defer wl.ivl.mu.Unlock()
	for _, c := range cs {
		wl.free = append(wl.free, c.slot)
		// Clamp to the histogram's range so that nothing is dropped.
		wl.record(c, min(int64(now.Sub(wl.start[c.slot])), results.HistogramHighestNs))
		if c.err != nil && !errors.Is(c.err, engine.ErrCorrupted) && !errors.Is(c.err, engine.ErrClosed) {
			return fmt.Errorf("bench: workload %s: %w", wl.w.Name, c.err)
		}
	}
	return nil
}

// record counts one operation in its class and, for a sub-class, in its
// aggregate class too: as an error, or its latency in the worker's
// histogram and the interval's. The caller holds ivl.mu.
func (wl *workerLoop) record(c completion, latNs int64) {
	bs := int64(wl.bs)
	for _, cls := range [2]results.Class{c.class, c.agg} {
		i := classIndex(cls)
		h := wl.hists[i]
		if h == nil {
			h = results.NewHistogram()
			wl.hists[i] = h
		}
		if c.err != nil {
			wl.errs[i]++
		} else {
			h.RecordValue(latNs)
			if wl.ivl.hists[i] == nil {
				wl.ivl.hists[i] = results.NewHistogram()
			}
			wl.ivl.hists[i].RecordValue(latNs)
			wl.nbytes[i] += bs
		}
		wl.s.ops[i].Add(1)
		wl.s.bytes[i].Add(bs)
		if c.class == c.agg {
			break
		}
	}
}

// merge adds a finished worker's histograms and counts to the side's.
func (s *sideRun) merge(hists *[nClasses]*hdrhistogram.Histogram, errs, nbytes *[nClasses]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range hists {
		if h == nil {
			continue
		}
		if s.hists[i] == nil {
			s.hists[i] = results.NewHistogram()
		}
		s.hists[i].Merge(h)
	}
	for i := range errs {
		s.errs[i] += errs[i]
		s.nbytes[i] += nbytes[i]
	}
}
