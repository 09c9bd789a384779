package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// SchemaV1 is the schema identifier this package writes and the only one it
// reads. A change that an older reader would misread (a renamed or removed
// field, a new class, a changed unit) needs a new identifier.
const SchemaV1 = "snapring.result/v1"

// Sentinel errors. Every error returned by this package wraps one of them, so
// callers can tell them apart with errors.Is.
var (
	// ErrSchema reports a document whose "schema" is missing or not SchemaV1.
	ErrSchema = errors.New("results: unsupported schema")
	// ErrMalformed reports a document that is not valid JSON for the schema:
	// syntax errors, unknown fields, wrong types, trailing data.
	ErrMalformed = errors.New("results: malformed result")
	// ErrInvalid reports a result that decodes but breaks an invariant
	// (unknown class, negative count, unknown load mode, ...).
	ErrInvalid = errors.New("results: invalid result")
	// ErrRead reports a failure to read a result file.
	ErrRead = errors.New("results: cannot read")
	// ErrWrite reports a failure to write a result or report file.
	ErrWrite = errors.New("results: cannot write")
	// ErrHistogram reports a histogram that cannot be encoded or decoded.
	ErrHistogram = errors.New("results: bad histogram")
	// ErrReport reports a failure to build or render a report.
	ErrReport = errors.New("results: cannot render report")
	// ErrOptions reports invalid CompareOptions or ReportOptions.
	ErrOptions = errors.New("results: invalid options")
)

// LoadMode says how the load generator issued operations.
type LoadMode string

const (
	// ClosedLoop issues the next operation when one completes; latency counts
	// from the actual submission.
	ClosedLoop LoadMode = "closed-loop"
	// OpenLoop issues operations on a schedule regardless of completions;
	// latency counts from the intended start, so queueing delay caused by a
	// slow engine is included (no coordinated omission).
	OpenLoop LoadMode = "open-loop"
)

// Class names one kind of operation whose latencies are recorded separately.
type Class string

// The operation classes. The aggregate classes (OriginWrite, ImageRead) hold
// every operation of their kind, and their sub-classes split the same
// operations by what the engine had to do.
const (
	// OriginWriteCoW is a first write to a chunk, which copies the chunk out.
	OriginWriteCoW Class = "origin-write-cow"
	// OriginWriteCopied is a write to a chunk that was already copied.
	OriginWriteCopied Class = "origin-write-copied"
	// OriginWrite is every origin write; on the baseline side, a raw write.
	OriginWrite Class = "origin-write"
	// ImageReadOriginal is a snapshot read served from the unchanged origin.
	ImageReadOriginal Class = "image-read-original"
	// ImageReadMemory is a snapshot read served from a chunk still in memory.
	ImageReadMemory Class = "image-read-memory"
	// ImageReadDiff is a snapshot read served from diff storage.
	ImageReadDiff Class = "image-read-diff"
	// ImageRead is every snapshot read; on the baseline side, a raw read.
	ImageRead Class = "image-read"
	// ImageWrite is a write to the snapshot image.
	ImageWrite Class = "image-write"
)

// Classes lists every known class in report order.
var Classes = []Class{
	OriginWrite, OriginWriteCoW, OriginWriteCopied,
	ImageRead, ImageReadOriginal, ImageReadMemory, ImageReadDiff,
	ImageWrite,
}

// Known reports whether c is one of Classes.
func (c Class) Known() bool { return slices.Contains(Classes, c) }

// Aggregate reports whether c counts every operation of its kind (as opposed
// to a sub-class that counts a share of them). Throughput ratios are only
// meaningful for aggregate classes.
func (c Class) Aggregate() bool {
	return c == OriginWrite || c == ImageRead || c == ImageWrite
}

// classOrder returns c's position in Classes, or len(Classes) if unknown.
func classOrder(c Class) int {
	if i := slices.Index(Classes, c); i >= 0 {
		return i
	}
	return len(Classes)
}

// sortedClasses returns the keys of m in report order.
func sortedClasses[V any](m map[Class]V) []Class {
	cs := make([]Class, 0, len(m))
	for c := range m {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b Class) int {
		if d := classOrder(a) - classOrder(b); d != 0 {
			return d
		}
		return strings.Compare(string(a), string(b))
	})
	return cs
}

