package results

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// synthSpec describes a synthetic run. Latencies are lognormal around each
// class's median, with a slow tail, and scaled by a per-run "machine" factor
// so that runs differ the way real repetitions do.
type synthSpec struct {
	seed uint64
	// engineLatency and baselineLatency scale every latency of that side
	// (1 = unchanged); throughput follows, as in a closed loop.
	engineLatency, baselineLatency float64
	// runJitter is the standard deviation of the per-run factor.
	runJitter float64
	// opsPerClass is the number of operations per class.
	opsPerClass int
}

func defaultSpec(seed uint64) synthSpec {
	return synthSpec{seed: seed, engineLatency: 1, baselineLatency: 1, runJitter: 0.02, opsPerClass: 4000}
}

// Class medians in nanoseconds.
var (
	engineMediansNs = map[Class]float64{
		OriginWriteCoW:    120e3,
		OriginWriteCopied: 25e3,
		ImageReadOriginal: 22e3,
		ImageReadMemory:   8e3,
		ImageReadDiff:     40e3,
		ImageWrite:        60e3,
	}
	baselineMediansNs = map[Class]float64{
		OriginWrite: 20e3,
		ImageRead:   18e3,
	}
	// aggregateOf maps sub-classes to the aggregate class that also counts
	// their operations.
	aggregateOf = map[Class]Class{
		OriginWriteCoW:    OriginWrite,
		OriginWriteCopied: OriginWrite,
		ImageReadOriginal: ImageRead,
		ImageReadMemory:   ImageRead,
		ImageReadDiff:     ImageRead,
	}
)

const synthBlockBytes = 4096

// synthSide records the latencies of one side and returns its summaries.
func synthSide(rng *rand.Rand, medians map[Class]float64, scale float64, ops int, elapsed time.Duration) map[Class]ClassResult {
	hists := make(map[Class]*hdrhistogram.Histogram)
	hist := func(c Class) *hdrhistogram.Histogram {
		if hists[c] == nil {
			hists[c] = NewHistogram()
		}
		return hists[c]
	}
	// Iterate in a fixed order so the same seed gives the same result.
	for _, c := range Classes {
		med, ok := medians[c]
		if !ok {
			continue
		}
		for range ops {
			v := med * scale * math.Exp(0.4*rng.NormFloat64())
			if rng.Float64() < 0.002 {
				v *= 10 + 20*rng.Float64()
			}
			ns := min(max(int64(v), HistogramLowestNs), HistogramHighestNs)
			_ = hist(c).RecordValue(ns)
			if agg, ok := aggregateOf[c]; ok {
				_ = hist(agg).RecordValue(ns)
			}
		}
	}
	out := make(map[Class]ClassResult, len(hists))
	for c, h := range hists {
		out[c] = SummaryFromHistogram(h, 0, h.TotalCount()*synthBlockBytes, elapsed)
	}
	return out
}

// synthSeries returns one point per second with noisy throughput.
func synthSeries(rng *rand.Rand, classes map[Class]ClassResult, elapsed time.Duration) []SeriesPoint {
	var total float64
	for c, cr := range classes {
		if c == OriginWrite || c == ImageRead || c == ImageWrite {
			total += cr.IOPS
		}
	}
	var pts []SeriesPoint
	for off := time.Duration(0); off < elapsed; off += time.Second {
		length := min(time.Second, elapsed-off)
		ops := int64(total * length.Seconds() * (1 + 0.05*rng.NormFloat64()))
		pts = append(pts, SeriesPoint{Offset: off, Length: length, Ops: ops, Bytes: ops * synthBlockBytes})
	}
	return pts
}

// synthCache memoises synthResult: recording and encoding the histograms is
// most of the package's test time, especially under -race.
var synthCache struct {
	sync.Mutex
	m map[synthKey]*Result
}

type synthKey struct {
	spec     synthSpec
	runIndex int
}

// synthResult returns a complete, valid result built from spec. Callers may
// modify the result's maps and top-level fields freely.
func synthResult(tb testing.TB, spec synthSpec, runIndex int) *Result {
	tb.Helper()
	synthCache.Lock()
	defer synthCache.Unlock()
	key := synthKey{spec, runIndex}
	r, ok := synthCache.m[key]
	if !ok {
		r = buildSynthResult(tb, spec, runIndex)
		if synthCache.m == nil {
			synthCache.m = make(map[synthKey]*Result)
		}
		synthCache.m[key] = r
	}
	return cloneResult(r)
}

