package results

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

// findDelta returns the delta for (g, c, m) or fails the test.
func findDelta(t *testing.T, cmp Comparison, g Group, c Class, m Metric) Delta {
	t.Helper()
	for _, d := range cmp.Deltas {
		if d.Group == g && d.Class == c && d.Metric == m {
			return d
		}
	}
	t.Fatalf("no delta for %s %s %s", g, c, m)
	return Delta{}
}

func verdictSummary(cmp Comparison) string {
	var b strings.Builder
	for _, d := range cmp.Deltas {
		if d.Verdict != NoChange {
			b.WriteString("\n  " + string(d.Group) + " " + string(d.Class) + " " + string(d.Metric) + ": " + string(d.Verdict) + " " + formatChange(d) + " " + formatTest(d))
		}
	}
	return b.String()
}

func TestCompareFlagsInjectedLatencyRegression(t *testing.T) {
	base := synthRuns(t, defaultSpec(0), 1, 5)
	spec := defaultSpec(0)
	spec.engineLatency = 1.2
	newRuns := synthRuns(t, spec, 101, 5)

	cmp := Compare(base, newRuns, CompareOptions{})
	if !cmp.Regressed() {
		t.Fatalf("a 20%% engine latency regression was not flagged; verdicts:%s", verdictSummary(cmp))
	}
	for c := range engineMediansNs {
		for _, m := range []Metric{MetricP50, MetricMean} {
			d := findDelta(t, cmp, GroupEngine, c, m)
			if d.Verdict != Regression {
				t.Errorf("engine %s %s: verdict %q (change %+.1f%%, p=%v), want regression", c, m, d.Verdict, d.ChangePct, d.P)
			}
			if d.P == nil || *d.P >= 0.05 {
				t.Errorf("engine %s %s: p=%v, want < 0.05 with 5 runs each", c, m, d.P)
			}
			if d.ChangePct < 15 || d.ChangePct > 25 {
				t.Errorf("engine %s %s: change %+.1f%%, want about +20%%", c, m, d.ChangePct)
			}
		}
		// The baseline is unchanged, so the ratio carries the regression too.
		if d := findDelta(t, cmp, GroupRatio, c, MetricP50); d.Verdict != Regression {
			t.Errorf("ratio %s p50: verdict %q, want regression", c, d.Verdict)
		}
	}
	// Closed loop: 20% slower means about 17% fewer IOPS, also a regression.
	for _, c := range []Class{OriginWrite, ImageRead, ImageWrite} {
		if d := findDelta(t, cmp, GroupEngine, c, MetricIOPS); d.Verdict != Regression {
			t.Errorf("engine %s iops: verdict %q (change %+.1f%%), want regression", c, d.Verdict, d.ChangePct)
		}
	}
	for _, d := range cmp.Deltas {
		if d.Group == GroupBaseline && d.Verdict != NoChange {
			t.Errorf("baseline %s %s: verdict %q, want ~ (baseline unchanged)", d.Class, d.Metric, d.Verdict)
		}
		if d.Verdict == Improvement {
			t.Errorf("%s %s %s: improvement in a pure regression", d.Group, d.Class, d.Metric)
		}
	}
}

func TestCompareSameDistributionNotFlagged(t *testing.T) {
	// Several independent draws, so that one lucky seed cannot hide a
	// comparison that flags noise.
	for _, seeds := range [][2]uint64{{1, 201}, {11, 301}, {21, 401}} {
		base := synthRuns(t, defaultSpec(0), seeds[0], 5)
		newRuns := synthRuns(t, defaultSpec(0), seeds[1], 5)
		cmp := Compare(base, newRuns, CompareOptions{})
		if cmp.Regressed() {
			t.Errorf("seeds %v: same distribution flagged as a regression:%s", seeds, verdictSummary(cmp))
		}
		if reg, imp := cmp.Counts(); reg+imp > 0 {
			t.Errorf("seeds %v: %d regressions, %d improvements, want none:%s", seeds, reg, imp, verdictSummary(cmp))
		}
		if len(cmp.Warnings) != 0 {
			t.Errorf("seeds %v: unexpected warnings %q", seeds, cmp.Warnings)
		}
	}
}