// Engine counter names: the keys of Side.Counters and CounterPoint.Values,
// one for every engine statistic the runner records. Results from older
// runners hold fewer, fio's none; reports show whatever keys a result has.
const (
	CounterChunksCopied      = "chunks_copied"
	CounterChunksStored      = "chunks_stored"
	CounterChunksFailed      = "chunks_failed"
	CounterStoreQueue        = "store_queue_chunks"
	CounterDiffBytesUsed     = "diff_bytes_used"
	CounterDiffBytesCapacity = "diff_bytes_capacity"
	// CounterEvents counts the side's Events so far; CounterEventsDropped
	// the engine events lost to its full event queue.
	CounterEvents        = "events"
	CounterEventsDropped = "events_dropped"
)

// Event kinds. EventTake and EventDestroy are the runner's own phases:
// EventTake is taking the snapshot, which reports mark apart from other
// events; EventDestroy is destroying it at the end of the engine side, with
// the time it took as the Detail. The others are the engine's events under
// the engine's own names (engine.EventKind's String).
const (
	EventTake         = "take"
	EventDestroy      = "destroy"
	EventLowFreeSpace = "low-free-space"
	EventNoSpace      = "no-space"
	EventOverflow     = "overflow"
	EventCorrupted    = "corrupted"
)

