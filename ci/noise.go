package ci

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/snapring/snapring/results"
)

// NoiseLine is the spread of one gating metric over one set's same-build
// repeats: what the noise guard will weigh against the metric's threshold.
type NoiseLine struct {
	Scenario     string         `json:"scenario"`
	Group        results.Group  `json:"group"`
	Class        results.Class  `json:"class"`
	Metric       results.Metric `json:"metric"`
	Runs         int            `json:"runs"`
	CVPct        float64        `json:"cv_pct"`
	ThresholdPct float64        `json:"threshold_pct"`
	// DetectablePct assumes a base set as spread as this one, with as many
	// runs.
	DetectablePct float64 `json:"detectable_pct"`
	RepeatsNeeded int     `json:"repeats_needed"`
}

// Noise reports the spread of every gating metric of a set, scenario by
// scenario, for `ci run` to print before any comparison: a runner too noisy
// for the suite's thresholds shows it on its first run.
func Noise(set *Set) []NoiseLine {
	policy := set.Manifest.Suite.Policy
	var out []NoiseLine
	for _, sc := range set.Manifest.Suite.Scenarios {
		vals := runMetrics(set.Results[sc.Name])
		for _, k := range sortedKeys(vals) {
			mp := policy.For(k.group, k.class, k.metric)
			if !mp.Gate {
				continue
			}
			vs := vals[k]
			cv := cvPct(vs)
			out = append(out, NoiseLine{Scenario: sc.Name, Group: k.group, Class: k.class, Metric: k.metric, Runs: len(vs), CVPct: cv,
				ThresholdPct: mp.ThresholdPct, DetectablePct: detectablePct(cv, cv, len(vs), len(vs), mp.Alpha),
				RepeatsNeeded: repeatsNeeded(cv, cv, mp.ThresholdPct, mp.Alpha)})
		}
	}
	return out
}

// WriteNoise prints Noise as a table, with a verdict per line.
func WriteNoise(w io.Writer, lines []NoiseLine) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "noise guard: spread of same-build repeats per gating metric")
	fmt.Fprintln(tw, "  scenario\tmetric\truns\tCV\tdetectable\tthreshold\trepeats needed\tguard")
	for _, l := range lines {
		ok := "ok"
		if l.DetectablePct > l.ThresholdPct {
			ok = "TOO NOISY"
		}
		fmt.Fprintf(tw, "  %s\t%s/%s/%s\t%d\t%.1f%%\t%.0f%%\t%g%%\t%d\t%s\n", l.Scenario, l.Group, l.Class, l.Metric, l.Runs, l.CVPct, l.DetectablePct, l.ThresholdPct, l.RepeatsNeeded, ok)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

type metricKey struct {
	group  results.Group
	class  results.Class
	metric results.Metric
}

// runMetrics gathers each metric's value from every run, the figures
// results.Compare compares.
func runMetrics(runs []*results.Result) map[metricKey][]float64 {
	vals := map[metricKey][]float64{}
	add := func(g results.Group, c results.Class, m results.Metric, v float64) {
		if v > 0 {
			vals[metricKey{g, c, m}] = append(vals[metricKey{g, c, m}], v)
		}
	}
	side := func(g results.Group, s *results.Side) {
		for c, cr := range s.Classes {
			if cr.Count == 0 {
				continue
			}
			add(g, c, results.MetricP50, float64(cr.P50Ns))
			add(g, c, results.MetricP99, float64(cr.P99Ns))
			add(g, c, results.MetricMean, float64(cr.MeanNs))
			add(g, c, results.MetricIOPS, cr.IOPS)
			add(g, c, results.MetricMBps, cr.MBps)
		}
	}
	for _, r := range runs {
		side(results.GroupEngine, &r.Engine)
		if r.Baseline == nil {
			continue
		}
		side(results.GroupBaseline, r.Baseline)
		for c, ratio := range r.Ratios {
			add(results.GroupRatio, c, results.MetricP50, ratio.P50)
			add(results.GroupRatio, c, results.MetricP99, ratio.P99)
			add(results.GroupRatio, c, results.MetricIOPS, ratio.IOPS)
			add(results.GroupRatio, c, results.MetricMBps, ratio.MBps)
		}
	}
	return vals
}

func sortedKeys(m map[metricKey][]float64) []metricKey {
	keys := make([]metricKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b metricKey) int {
		if d := slices.Index(groups, a.group) - slices.Index(groups, b.group); d != 0 {
			return d
		}
		if d := slices.Index(results.Classes, a.class) - slices.Index(results.Classes, b.class); d != 0 {
			return d
		}
		return slices.Index(metrics, a.metric) - slices.Index(metrics, b.metric)
	})
	return keys
}