func TestCompareFlagsImprovement(t *testing.T) {
	spec := defaultSpec(0)
	spec.engineLatency = 0.8
	cmp := Compare(synthRuns(t, defaultSpec(0), 1, 5), synthRuns(t, spec, 101, 5), CompareOptions{})
	if cmp.Regressed() {
		t.Fatalf("a 20%% improvement was flagged as a regression:%s", verdictSummary(cmp))
	}
	if d := findDelta(t, cmp, GroupEngine, OriginWriteCoW, MetricP99); d.Verdict != Improvement {
		t.Errorf("p99: verdict %q (change %+.1f%%), want improvement", d.Verdict, d.ChangePct)
	}
	if d := findDelta(t, cmp, GroupEngine, OriginWrite, MetricIOPS); d.Verdict != Improvement {
		t.Errorf("iops: verdict %q (change %+.1f%%), want improvement", d.Verdict, d.ChangePct)
	}
}

func TestCompareSignificantButBelowThreshold(t *testing.T) {
	spec := defaultSpec(0)
	spec.runJitter = 0.002
	slower := spec
	slower.engineLatency = 1.05
	cmp := Compare(synthRuns(t, spec, 1, 5), synthRuns(t, slower, 101, 5), CompareOptions{})
	d := findDelta(t, cmp, GroupEngine, OriginWriteCoW, MetricMean)
	if d.P == nil || *d.P >= 0.05 {
		t.Fatalf("a 5%% shift with little jitter should be significant; p=%v", d.P)
	}
	if d.Verdict != NoChange {
		t.Errorf("verdict %q for a %+.1f%% change under a 10%% threshold, want ~", d.Verdict, d.ChangePct)
	}
	// A lower threshold makes the same change count.
	cmp = Compare(synthRuns(t, spec, 1, 5), synthRuns(t, slower, 101, 5), CompareOptions{LatencyThresholdPct: 2})
	if d := findDelta(t, cmp, GroupEngine, OriginWriteCoW, MetricMean); d.Verdict != Regression {
		t.Errorf("with a 2%% threshold: verdict %q (change %+.1f%%), want regression", d.Verdict, d.ChangePct)
	}
}

func TestCompareFewRunsUsesThresholdOnly(t *testing.T) {
	slower := defaultSpec(0)
	slower.engineLatency = 1.2
	tests := []struct {
		name        string
		nBase, nNew int
		spec        synthSpec
		wantNote    string
		wantVerdict Verdict
	}{
		{"n=1 regression", 1, 1, slower, "n=1, threshold only", Regression},
		{"n=1 same", 1, 1, defaultSpec(0), "n=1, threshold only", NoChange},
		{"n=1 against 5", 1, 5, slower, "n=1, threshold only", Regression},
		{"n=3 regression", 3, 3, slower, "n=3+3 too few for p<0.05, threshold only", Regression},
		{"n=4 runs the test", 4, 4, slower, "", Regression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmp := Compare(synthRuns(t, defaultSpec(0), 1, tt.nBase), synthRuns(t, tt.spec, 101, tt.nNew), CompareOptions{})
			d := findDelta(t, cmp, GroupEngine, OriginWriteCoW, MetricP50)
			if d.Note != tt.wantNote {
				t.Errorf("note %q, want %q", d.Note, tt.wantNote)
			}
			if d.Verdict != tt.wantVerdict {
				t.Errorf("verdict %q (change %+.1f%%), want %q", d.Verdict, d.ChangePct, tt.wantVerdict)
			}
			if (d.P == nil) != (tt.wantNote != "") {
				t.Errorf("p=%v with note %q", d.P, d.Note)
			}
			var text bytes.Buffer
			if err := cmp.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if tt.wantNote != "" && !strings.Contains(text.String(), tt.wantNote) {
				t.Errorf("text output does not say %q:\n%s", tt.wantNote, text.String())
			}
		})
	}
}