// Result is everything one benchmark run produced. Encode writes it as one
// JSON document; Decode reads it back.
type Result struct {
	// Schema is SchemaV1. Encode fills it in when empty.
	Schema string `json:"schema"`
	// Scenario is the resolved scenario as JSON, stored opaquely so that this
	// package does not depend on the scenarios package.
	Scenario json.RawMessage `json:"scenario,omitempty"`
	Env      Env             `json:"env"`
	LoadMode LoadMode        `json:"load_mode"`
	// RunIndex is the repetition number (0-based) under --repeat.
	RunIndex int `json:"run_index"`
	// Partial is set when the run was interrupted (Ctrl-C); its figures
	// cover less than the planned duration.
	Partial  bool          `json:"partial"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Engine is the workload run against a snapshotted device.
	Engine Side `json:"engine"`
	// Baseline is the same workload on raw backing files with no snapshot,
	// from the same invocation. Nil when it was not run (interrupted, or
	// disabled).
	Baseline *Side `json:"baseline,omitempty"`
	// Ratios maps each engine class to engine/baseline ratios. ComputeRatios
	// fills it in.
	Ratios map[Class]Ratio `json:"ratios,omitempty"`
	// CowUse says how much of the engine's copy-on-write capacity the
	// measured part used; nil unless the scenario measured the capacity
	// (phases.cow_capacity).
	CowUse *CowUse `json:"cow_use,omitempty"`
}

// CowUse compares the chunks copied per second in the measured part with
// what the engine copies with nothing else running.
type CowUse struct {
	// CapacityChunksPerSecond is measured first, on fresh chunks, closed
	// loop, with no other load (phases.cow_capacity long).
	CapacityChunksPerSecond float64 `json:"capacity_chunks_per_second"`
	// MeasuredChunksPerSecond is the chunks copied per second during the
	// engine side's measured part.
	MeasuredChunksPerSecond float64 `json:"measured_chunks_per_second"`
}

// Fraction is Measured/Capacity, 0 when the capacity is unknown.
func (u CowUse) Fraction() float64 {
	if u.CapacityChunksPerSecond <= 0 {
		return 0
	}
	return u.MeasuredChunksPerSecond / u.CapacityChunksPerSecond
}

// Side holds the figures of one side (engine or baseline) of a run. All
// offsets in it count from Start.
type Side struct {
	// Start is when measurement began (after any warmup), and Duration how
	// long it lasted; rates divide by Duration.
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Classes holds one summary per class that saw at least one operation.
	Classes map[Class]ClassResult `json:"classes"`
	// Series is the per-interval (normally one second) throughput.
	Series []SeriesPoint `json:"series,omitempty"`
	// Counters is the engine counters snapshot at the end of the side.
	Counters map[string]int64 `json:"counters,omitempty"`
	// CounterSeries optionally samples the counters over time.
	CounterSeries []CounterPoint `json:"counter_series,omitempty"`
	Events        []Event        `json:"events,omitempty"`
	Memory        Memory         `json:"memory"`
	// IOWQKicks counts the waits in this side that saw nothing complete
	// for 50 ms or more and kicked io-wq (uring.Kicks): 0 normally; more
	// means writes stalled in the kernel's io-wq and were recovered.
	IOWQKicks int64 `json:"iowq_kicks,omitempty"`
}

// ClassResult summarises the latencies and throughput of one class. All
// latencies are nanoseconds. MB is 10^6 bytes.
type ClassResult struct {
	// Count is the number of completed operations, whose latencies are in
	// the histogram.
	Count int64 `json:"count"`
	// Errors is the number of operations that failed.
	Errors  int64   `json:"errors"`
	MinNs   int64   `json:"min_ns"`
	MeanNs  int64   `json:"mean_ns"`
	P50Ns   int64   `json:"p50_ns"`
	P90Ns   int64   `json:"p90_ns"`
	P99Ns   int64   `json:"p99_ns"`
	P999Ns  int64   `json:"p99_9_ns"`
	P9999Ns int64   `json:"p99_99_ns"`
	MaxNs   int64   `json:"max_ns"`
	IOPS    float64 `json:"iops"`
	MBps    float64 `json:"mb_per_s"`
	Bytes   int64   `json:"bytes"`
	// Histogram is the latency histogram in HdrHistogram's V2 compressed
	// encoding, base64 ("HISTF..."), as read by HdrHistogram's own tools.
	Histogram string `json:"histogram,omitempty"`
}

// Ratio holds engine/baseline ratios for one engine class. Latency ratios
// above 1 mean the engine is slower; throughput ratios below 1 mean it does
// less. A zero field means the ratio is undefined (a zero or missing
// figure); throughput ratios are only set for aggregate classes, because a
// sub-class's rate against the baseline's total rate measures its share, not
// a slowdown.
type Ratio struct {
	// Baseline is the baseline class the engine class was matched to.
	Baseline Class   `json:"baseline"`
	IOPS     float64 `json:"iops,omitempty"`
	MBps     float64 `json:"mb_per_s,omitempty"`
	P50      float64 `json:"p50,omitempty"`
	P99      float64 `json:"p99,omitempty"`
}

// SeriesPoint is the throughput of one interval of a side.
type SeriesPoint struct {
	// Offset is the start of the interval from Side.Start.
	Offset time.Duration `json:"offset_ns"`
	// Length is the interval's length, normally one second; the last one may
	// be shorter.
	Length time.Duration `json:"length_ns"`
	Ops    int64         `json:"ops"`
	Bytes  int64         `json:"bytes"`
	// ClassOps splits Ops by class.
	ClassOps map[Class]int64 `json:"class_ops,omitempty"`
	// ClassLatency is the latency of the operations that completed in the
	// interval, by class: a stall shows up here at once, where the whole
	// run's percentiles hide it.
	ClassLatency map[Class]IntervalLatency `json:"class_latency,omitempty"`
}

// IntervalLatency summarises one class's latency over one series interval.
type IntervalLatency struct {
	P50Ns int64 `json:"p50_ns"`
	P99Ns int64 `json:"p99_ns"`
	MaxNs int64 `json:"max_ns"`
}

// IOPS returns the interval's operations per second.
func (p SeriesPoint) IOPS() float64 { return perSecond(float64(p.Ops), p.Length) }

// MBps returns the interval's megabytes (10^6) per second.
func (p SeriesPoint) MBps() float64 { return perSecond(float64(p.Bytes)/1e6, p.Length) }

// CounterPoint is a sample of the engine counters. Its Offset is negative
// for a sample taken during warmup, before Side.Start.
type CounterPoint struct {
	Offset time.Duration    `json:"offset_ns"`
	Values map[string]int64 `json:"values"`
}

// Event is something that happened during a side, such as taking the
// snapshot (Kind EventTake). Its Offset counts from Side.Start, like the
// series, and is negative for an event during warmup.
type Event struct {
	Offset time.Duration `json:"offset_ns"`
	Kind   string        `json:"kind"`
	Device string        `json:"device,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// Memory holds the process memory use during a side, in bytes.
type Memory struct {
	RSSBytes      int64 `json:"rss_bytes"`
	RSSPeakBytes  int64 `json:"rss_peak_bytes"`
	HeapBytes     int64 `json:"heap_bytes"`
	HeapPeakBytes int64 `json:"heap_peak_bytes"`
	// Mallocs is the process's heap allocations while the run phase was
	// recorded (Go's MemStats.Mallocs), so Mallocs per operation tells
	// whether the I/O path allocates. Results before it have none (0).
	Mallocs int64 `json:"mallocs,omitempty"`
}

// perSecond divides v by d in seconds, giving 0 for a non-positive d.
func perSecond(v float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return v / d.Seconds()
}

// Validate checks the invariants Encode and Decode enforce.
func (r *Result) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil result", ErrInvalid)
	}
	if r.Schema != SchemaV1 {
		return fmt.Errorf("%w %q (this build reads %q)", ErrSchema, r.Schema, SchemaV1)
	}
	if r.LoadMode != ClosedLoop && r.LoadMode != OpenLoop {
		return fmt.Errorf("%w: load_mode %q is neither %q nor %q", ErrInvalid, r.LoadMode, ClosedLoop, OpenLoop)
	}
	if r.RunIndex < 0 || r.Duration < 0 {
		return fmt.Errorf("%w: negative run_index or duration", ErrInvalid)
	}
	if len(r.Scenario) > 0 && !json.Valid(r.Scenario) {
		return fmt.Errorf("%w: scenario is not valid JSON", ErrInvalid)
	}
	if u := r.CowUse; u != nil && !finiteNonNegative(u.CapacityChunksPerSecond, u.MeasuredChunksPerSecond) {
		return fmt.Errorf("%w: cow_use: negative or non-finite rate", ErrInvalid)
	}
	if err := r.Engine.validate("engine"); err != nil {
		return err
	}
	if r.Baseline != nil {
		if err := r.Baseline.validate("baseline"); err != nil {
			return err
		}
	}
	for c, ratio := range r.Ratios {
		if !c.Known() || (ratio.Baseline != "" && !ratio.Baseline.Known()) {
			return fmt.Errorf("%w: ratios: unknown class %q or %q", ErrInvalid, c, ratio.Baseline)
		}
		if !finiteNonNegative(ratio.IOPS, ratio.MBps, ratio.P50, ratio.P99) {
			return fmt.Errorf("%w: ratios[%s]: negative or non-finite ratio", ErrInvalid, c)
		}
	}
	return nil
}