// cloneResult copies r deeply enough for tests to change classes, ratios,
// sides and top-level fields without affecting the cached original.
func cloneResult(r *Result) *Result {
	c := *r
	c.Engine.Classes = maps.Clone(r.Engine.Classes)
	c.Engine.Counters = maps.Clone(r.Engine.Counters)
	c.Engine.Series = slices.Clone(r.Engine.Series)
	c.Engine.Events = slices.Clone(r.Engine.Events)
	if r.Baseline != nil {
		b := *r.Baseline
		b.Classes = maps.Clone(r.Baseline.Classes)
		b.Series = slices.Clone(r.Baseline.Series)
		c.Baseline = &b
	}
	c.Ratios = maps.Clone(r.Ratios)
	return &c
}

func buildSynthResult(tb testing.TB, spec synthSpec, runIndex int) *Result {
	tb.Helper()
	rng := rand.New(rand.NewPCG(spec.seed, 0x5eed))
	machine := math.Exp(spec.runJitter * rng.NormFloat64())
	engScale, baseScale := spec.engineLatency*machine, spec.baselineLatency*machine
	engElapsed := time.Duration(10 * float64(time.Second) * engScale)
	baseElapsed := time.Duration(10 * float64(time.Second) * baseScale)
	start := time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC).Add(time.Duration(runIndex) * time.Minute)

	r := &Result{
		Schema:   SchemaV1,
		Scenario: json.RawMessage(`{"name":"synthetic","block_size":4096,"duration":"10s"}`),
		Env: Env{
			Hostname: "ci-runner-1", KernelRelease: "6.12.0", Machine: "x86_64",
			CPUModel: "Synthetic CPU @ 3.00GHz", CPUs: 8, UsableCPUs: 8,
			GoVersion: "go1.26.0", Commit: "0123456789ab", BackingPath: "/mnt/backing", BackingFS: "ext4",
		},
		LoadMode: ClosedLoop,
		RunIndex: runIndex,
		Start:    start,
		Duration: engElapsed + baseElapsed,
		Engine: Side{
			Start:    start,
			Duration: engElapsed,
			Classes:  synthSide(rng, engineMediansNs, engScale, spec.opsPerClass, engElapsed),
			Counters: map[string]int64{
				CounterChunksCopied: 1200, CounterChunksStored: 1180, CounterStoreQueue: 20,
				CounterDiffBytesUsed: 1200 * 65536, CounterEvents: 2,
			},
			Events: []Event{
				{Offset: 2 * time.Second, Kind: EventTake, Device: "snap0"},
				{Offset: 6500 * time.Millisecond, Kind: "store-queue-full", Device: "snap0", Detail: "queue at 64 chunks"},
			},
			Memory: Memory{RSSBytes: 90 << 20, RSSPeakBytes: 120 << 20, HeapBytes: 40 << 20, HeapPeakBytes: 64 << 20},
		},
		Baseline: &Side{
			Start:    start.Add(engElapsed),
			Duration: baseElapsed,
			Classes:  synthSide(rng, baselineMediansNs, baseScale, spec.opsPerClass, baseElapsed),
			Memory:   Memory{RSSBytes: 30 << 20, RSSPeakBytes: 35 << 20, HeapBytes: 10 << 20, HeapPeakBytes: 12 << 20},
		},
	}
	r.Engine.Series = synthSeries(rng, r.Engine.Classes, engElapsed)
	r.Baseline.Series = synthSeries(rng, r.Baseline.Classes, baseElapsed)
	ComputeRatios(r)
	if err := r.Validate(); err != nil {
		tb.Fatalf("synthetic result is invalid: %v", err)
	}
	return r
}

// synthRuns builds n repetitions; run i uses seed firstSeed+i.
func synthRuns(tb testing.TB, spec synthSpec, firstSeed uint64, n int) []*Result {
	tb.Helper()
	runs := make([]*Result, n)
	for i := range runs {
		s := spec
		s.seed = firstSeed + uint64(i)
		runs[i] = synthResult(tb, s, i)
	}
	return runs
}