func TestCompareBaselineChangeIsInformational(t *testing.T) {
	// The machine got slower: the baseline regresses, the engine does not,
	// so the engine/baseline ratio improves. Nothing the engine did.
	spec := defaultSpec(0)
	spec.baselineLatency = 1.3
	cmp := Compare(synthRuns(t, defaultSpec(0), 1, 5), synthRuns(t, spec, 101, 5), CompareOptions{})
	if d := findDelta(t, cmp, GroupBaseline, OriginWrite, MetricP50); d.Verdict != Regression {
		t.Errorf("baseline p50: verdict %q, want regression", d.Verdict)
	}
	if cmp.Regressed() {
		t.Errorf("a baseline-only change made Regressed true:%s", verdictSummary(cmp))
	}
	if d := findDelta(t, cmp, GroupRatio, OriginWriteCoW, MetricP50); d.Verdict != Improvement {
		t.Errorf("ratio p50: verdict %q, want improvement", d.Verdict)
	}
}

func TestCompareThroughputDirection(t *testing.T) {
	// Lower IOPS at the same latency (say, a lower queue depth) is a
	// regression of throughput only. Only 2 of the 22 counted metrics move,
	// so under Benjamini-Hochberg their p-values must be below 2/22*alpha:
	// 8 runs a side (5 a side cannot go below p=0.0079).
	base := synthRuns(t, defaultSpec(0), 1, 8)
	newRuns := synthRuns(t, defaultSpec(0), 1, 8)
	for _, r := range newRuns {
		cr := r.Engine.Classes[ImageWrite]
		cr.IOPS *= 0.7
		cr.MBps *= 0.7
		r.Engine.Classes[ImageWrite] = cr
		ComputeRatios(r)
	}
	cmp := Compare(base, newRuns, CompareOptions{})
	for _, m := range []Metric{MetricIOPS, MetricMBps} {
		if d := findDelta(t, cmp, GroupEngine, ImageWrite, m); d.Verdict != Regression {
			t.Errorf("image-write %s: verdict %q (change %+.1f%%), want regression", m, d.Verdict, d.ChangePct)
		}
		if d := findDelta(t, cmp, GroupRatio, ImageWrite, m); d.Verdict != Regression {
			t.Errorf("ratio image-write %s: verdict %q, want regression", m, d.Verdict)
		}
	}
	if d := findDelta(t, cmp, GroupEngine, ImageWrite, MetricP50); d.Verdict != NoChange || d.ChangePct != 0 {
		t.Errorf("image-write p50: verdict %q change %v, want ~ and 0", d.Verdict, d.ChangePct)
	}
}

func TestCompareMissingClassAndWarnings(t *testing.T) {
	base := synthRuns(t, defaultSpec(0), 1, 2)
	newRuns := synthRuns(t, defaultSpec(0), 101, 2)
	for _, r := range base {
		delete(r.Engine.Classes, ImageReadDiff)
		ComputeRatios(r)
	}
	newRuns[1].Partial = true
	newRuns[0].Env.KernelRelease = "6.13.0"
	newRuns[1].Baseline = nil
	cmp := Compare(base, newRuns, CompareOptions{})
	if d := findDelta(t, cmp, GroupEngine, ImageReadDiff, MetricP50); d.Note != "only in new" || d.Verdict != NoChange {
		t.Errorf("class only in new: note %q verdict %q", d.Note, d.Verdict)
	}
	want := []string{
		"new run 1 (run_index 1) is partial (interrupted)",
		"new run 1 (run_index 1) has no baseline side",
		`runs differ in kernel ("6.12.0" vs "6.13.0")`,
	}
	for _, w := range want {
		found := false
		for _, got := range cmp.Warnings {
			found = found || got == w
		}
		if !found {
			t.Errorf("missing warning %q in %q", w, cmp.Warnings)
		}
	}
}

