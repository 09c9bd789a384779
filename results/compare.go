package results

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/perf/benchmath"
)

// Defaults for CompareOptions.
const (
	DefaultAlpha                  = 0.05
	DefaultLatencyThresholdPct    = 10.0
	DefaultThroughputThresholdPct = 10.0
)

// CompareOptions configures Compare. A change counts only if it is
// statistically significant at Alpha AND larger than the threshold for its
// kind of metric.
type CompareOptions struct {
	// Alpha is the significance level of the Mann-Whitney U test
	// (default 0.05).
	Alpha float64 `json:"alpha"`
	// LatencyThresholdPct is the smallest latency change, in percent, that
	// counts (default 10).
	LatencyThresholdPct float64 `json:"latency_threshold_pct"`
	// ThroughputThresholdPct is the smallest IOPS or MB/s change, in
	// percent, that counts (default 10).
	ThroughputThresholdPct float64 `json:"throughput_threshold_pct"`
	// Absolute makes the engine side's own figures count toward the
	// verdict. By default only the engine/baseline ratios do: on shared or
	// differing machines absolute figures move with the machine, while the
	// ratios, measured in the same invocation, hold.
	Absolute bool `json:"absolute"`
}

// EnsureDefaults replaces zero fields with their defaults.
func (o *CompareOptions) EnsureDefaults() {
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.LatencyThresholdPct == 0 {
		o.LatencyThresholdPct = DefaultLatencyThresholdPct
	}
	if o.ThroughputThresholdPct == 0 {
		o.ThroughputThresholdPct = DefaultThroughputThresholdPct
	}
}

// Validate reports options that make no sense.
func (o CompareOptions) Validate() error {
	if !(o.Alpha > 0 && o.Alpha < 1) {
		return fmt.Errorf("%w: alpha %v is not between 0 and 1", ErrOptions, o.Alpha)
	}
	if !(o.LatencyThresholdPct >= 0) || !(o.ThroughputThresholdPct >= 0) ||
		math.IsInf(o.LatencyThresholdPct, 0) || math.IsInf(o.ThroughputThresholdPct, 0) {
		return fmt.Errorf("%w: thresholds must be finite and non-negative", ErrOptions)
	}
	return nil
}

// Verdict is the outcome for one metric.
type Verdict string

const (
	Regression  Verdict = "regression"
	Improvement Verdict = "improvement"
	// NoChange means not significant, or within the threshold.
	NoChange Verdict = "~"
)

// Group says where a compared metric comes from.
type Group string

const (
	// GroupEngine is the engine side's own figures.
	GroupEngine Group = "engine"
	// GroupRatio is the engine/baseline ratio, which factors out changes of
	// the machine.
	GroupRatio Group = "ratio"
	// GroupBaseline is the baseline side, reported to explain engine
	// changes; it never makes Regressed true.
	GroupBaseline Group = "baseline"
)

// Metric names a compared figure.
type Metric string

const (
	MetricP50  Metric = "p50"
	MetricP99  Metric = "p99"
	MetricMean Metric = "mean"
	MetricIOPS Metric = "iops"
	MetricMBps Metric = "mb/s"
)

// latency reports whether higher values of m are worse.
func (m Metric) latency() bool { return m == MetricP50 || m == MetricP99 || m == MetricMean }

// Stat summarises one metric over the runs of one set.
type Stat struct {
	// N is the number of runs that had the metric.
	N int `json:"n"`
	// Center is the median over the runs.
	Center float64 `json:"center"`
	// Lo and Hi bound the confidence interval of Center at level 1-Alpha;
	// nil when there are too few runs to have one.
	Lo     *float64  `json:"lo,omitempty"`
	Hi     *float64  `json:"hi,omitempty"`
	Values []float64 `json:"values"`
}

