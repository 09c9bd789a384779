// Package results holds the result of one snapring benchmark run, compares
// sets of runs, and renders reports.
//
// # The result document
//
// A Result is one run, written by Encode or WriteFile as one JSON document
// whose "schema" is SchemaV1. Decode refuses other schemas, unknown fields,
// trailing data and results that break an invariant (unknown class, negative
// count), each with a one-line error wrapping ErrSchema, ErrMalformed or
// ErrInvalid. WriteFile writes atomically: a temporary file in the target
// directory, renamed over the target.
//
// A run has two sides measured in the same invocation: Engine, the workload
// against a snapshotted device, and Baseline, the same workload on the raw
// backing files. Each side holds one ClassResult per operation Class, a
// per-interval throughput Series, engine Counters, Events (such as EventTake)
// and Memory. All durations and offsets are nanoseconds (time.Duration);
// offsets inside a side count from that side's Start, the start of
// measurement after any warmup, so an event or counter sample during warmup
// has a negative offset. MB is 10^6 bytes.
//
// # Filling a result from the runner
//
// Record each class's latencies (ns) in a histogram from NewHistogram
// (HistogramLowestNs, HistogramHighestNs, HistogramSigFigs; clamp values
// above the highest), then call SummaryFromHistogram with the class's error
// count, bytes moved and the side's measured duration. In open-loop mode
// latencies count from each operation's intended start. Record an operation
// in its aggregate class (OriginWrite, ImageRead) as well as in its
// sub-class (OriginWriteCoW, ImageReadDiff, ...). Call ComputeRatios once
// both sides are filled in. Env comes from CollectEnv.
//
// The histogram is stored in HdrHistogram's V2 compressed encoding as base64
// ("HISTF..."), the form HdrHistogram's own log tools read.
//
// # Comparing
//
// Compare takes the repetitions of a base and a new build and, for every
// engine metric, every engine/baseline ratio and (for information) every
// baseline metric, tests whether they differ (Mann-Whitney U test from
// golang.org/x/perf/benchmath). A change is a regression or improvement only
// if it is significant at CompareOptions.Alpha, after a Benjamini-Hochberg
// correction over the tested metrics that count towards the verdict, and
// beyond the latency or throughput threshold. With too few runs for the test ever to reach Alpha
// (one on either side, or up to three on each) the threshold alone decides,
// and the output says so. Comparison.Regressed drives the exit code;
// WriteText, WriteMarkdown and WriteJSON render it.
//
// # Reports
//
// WriteHTML writes one self-contained HTML file with inline SVG plots drawn
// by gonum/plot: latency by percentile (HdrHistogram style), engine against
// baseline bars, and throughput over time with the snapshot take and other
// events marked. WritePNGs writes the same plots as PNG files. Both outputs
// depend only on their input, so golden files can pin them.
package results