func TestCompareOptions(t *testing.T) {
	var o CompareOptions
	o.EnsureDefaults()
	if o != (CompareOptions{Alpha: 0.05, LatencyThresholdPct: 10, ThroughputThresholdPct: 10}) {
		t.Errorf("defaults: %+v", o)
	}
	tests := []struct {
		name string
		opts CompareOptions
		ok   bool
	}{
		{"defaults", o, true},
		{"alpha 1", CompareOptions{Alpha: 1, LatencyThresholdPct: 10, ThroughputThresholdPct: 10}, false},
		{"negative threshold", CompareOptions{Alpha: 0.05, LatencyThresholdPct: -1, ThroughputThresholdPct: 10}, false},
		{"zero threshold", CompareOptions{Alpha: 0.01}, true},
	}
	for _, tt := range tests {
		if err := tt.opts.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	cmp := Compare(nil, nil, CompareOptions{Alpha: 2})
	if cmp.Options.Alpha != DefaultAlpha || len(cmp.Warnings) == 0 || !strings.Contains(cmp.Warnings[0], "alpha 2") {
		t.Errorf("invalid alpha: options %+v warnings %q", cmp.Options, cmp.Warnings)
	}
}

// comparisonForGolden is a small deterministic comparison with every kind
// of row: regressions with p-values, threshold-only rows, informational
// baseline rows.
func comparisonForGolden(t *testing.T) Comparison {
	slower := defaultSpec(0)
	slower.engineLatency = 1.2
	slower.opsPerClass = 2000
	spec := defaultSpec(0)
	spec.opsPerClass = 2000
	base := synthRuns(t, spec, 1, 5)
	newRuns := synthRuns(t, slower, 101, 5)
	newRuns[4].Partial = true
	return Compare(base, newRuns, CompareOptions{})
}

func TestCompareRenderGolden(t *testing.T) {
	cmp := comparisonForGolden(t)
	for _, r := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"compare.txt.golden", func(b *bytes.Buffer) error { return cmp.WriteText(b) }},
		{"compare.md.golden", func(b *bytes.Buffer) error { return cmp.WriteMarkdown(b) }},
		{"compare.json.golden", func(b *bytes.Buffer) error { return cmp.WriteJSON(b) }},
	} {
		t.Run(r.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.write(&buf); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, r.file, buf.Bytes())
		})
	}
	// The JSON rendering reads back into the same comparison.
	var buf bytes.Buffer
	if err := cmp.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Comparison
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Regressed() != cmp.Regressed() || len(back.Deltas) != len(cmp.Deltas) {
		t.Errorf("JSON round trip lost data")
	}
}

func TestMarkdownEscapesCells(t *testing.T) {
	cmp := Comparison{Warnings: []string{"a|b <script>"}}
	var buf bytes.Buffer
	if err := cmp.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") || !strings.Contains(buf.String(), `a\|b`) {
		t.Errorf("warning not escaped:\n%s", buf.String())
	}
}

// p50Runs returns one minimal run per value, with that engine origin-write
// p50 in microseconds.
func p50Runs(p50Us ...int64) []*Result {
	var runs []*Result
	for i, us := range p50Us {
		runs = append(runs, &Result{Schema: SchemaV1, LoadMode: ClosedLoop, RunIndex: i, Engine: Side{Classes: map[Class]ClassResult{
			OriginWrite: {Count: 1000, P50Ns: us * 1000, P99Ns: us * 1000, MeanNs: us * 1000, IOPS: 1000, MBps: 4},
		}}})
	}
	return runs
}

func TestCompareLargeButNoisyChangeIsNotFlagged(t *testing.T) {
	// The medians differ by 15%, beyond the threshold, but the runs overlap
	// so much that the difference is not significant: noise, not a change.
	base := p50Runs(100, 130, 90, 150, 80)
	newRuns := p50Runs(115, 95, 160, 85, 140)
	d := findDelta(t, Compare(base, newRuns, CompareOptions{}), GroupEngine, OriginWrite, MetricP50)
	if d.ChangePct < 14 || d.ChangePct > 16 {
		t.Fatalf("change %+.1f%%, want +15%%", d.ChangePct)
	}
	if d.P == nil || *d.P < 0.05 {
		t.Fatalf("p=%v, want not significant", d.P)
	}
	if d.Verdict != NoChange {
		t.Errorf("verdict %q for an insignificant change, want ~", d.Verdict)
	}
	// The same medians without the overlap are a regression.
	d = findDelta(t, Compare(p50Runs(100, 101, 99, 102, 98), p50Runs(115, 116, 114, 117, 113), CompareOptions{}), GroupEngine, OriginWrite, MetricP50)
	if d.Verdict != Regression {
		t.Errorf("verdict %q for a clean +15%% shift, want regression", d.Verdict)
	}
}