// Delta is the comparison of one metric. Latency values are nanoseconds,
// throughput values op/s or MB/s, ratio values plain ratios.
type Delta struct {
	Group  Group  `json:"group"`
	Class  Class  `json:"class"`
	Metric Metric `json:"metric"`
	Base   Stat   `json:"base"`
	New    Stat   `json:"new"`
	// ChangePct is the change of the centers in percent, (new/base-1)*100.
	ChangePct float64 `json:"change_pct"`
	// P is the U test's p-value; nil when too few runs allow a test.
	P       *float64 `json:"p,omitempty"`
	Verdict Verdict  `json:"verdict"`
	// Note says how the verdict was reached when not by the full test
	// ("n=1, threshold only") or why there is none.
	Note string `json:"note,omitempty"`
	// Info marks a row that never affects Regressed: the baseline side
	// always, the engine side unless CompareOptions.Absolute.
	Info bool `json:"informational,omitempty"`
}

// Informational reports whether d never affects Regressed.
func (d Delta) Informational() bool { return d.Info }

// Comparison is the result of Compare.
type Comparison struct {
	Options  CompareOptions `json:"options"`
	BaseRuns int            `json:"base_runs"`
	NewRuns  int            `json:"new_runs"`
	Deltas   []Delta        `json:"deltas"`
	// Warnings point out things that make the comparison less trustworthy:
	// interrupted runs, different scenarios or machines.
	Warnings []string `json:"warnings,omitempty"`
}

// Regressed reports whether any engine or ratio metric regressed.
func (c *Comparison) Regressed() bool {
	return slices.ContainsFunc(c.Deltas, func(d Delta) bool {
		return !d.Informational() && d.Verdict == Regression
	})
}

// Counts returns the number of regressions and improvements that count
// (baseline rows excluded).
func (c *Comparison) Counts() (regressions, improvements int) {
	for _, d := range c.Deltas {
		if d.Informational() {
			continue
		}
		switch d.Verdict {
		case Regression:
			regressions++
		case Improvement:
			improvements++
		}
	}
	return regressions, improvements
}

// Compare compares the runs in base against those in newRuns, each holding
// one or more repetitions of the same scenario. Every engine class metric
// (p50, p99, mean, IOPS, MB/s), every ratio and, for information, every
// baseline metric is compared with a Mann-Whitney U test over the runs'
// values. With too few runs for the test to ever reach Alpha (one run on a
// side, or two or three on each), the threshold alone decides and the Delta
// says so. Invalid options are replaced by defaults, with a warning.
func Compare(base []*Result, newRuns []*Result, opts CompareOptions) Comparison {
	opts.EnsureDefaults()
	var c Comparison
	if err := opts.Validate(); err != nil {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%v; using defaults", err))
		opts = CompareOptions{}
		opts.EnsureDefaults()
	}
	c.Options = opts
	base, newRuns = nonNil(base), nonNil(newRuns)
	c.BaseRuns, c.NewRuns = len(base), len(newRuns)
	c.Warnings = append(c.Warnings, compareWarnings(base, newRuns)...)

	baseVals, newVals := collectMetrics(base), collectMetrics(newRuns)
	keys := make(map[metricKey]bool)
	for k := range baseVals {
		keys[k] = true
	}
	for k := range newVals {
		keys[k] = true
	}
	sorted := make([]metricKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, metricKey.compare)
	for _, k := range sorted {
		c.Deltas = append(c.Deltas, compareMetric(k, baseVals[k], newVals[k], opts))
	}
	fdr(c.Deltas, opts.Alpha, duplicateMetrics(sorted, baseVals, newVals))
	return c
}

// duplicateMetrics maps the index of each metric whose values are those of
// an earlier one in the same group, run for run on both sides, to that
// earlier one: they are one test, not two. A class all of whose operations
// fall in one subclass (every write copied), or the IOPS and MB/s ratios of
// one block size.
func duplicateMetrics(sorted []metricKey, baseVals, newVals map[metricKey][]float64) map[int]int {
	dupOf := make(map[int]int)
	for i, k := range sorted {
		for j, o := range sorted[:i] {
			if _, dup := dupOf[j]; !dup && o.group == k.group &&
				slices.Equal(baseVals[o], baseVals[k]) && slices.Equal(newVals[o], newVals[k]) {
				dupOf[i] = j
				break
			}
		}
	}
	return dupOf
}