func (s *Side) validate(name string) error {
	if s.Duration < 0 {
		return fmt.Errorf("%w: %s: negative duration", ErrInvalid, name)
	}
	for c, cr := range s.Classes {
		if !c.Known() {
			return fmt.Errorf("%w: %s: unknown class %q (known: %s)", ErrInvalid, name, c, classList())
		}
		if err := cr.validate(); err != nil {
			return fmt.Errorf("%w: %s: class %s: %s", ErrInvalid, name, c, err)
		}
	}
	for i, p := range s.Series {
		if p.Offset < 0 || p.Length < 0 || p.Ops < 0 || p.Bytes < 0 {
			return fmt.Errorf("%w: %s: series[%d]: negative value", ErrInvalid, name, i)
		}
		for c := range p.ClassOps {
			if !c.Known() {
				return fmt.Errorf("%w: %s: series[%d]: unknown class %q", ErrInvalid, name, i, c)
			}
		}
	}
	for i, e := range s.Events {
		if e.Kind == "" {
			return fmt.Errorf("%w: %s: events[%d]: empty kind", ErrInvalid, name, i)
		}
	}
	return nil
}

func (cr ClassResult) validate() error {
	for _, v := range []int64{cr.Count, cr.Errors, cr.MinNs, cr.MeanNs, cr.P50Ns, cr.P90Ns, cr.P99Ns, cr.P999Ns, cr.P9999Ns, cr.MaxNs, cr.Bytes} {
		if v < 0 {
			return errors.New("negative count, latency or bytes")
		}
	}
	if !finiteNonNegative(cr.IOPS, cr.MBps) {
		return errors.New("negative or non-finite iops or mb_per_s")
	}
	if cr.Histogram != "" && !strings.HasPrefix(cr.Histogram, histogramPrefix) {
		return fmt.Errorf("histogram does not start with %q (HdrHistogram V2 compressed, base64)", histogramPrefix)
	}
	return nil
}

func finiteNonNegative(vs ...float64) bool {
	for _, v := range vs {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

func classList() string {
	names := make([]string, len(Classes))
	for i, c := range Classes {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}