// TestCompareFalseDiscoveries: one metric out of many at p just under alpha
// is what chance gives in same-build comparisons; it must not be a verdict.
// The same p-value on most metrics at once is a real change and stays one.
func TestCompareFalseDiscoveries(t *testing.T) {
	p := func(v float64) *float64 { return &v }
	ds := []Delta{
		{Metric: MetricP99, P: p(0.038), Verdict: Regression},
		{Metric: MetricP50, P: p(0.6)},
		{Metric: MetricIOPS, P: p(0.3)},
		{Metric: MetricMBps, P: p(0.3)},
		{Metric: MetricMean, P: p(0.001), Verdict: Regression, Info: true}, // informational: not in the family
		{Metric: MetricP50, P: nil, Verdict: Regression},                   // threshold only: untouched
	}
	fdr(ds, 0.05, nil)
	if ds[0].Verdict != NoChange || ds[0].Note == "" {
		t.Errorf("a lone p=0.038 among 4 tests: verdict %q, note %q; want ~ with a note", ds[0].Verdict, ds[0].Note)
	}
	if ds[4].Verdict != Regression || ds[5].Verdict != Regression {
		t.Errorf("informational or untested rows changed: %q, %q", ds[4].Verdict, ds[5].Verdict)
	}
	many := []Delta{
		{Metric: MetricP99, P: p(0.03), Verdict: Regression},
		{Metric: MetricP50, P: p(0.02), Verdict: Regression},
		{Metric: MetricIOPS, P: p(0.04), Verdict: Regression},
		{Metric: MetricMBps, P: p(0.04), Verdict: Regression},
	}
	fdr(many, 0.05, nil)
	for i, d := range many {
		if d.Verdict != Regression {
			t.Errorf("row %d: all four metrics at p<=0.04 is a change (k/m*alpha holds at k=m); got %q", i, d.Verdict)
		}
	}
	// A metric repeated (every write copied: the subclass is the class)
	// is one test. Counted twice, p=0.015 would pass at rank 2 of 6
	// (0.0167); once, among 5, it needs 0.01 (seen in a same-build run).
	dups := []Delta{
		{Metric: MetricP99, P: p(0.015), Verdict: Regression},
		{Metric: MetricP99, P: p(0.015), Verdict: Regression}, // the copied subclass
		{Metric: MetricP50, P: p(0.57)},
		{Metric: MetricP50, P: p(0.57)},
		{Metric: MetricIOPS, P: p(0.04)},
		{Metric: MetricMBps, P: p(0.6)},
	}
	fdr(dups, 0.05, map[int]int{1: 0, 3: 2})
	if dups[0].Verdict != NoChange || dups[1].Verdict != NoChange || dups[1].Note != dups[0].Note {
		t.Errorf("p=0.015 counted once among 4: verdicts %q, %q (notes %q, %q); want ~ for both, same note",
			dups[0].Verdict, dups[1].Verdict, dups[0].Note, dups[1].Note)
	}
}

// TestCompareDuplicateMetrics: a subclass identical to its class run for
// run, and the MB/s ratio equal to the IOPS ratio, are found as duplicates;
// different values are not.
func TestCompareDuplicateMetrics(t *testing.T) {
	base := p50Runs(100, 101, 99, 102, 98, 100, 101, 99)
	newRuns := p50Runs(100, 101, 99, 102, 98, 100, 101, 97)
	for _, rs := range [][]*Result{base, newRuns} {
		for _, r := range rs {
			r.Engine.Classes[OriginWriteCopied] = r.Engine.Classes[OriginWrite]
		}
	}
	baseVals, newVals := collectMetrics(base), collectMetrics(newRuns)
	keys := []metricKey{
		{GroupEngine, OriginWrite, MetricP50},
		{GroupEngine, OriginWrite, MetricIOPS},
		{GroupEngine, OriginWriteCopied, MetricP50},
		{GroupEngine, OriginWriteCopied, MetricIOPS},
		{GroupEngine, OriginWrite, MetricMBps},
	}
	got := duplicateMetrics(keys, baseVals, newVals)
	want := map[int]int{2: 0, 3: 1}
	if !maps.Equal(got, want) {
		t.Errorf("duplicates %v, want %v (copied = class; MB/s differs from IOPS in value)", got, want)
	}
}