// fdr applies the Benjamini-Hochberg procedure to the tested metrics that
// count towards the verdict: with a dozen metrics each tested at alpha, one
// of them comes out "significant" by chance in a good share of same-build
// comparisons (seen in CI: one p99 ratio at p=0.038 over 8+8 runs of one
// build, flagged as a regression). Rejecting only the k smallest p-values
// where the k-th is at most k/m*alpha keeps the expected share of false
// verdicts at alpha, while a real change, which moves several metrics at
// once, keeps its power. A change that loses its significance here keeps its
// p-value and gets a note. A duplicate (dupOf: its index to the original's)
// is left out of the family and takes its original's verdict.
func fdr(ds []Delta, alpha float64, dupOf map[int]int) {
	defer func() {
		for i, j := range dupOf {
			if !ds[i].Info && ds[i].P != nil {
				ds[i].Verdict, ds[i].Note = ds[j].Verdict, ds[j].Note
			}
		}
	}()
	var family []*Delta
	for i := range ds {
		if _, dup := dupOf[i]; dup {
			continue
		}
		if d := &ds[i]; !d.Info && d.P != nil {
			family = append(family, d)
		}
	}
	slices.SortStableFunc(family, func(a, b *Delta) int { return cmp.Compare(*a.P, *b.P) })
	m := len(family)
	k := 0 // how many smallest p-values are rejected
	for i, d := range family {
		if *d.P <= float64(i+1)/float64(m)*alpha {
			k = i + 1
		}
	}
	for _, d := range family[k:] {
		if d.Verdict != NoChange {
			d.Verdict = NoChange
			d.Note = fmt.Sprintf("p=%.2g not significant among %d metrics (Benjamini-Hochberg, alpha %v)", *d.P, m, alpha)
		}
	}
}

