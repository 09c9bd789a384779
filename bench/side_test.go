package bench

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snapring/snapring/results"
)

// TestRunSideShape pins what each side of a run holds, from setup through
// sampling to teardown. With take_after, the take event comes at its time
// and the image workload waits for it (no image read in the series before
// it); the destroy event follows the run and says how long it took. The
// engine side's counters, at the end and in every sample, hold exactly the
// runner's counter keys; the baseline has no events and no counters. The
// series is contiguous from the start of the measured part, and each side
// lasts the run phase.
func TestRunSideShape(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 5 seconds")
	}
	const warmup, run, takeAfter = 250 * time.Millisecond, 2 * time.Second, 1750 * time.Millisecond
	sc := parse(t, `
name: shape
devices: [{name: d0, size: 16MiB}]
diff_storage: {kind: tempfile, limit: 64MiB, portion: 8MiB}
engine: {chunk_minimum_shift: 16}
phases: {prefill: false, warmup: 250ms, run: 2s, take_after: 1750ms}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 4}
  - {name: r, kind: image-read, block_size: 64KiB, queue_depth: 1}
`)
	res, err := Run(context.Background(), RunConfig{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partial || res.Baseline == nil {
		t.Fatalf("partial %v, baseline %v", res.Partial, res.Baseline != nil)
	}
	eng, base := &res.Engine, res.Baseline

	// Events: one take at its time, one destroy after it, nothing unknown.
	known := []string{results.EventTake, results.EventDestroy, results.EventLowFreeSpace, results.EventNoSpace, results.EventOverflow, results.EventCorrupted}
	takeAt, destroyAt := -1, -1
	for i, e := range eng.Events {
		switch {
		case !slices.Contains(known, e.Kind):
			t.Errorf("event %d: unknown kind %q", i, e.Kind)
		case e.Kind == results.EventTake && takeAt < 0:
			takeAt = i
		case e.Kind == results.EventDestroy && destroyAt < 0:
			destroyAt = i
		case e.Kind == results.EventTake || e.Kind == results.EventDestroy:
			t.Errorf("event %d: a second %s", i, e.Kind)
		}
	}
	if takeAt < 0 || destroyAt < takeAt {
		t.Fatalf("take at %d, destroy at %d in %+v", takeAt, destroyAt, eng.Events)
	}
	take, destroy := eng.Events[takeAt], eng.Events[destroyAt]
	if take.Offset < takeAfter-warmup || take.Offset > run {
		t.Errorf("take at %v in the measured part; want from %v on", take.Offset, takeAfter-warmup)
	}
	if destroy.Offset < run || !strings.HasPrefix(destroy.Detail, "took ") {
		t.Errorf("destroy event %+v; want after %v, with the time it took", destroy, run)
	}

	// The image workload waits for the take. A series point is stamped
	// with its tick's time but counts the operations done when the
	// controller reads them, after a take on the same tick: take_after
	// falls between the series' ticks (each seriesInterval from the first
	// tick of the measured part) so that no point ends within a tick of the
	// take.
	imageOps := int64(0)
	for i, p := range eng.Series {
		if i > 0 && p.Offset != eng.Series[i-1].Offset+eng.Series[i-1].Length {
			t.Errorf("series point %d at %v does not follow the one before (%v+%v)", i, p.Offset, eng.Series[i-1].Offset, eng.Series[i-1].Length)
		}
		if p.Offset+p.Length < take.Offset-controllerTick/2 && p.ClassOps[results.ImageRead] != 0 {
			t.Errorf("series point %d (%v+%v) has %d image reads before the take at %v", i, p.Offset, p.Length, p.ClassOps[results.ImageRead], take.Offset)
		}
		imageOps += p.ClassOps[results.ImageRead]
	}
	if len(eng.Series) < 2 || eng.Series[0].Offset < 0 || imageOps == 0 || eng.Classes[results.ImageRead].Count == 0 {
		t.Errorf("engine series %+v, image reads %d", eng.Series, imageOps)
	}

	// Counters: exactly the runner's keys.
	keys := []string{
		results.CounterChunksCopied, results.CounterChunksStored, results.CounterChunksFailed,
		results.CounterStoreQueue, results.CounterDiffBytesUsed, results.CounterDiffBytesCapacity,
		results.CounterEvents, results.CounterEventsDropped,
	}
	slices.Sort(keys)
	sameKeys := func(what string, m map[string]int64) {
		got := make([]string, 0, len(m))
		for k := range m {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("%s: counter keys %v, want %v", what, got, keys)
		}
	}
	sameKeys("engine counters", eng.Counters)
	if len(eng.CounterSeries) < 2 {
		t.Errorf("%d counter samples", len(eng.CounterSeries))
	}
	for i, p := range eng.CounterSeries {
		sameKeys("counter sample", p.Values)
		if i > 0 && p.Offset <= eng.CounterSeries[i-1].Offset {
			t.Errorf("counter sample %d at %v, after %v", i, p.Offset, eng.CounterSeries[i-1].Offset)
		}
	}
	if eng.Counters[results.CounterChunksCopied] == 0 || eng.Counters[results.CounterEvents] >= int64(len(eng.Events)) {
		t.Errorf("engine counters %v with %d events (the destroy event comes after them)", eng.Counters, len(eng.Events))
	}

	// The baseline: the same workloads, nothing of the engine's.
	if base.Events != nil || base.Counters != nil || base.CounterSeries != nil {
		t.Errorf("baseline events %v, counters %v, counter samples %d", base.Events, base.Counters, len(base.CounterSeries))
	}
	if base.Classes[results.OriginWrite].Count == 0 || base.Classes[results.ImageRead].Count == 0 || len(base.Series) == 0 {
		t.Errorf("baseline classes %v, %d series points", base.Classes, len(base.Series))
	}
	for name, s := range map[string]*results.Side{"engine": eng, "baseline": base} {
		if s.Duration != run {
			t.Errorf("%s side lasted %v, want %v", name, s.Duration, run)
		}
		if m := s.Memory; m.Mallocs <= 0 || m.RSSBytes <= 0 || m.RSSPeakBytes < m.RSSBytes || m.HeapPeakBytes < m.HeapBytes {
			t.Errorf("%s memory %+v", name, m)
		}
	}
}

// TestRunSideTeardown: a side, whole or failing in its setup once the
// devices are open, leaves no goroutine and no file descriptor behind
// (devices, rings, difference storage, the events' forwarder).
func TestRunSideTeardown(t *testing.T) {
	const ok = `
name: teardown
devices: [{name: d0, size: 16MiB}]
diff_storage: {kind: tempfile, limit: 64MiB, portion: 8MiB}
engine: {chunk_minimum_shift: 16}
phases: {prefill: false, run: 300ms}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 4}
  - {name: r, kind: image-read, block_size: 64KiB, queue_depth: 1}
`
	for _, tc := range []struct {
		name, scenario string
		failing        bool
	}{
		{"whole", ok, false},
		// Check would refuse the directory before any side starts; the
		// engine does only when it makes the snapshot, after the devices
		// are open.
		{"storage missing", strings.Replace(ok, "{kind: tempfile,", "{kind: dir, path: /nonexistent/snapring,", 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, fds := goleak.IgnoreCurrent(), openFds(t)
			cfg := RunConfig{Scenario: parse(t, tc.scenario)}
			cfg.Scenario.EnsureDefaults()
			devs, cleanup, err := prepareDevices(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, withEngine := range []bool{false, true} {
				side, _, err := runSide(context.Background(), cfg, devs, withEngine)
				if failing := tc.failing && withEngine; (err != nil) != failing || failing && !errors.Is(err, ErrRun) {
					t.Errorf("engine %v: err %v, want failing %v (ErrRun)", withEngine, err, failing)
				} else if err == nil && side.Classes[results.OriginWrite].Count == 0 {
					t.Errorf("engine %v: no origin write", withEngine)
				}
			}
			cleanup()
			goleak.VerifyNone(t, before)
			if got := openFds(t); got != fds {
				t.Errorf("%d file descriptors open after the run, %d before", got, fds)
			}
		})
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestClassCount: the runner's per-class arrays have a place for every class.
func TestClassCount(t *testing.T) {
	if nClasses != len(results.Classes) {
		t.Fatalf("nClasses %d, results.Classes %d", nClasses, len(results.Classes))
	}
	for i, c := range results.Classes {
		if classIndex(c) != i {
			t.Errorf("class %s at %d, classIndex %d", c, i, classIndex(c))
		}
	}
}