func nonNil(rs []*Result) []*Result {
	out := make([]*Result, 0, len(rs))
	for _, r := range rs {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

type metricKey struct {
	group  Group
	class  Class
	metric Metric
}

var (
	groupOrder  = []Group{GroupEngine, GroupRatio, GroupBaseline}
	metricOrder = []Metric{MetricP50, MetricP99, MetricMean, MetricIOPS, MetricMBps}
)

func (k metricKey) compare(o metricKey) int {
	if d := slices.Index(groupOrder, k.group) - slices.Index(groupOrder, o.group); d != 0 {
		return d
	}
	if d := classOrder(k.class) - classOrder(o.class); d != 0 {
		return d
	}
	if k.class != o.class {
		if k.class < o.class {
			return -1
		}
		return 1
	}
	return slices.Index(metricOrder, k.metric) - slices.Index(metricOrder, o.metric)
}

// collectMetrics gathers each metric's value from every run that has it.
func collectMetrics(runs []*Result) map[metricKey][]float64 {
	vals := make(map[metricKey][]float64)
	add := func(g Group, c Class, m Metric, v float64) {
		k := metricKey{g, c, m}
		vals[k] = append(vals[k], v)
	}
	addSide := func(g Group, s *Side) {
		for c, cr := range s.Classes {
			if cr.Count == 0 {
				continue
			}
			add(g, c, MetricP50, float64(cr.P50Ns))
			add(g, c, MetricP99, float64(cr.P99Ns))
			add(g, c, MetricMean, float64(cr.MeanNs))
			add(g, c, MetricIOPS, cr.IOPS)
			add(g, c, MetricMBps, cr.MBps)
		}
	}
	for _, r := range runs {
		addSide(GroupEngine, &r.Engine)
		if r.Baseline == nil {
			continue
		}
		addSide(GroupBaseline, r.Baseline)
		ratios := r.Ratios
		if len(ratios) == 0 {
			tmp := *r
			ComputeRatios(&tmp)
			ratios = tmp.Ratios
		}
		for c, ratio := range ratios {
			for _, mv := range []struct {
				m Metric
				v float64
			}{{MetricP50, ratio.P50}, {MetricP99, ratio.P99}, {MetricIOPS, ratio.IOPS}, {MetricMBps, ratio.MBps}} {
				// Zero means undefined; see Ratio.
				if mv.v > 0 {
					add(GroupRatio, c, mv.m, mv.v)
				}
			}
		}
	}
	return vals
}

func compareMetric(k metricKey, baseVals, newVals []float64, opts CompareOptions) Delta {
	d := Delta{Group: k.group, Class: k.class, Metric: k.metric, Verdict: NoChange,
		Info: k.group == GroupBaseline || k.group == GroupEngine && !opts.Absolute}
	thresholds := &benchmath.Thresholds{CompareAlpha: opts.Alpha}
	confidence := 1 - opts.Alpha
	baseSample := benchmath.NewSample(slices.Clone(baseVals), thresholds)
	newSample := benchmath.NewSample(slices.Clone(newVals), thresholds)
	d.Base = statOf(baseSample, confidence)
	d.New = statOf(newSample, confidence)
	switch {
	case d.Base.N == 0:
		d.Note = "only in new"
		return d
	case d.New.N == 0:
		d.Note = "only in base"
		return d
	case d.Base.Center == d.New.Center:
		d.ChangePct = 0
	case d.Base.Center == 0:
		d.Note = "base is zero"
		return d
	default:
		d.ChangePct = (d.New.Center/d.Base.Center - 1) * 100
	}

	threshold := opts.ThroughputThresholdPct
	if k.metric.latency() {
		threshold = opts.LatencyThresholdPct
	}
	beyond := math.Abs(d.ChangePct) > threshold
	// For a ratio, as for the engine figure itself, a higher latency or a
	// lower throughput is worse.
	worse := (d.ChangePct > 0) == k.metric.latency()

	significant := true
	if minPValue(d.Base.N, d.New.N) > opts.Alpha {
		if d.Base.N == 1 || d.New.N == 1 {
			d.Note = "n=1, threshold only"
		} else {
			d.Note = fmt.Sprintf("n=%d+%d too few for p<%v, threshold only", d.Base.N, d.New.N, opts.Alpha)
		}
	} else {
		cmp := benchmath.AssumeNothing.Compare(baseSample, newSample)
		p := cmp.P
		d.P = &p
		significant = p < opts.Alpha
	}
	if significant && beyond {
		d.Verdict = Improvement
		if worse {
			d.Verdict = Regression
		}
	}
	return d
}

func statOf(s *benchmath.Sample, confidence float64) Stat {
	st := Stat{N: len(s.Values), Values: s.Values}
	if st.N == 0 {
		st.Values = []float64{}
		return st
	}
	sum := benchmath.AssumeNothing.Summary(s, confidence)
	st.Center = sum.Center
	if st.N > 1 && !math.IsInf(sum.Lo, 0) && !math.IsInf(sum.Hi, 0) {
		lo, hi := sum.Lo, sum.Hi
		st.Lo, st.Hi = &lo, &hi
	}
	return st
}

// minPValues caches minPValue.
var minPValues sync.Map

// minPValue returns the smallest p-value the U test can give for samples of
// n1 and n2 values: that of two samples that do not overlap at all.
func minPValue(n1, n2 int) float64 {
	type key struct{ n1, n2 int }
	if p, ok := minPValues.Load(key{n1, n2}); ok {
		return p.(float64)
	}
	a, b := make([]float64, n1), make([]float64, n2)
	for i := range a {
		a[i] = float64(i)
	}
	for i := range b {
		b[i] = float64(n1 + i)
	}
	th := &benchmath.DefaultThresholds
	p := benchmath.AssumeNothing.Compare(benchmath.NewSample(a, th), benchmath.NewSample(b, th)).P
	minPValues.Store(key{n1, n2}, p)
	return p
}

// minRunsForCI returns the number of runs AssumeNothing needs for a finite
// confidence interval of the median at the given confidence.
func minRunsForCI(confidence float64) int {
	const limit = 100
	for n := 2; n < limit; n++ {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = float64(i)
		}
		sum := benchmath.AssumeNothing.Summary(benchmath.NewSample(vs, &benchmath.DefaultThresholds), confidence)
		if !math.IsInf(sum.Lo, 0) && !math.IsInf(sum.Hi, 0) {
			return n
		}
	}
	return limit
}

// compareWarnings points out differences that make a comparison suspect.
func compareWarnings(base, newRuns []*Result) []string {
	var w []string
	if len(base) == 0 {
		w = append(w, "no base results")
	}
	if len(newRuns) == 0 {
		w = append(w, "no new results")
	}
	w = append(w, runWarnings("base ", base)...)
	w = append(w, runWarnings("new ", newRuns)...)
	return append(w, consistencyWarnings(append(slices.Clone(base), newRuns...))...)
}

// runWarnings points out runs that are interrupted or lack a baseline.
func runWarnings(set string, runs []*Result) []string {
	var w []string
	for i, r := range runs {
		if r.Partial {
			w = append(w, fmt.Sprintf("%srun %d (run_index %d) is partial (interrupted)", set, i, r.RunIndex))
		}
		if r.Baseline == nil {
			w = append(w, fmt.Sprintf("%srun %d (run_index %d) has no baseline side", set, i, r.RunIndex))
		}
	}
	return w
}

// consistencyWarnings points out runs that should not be pooled or compared
// because they ran different things or on different machines.
func consistencyWarnings(all []*Result) []string {
	var w []string
	if len(all) < 2 {
		return nil
	}
	first := all[0]
	differs := func(name string, get func(*Result) string, show bool) {
		for _, r := range all[1:] {
			if get(r) == get(first) {
				continue
			}
			if show {
				w = append(w, fmt.Sprintf("runs differ in %s (%q vs %q)", name, get(first), get(r)))
			} else {
				w = append(w, fmt.Sprintf("runs differ in %s", name))
			}
			return
		}
	}
	differs("scenario", func(r *Result) string { return compactJSON(r.Scenario) }, false)
	differs("load mode", func(r *Result) string { return string(r.LoadMode) }, true)
	differs("kernel", func(r *Result) string { return r.Env.KernelRelease }, true)
	differs("CPU model", func(r *Result) string { return r.Env.CPUModel }, true)
	differs("backing file system", func(r *Result) string { return r.Env.BackingFS }, true)
	return w
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// ErrNotComparable is wrapped by CheckComparable's errors and by
// Comparison.Err: a comparison that could only pass vacuously.
var ErrNotComparable = errors.New("results: nothing to compare")

// CheckComparable refuses sets that cannot make a verdict: an empty side, a
// partial (interrupted) run, or one run given twice (the same run, by its
// start and run index, in one set or in both), which would count one
// measurement as several.
func CheckComparable(base, newRuns []*Result) error {
	type runID struct {
		start int64
		index int
	}
	seen := map[runID]string{}
	for _, set := range []struct {
		name string
		runs []*Result
	}{{"base", base}, {"new", newRuns}} {
		if len(nonNil(set.runs)) == 0 {
			return fmt.Errorf("%w: no %s results", ErrNotComparable, set.name)
		}
		for i, r := range set.runs {
			if r == nil {
				continue
			}
			where := fmt.Sprintf("%s result %d", set.name, i+1)
			if r.Partial {
				return fmt.Errorf("%w: %s (run_index %d) is partial (interrupted): run it again", ErrNotComparable, where, r.RunIndex)
			}
			id := runID{r.Start.UnixNano(), r.RunIndex}
			if prev, ok := seen[id]; ok {
				return fmt.Errorf("%w: %s is the same run as %s (start %s, run_index %d): each run counts once", ErrNotComparable, where, prev, r.Start.Format(time.RFC3339Nano), r.RunIndex)
			}
			seen[id] = where
		}
	}
	return nil
}

// Compared is the number of metrics that count toward the verdict and
// have values on both sides.
func (c *Comparison) Compared() int {
	n := 0
	for _, d := range c.Deltas {
		if !d.Informational() && d.Base.N > 0 && d.New.N > 0 && d.Base.Center != 0 {
			n++
		}
	}
	return n
}

// Err is ErrNotComparable when no metric that counts could be compared.
func (c *Comparison) Err() error {
	if c.Compared() == 0 {
		return fmt.Errorf("%w: no metric that counts toward the verdict is on both sides (%d base runs, %d new runs, %d metrics seen)",
			ErrNotComparable, c.BaseRuns, c.NewRuns, len(c.Deltas))
	}
	return nil
}
