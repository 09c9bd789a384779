package ci

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/snapring/snapring/results"
)

// Outcome is the verdict on one metric, as the gate sees it.
type Outcome string

const (
	// Pass: a gating metric with no significant change beyond its
	// threshold (benchstat's "~"), or an improvement.
	Pass Outcome = "pass"
	// Regressed: a gating metric significantly worse, beyond its threshold.
	Regressed Outcome = "regression"
	// Improved: a gating metric significantly better, beyond its threshold.
	Improved Outcome = "improvement"
	// Refused: a gating metric the gate will not judge: too noisy for its
	// threshold, too few runs for the test, or present on one side only.
	Refused Outcome = "refused"
	// Info: a metric that does not gate; its verdict is for reading only.
	Info Outcome = "info"
)

// Status is the overall outcome of a comparison.
type Status string

const (
	StatusPass       Status = "pass"
	StatusRegression Status = "regression"
	StatusError      Status = "error"
)

// Exit codes, as git bisect run reads them.
const (
	ExitPass       = 0
	ExitRegression = 1
	ExitError      = 2
	// ExitSkip is git bisect run's "cannot test this commit".
	ExitSkip = 125
)

// noisePower is the power the noise guard asks of a comparison: the chance
// that a change of exactly the threshold comes out significant.
const noisePower = 0.8

// MetricVerdict is one metric of one scenario.
type MetricVerdict struct {
	results.Delta
	Gate         bool    `json:"gate"`
	ThresholdPct float64 `json:"threshold_pct"`
	Alpha        float64 `json:"alpha"`
	// CVBasePct and CVNewPct are the coefficients of variation of the
	// metric over each set's runs (same-build repeats), in percent.
	CVBasePct float64 `json:"cv_base_pct"`
	CVNewPct  float64 `json:"cv_new_pct"`
	// DetectablePct is the smallest change these runs can be expected to
	// detect at Alpha with 80% power, given their spread; the noise guard
	// refuses a gating verdict when it exceeds ThresholdPct.
	DetectablePct float64 `json:"detectable_pct"`
	// RepeatsNeeded is how many runs per side would bring DetectablePct
	// within ThresholdPct (and let the U test reach Alpha).
	RepeatsNeeded int     `json:"repeats_needed"`
	Outcome       Outcome `json:"outcome"`
	// Reason explains the outcome in one line.
	Reason string `json:"reason"`
	// noisy marks a gating metric whose DetectablePct exceeds its
	// threshold.
	noisy bool
}

// Name is the metric's stable name: "ratio/origin-write/p50".
func (v MetricVerdict) Name() string {
	return fmt.Sprintf("%s/%s/%s", v.Group, v.Class, v.Metric)
}

// ScenarioReport is the comparison of one scenario.
type ScenarioReport struct {
	Name     string          `json:"name"`
	BaseRuns int             `json:"base_runs"`
	NewRuns  int             `json:"new_runs"`
	Metrics  []MetricVerdict `json:"metrics"`
	Warnings []string        `json:"warnings,omitempty"`
	// Error says why the scenario could not be compared.
	Error string `json:"error,omitempty"`
}

// SetInfo identifies one side of a comparison.
type SetInfo struct {
	Source    string      `json:"source"`
	Commit    string      `json:"commit"`
	SuiteHash string      `json:"suite_hash"`
	Started   time.Time   `json:"started"`
	Env       results.Env `json:"env"`
}

// Report is the outcome of Compare.
type Report struct {
	Suite     string           `json:"suite"`
	Base      SetInfo          `json:"base"`
	New       SetInfo          `json:"new"`
	Policy    Policy           `json:"policy"`
	Scenarios []ScenarioReport `json:"scenarios"`
	Status    Status           `json:"status"`
	// Summary is the verdict in one line.
	Summary      string   `json:"summary"`
	Gating       int      `json:"gating_metrics"`
	Regressions  int      `json:"regressions"`
	Improvements int      `json:"improvements"`
	Refused      int      `json:"refused"`
	Warnings     []string `json:"warnings,omitempty"`
	// Errors are the reasons for StatusError.
	Errors []string `json:"errors,omitempty"`
}

// ExitCode maps the status to 0, 1 or 2; with bisect, 2 becomes 125 (git
// bisect run's "skip"), since a commit that could not be measured is
// neither good nor bad.
func (r *Report) ExitCode(bisect bool) int {
	switch r.Status {
	case StatusPass:
		return ExitPass
	case StatusRegression:
		return ExitRegression
	}
	if bisect {
		return ExitSkip
	}
	return ExitError
}

// CompareOptions configures Compare.
type CompareOptions struct {
	// Policy, when set, replaces the policy stored in the new set's
	// manifest.
	Policy *Policy
}

// Compare judges new against base, scenario by scenario and metric by
// metric. It returns an error (and no report) when the two sets cannot be
// compared at all: an incomplete set, a suite whose scenarios differ, a run
// present in both. Problems within a scenario (no results on a side) and a
// comparison with no gating metric judged give a report with StatusError:
// nothing is ever passed for want of evidence.
func Compare(base, newSet *Set, opts CompareOptions) (*Report, error) {
	for _, s := range []*Set{base, newSet} {
		if !s.Manifest.Complete {
			problem := s.Manifest.Problem
			if problem == "" {
				problem = "the suite did not finish"
			}
			return nil, fmt.Errorf("%w: %s is incomplete: %s", ErrInput, s.Source, problem)
		}
	}
	if err := checkSameSuite(base, newSet); err != nil {
		return nil, err
	}
	if err := checkDisjoint(base, newSet); err != nil {
		return nil, err
	}
	policy := newSet.Manifest.Suite.Policy
	if opts.Policy != nil {
		policy = *opts.Policy
	}
	rep := &Report{Suite: newSet.Manifest.Suite.Name, Base: setInfo(base), New: setInfo(newSet), Policy: policy}
	if base.Manifest.SuiteHash != newSet.Manifest.SuiteHash {
		rep.Warnings = append(rep.Warnings, "the suites' settings differ (repeats, order, seed or policy); judged with the new suite's policy")
	}
	if base.Manifest.Env.KernelRelease != newSet.Manifest.Env.KernelRelease {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("kernels differ: base %s, new %s", base.Manifest.Env.KernelRelease, newSet.Manifest.Env.KernelRelease))
	}
	if base.Manifest.Env.CPUModel != newSet.Manifest.Env.CPUModel {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("CPU models differ: base %q, new %q", base.Manifest.Env.CPUModel, newSet.Manifest.Env.CPUModel))
	}
	for _, sc := range newSet.Manifest.Suite.Scenarios {
		rep.Scenarios = append(rep.Scenarios, compareScenario(sc.Name, base, newSet, policy))
	}
	rep.finish()
	return rep, nil
}

func setInfo(s *Set) SetInfo {
	return SetInfo{Source: s.Source, Commit: s.Manifest.Commit, SuiteHash: s.Manifest.SuiteHash, Started: s.Manifest.Started, Env: s.Manifest.Env}
}

// checkSameSuite refuses sets whose scenarios differ: a comparison of
// different workloads measures the change of workload.
func checkSameSuite(base, newSet *Set) error {
	hashes := func(s *Set) map[string]string {
		m := map[string]string{}
		for _, sc := range s.Manifest.Suite.Scenarios {
			m[sc.Name] = sc.Hash
		}
		return m
	}
	b, n := hashes(base), hashes(newSet)
	var problems []string
	for _, sc := range newSet.Manifest.Suite.Scenarios {
		switch h, ok := b[sc.Name]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("scenario %s is only in new", sc.Name))
		case h != sc.Hash:
			problems = append(problems, fmt.Sprintf("scenario %s changed between base and new (hash %.12s vs %.12s)", sc.Name, h, sc.Hash))
		}
	}
	for _, sc := range base.Manifest.Suite.Scenarios {
		if _, ok := n[sc.Name]; !ok {
			problems = append(problems, fmt.Sprintf("scenario %s is only in base", sc.Name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s (record a new baseline with the changed suite: snapring ci baseline update)", ErrMismatch, strings.Join(problems, "; "))
	}
	return nil
}

// checkDisjoint refuses a run that is in both sets (a directory copied as
// its own baseline): it would make the sides agree by construction.
func checkDisjoint(base, newSet *Set) error {
	type runID struct {
		start int64
		index int
	}
	seen := map[runID]string{}
	for name, rs := range base.Results {
		for _, r := range rs {
			seen[runID{r.Start.UnixNano(), r.RunIndex}] = name
		}
	}
	for name, rs := range newSet.Results {
		for _, r := range rs {
			if _, dup := seen[runID{r.Start.UnixNano(), r.RunIndex}]; dup {
				return fmt.Errorf("%w: run %d of %s (start %v) is in both base and new: the same runs compared with themselves", ErrInput, r.RunIndex, name, r.Start)
			}
		}
	}
	return nil
}

// compareRuns is the one call into results.Compare: the statistics (medians,
// confidence intervals, Mann-Whitney U p-values) are that package's.
func compareRuns(base, newRuns []*results.Result, alpha float64) results.Comparison {
	return results.Compare(base, newRuns, results.CompareOptions{Alpha: alpha, Absolute: true})
}

func compareScenario(name string, base, newSet *Set, policy Policy) ScenarioReport {
	b, n := base.Results[name], newSet.Results[name]
	sr := ScenarioReport{Name: name, BaseRuns: len(b), NewRuns: len(n)}
	if failed := failures(base.Manifest, name); failed > 0 {
		sr.Warnings = append(sr.Warnings, fmt.Sprintf("%d base runs failed", failed))
	}
	if failed := failures(newSet.Manifest, name); failed > 0 {
		sr.Warnings = append(sr.Warnings, fmt.Sprintf("%d new runs failed", failed))
	}
	switch {
	case len(b) == 0 && len(n) == 0:
		sr.Error = "no results on either side: every run failed"
		return sr
	case len(b) == 0:
		sr.Error = "no base results: every base run failed"
		return sr
	case len(n) == 0:
		sr.Error = "no new results: every new run failed (" + firstScenarioError(newSet.Manifest, name) + ")"
		return sr
	}
	c := compareRuns(b, n, policy.maxAlpha())
	sr.Warnings = append(sr.Warnings, c.Warnings...)
	for _, d := range c.Deltas {
		sr.Metrics = append(sr.Metrics, judge(d, policy.For(d.Group, d.Class, d.Metric)))
	}
	benjaminiHochberg(sr.Metrics)
	return sr
}

// maxAlpha is the largest alpha of the policy: results.Compare computes a
// p-value only where the runs can reach its alpha, and the gate wants one
// wherever any rule could use it.
func (p Policy) maxAlpha() float64 {
	a := p.Alpha
	for _, r := range p.Rules {
		a = max(a, r.Alpha)
	}
	return a
}

func failures(m *Manifest, name string) int {
	n := 0
	for _, r := range m.Runs {
		if r.Scenario == name && r.Error != "" {
			n++
		}
	}
	return n
}

func firstScenarioError(m *Manifest, name string) string {
	for _, r := range m.Runs {
		if r.Scenario == name && r.Error != "" {
			return "first error: " + r.Error
		}
	}
	return "no run recorded"
}

// judge applies a metric's policy and the noise guard to one delta. Gating
// metrics that pass the guard are left for benjaminiHochberg to decide.
func judge(d results.Delta, mp MetricPolicy) MetricVerdict {
	v := MetricVerdict{Delta: d, Gate: mp.Gate, ThresholdPct: mp.ThresholdPct, Alpha: mp.Alpha}
	v.CVBasePct, v.CVNewPct = cvPct(d.Base.Values), cvPct(d.New.Values)
	v.DetectablePct = detectablePct(v.CVBasePct, v.CVNewPct, d.Base.N, d.New.N, mp.Alpha)
	v.RepeatsNeeded = repeatsNeeded(v.CVBasePct, v.CVNewPct, mp.ThresholdPct, mp.Alpha)
	if !mp.Gate {
		v.Outcome = Info
		v.Reason = "informational"
		if d.P != nil && *d.P < mp.Alpha && math.Abs(d.ChangePct) > mp.ThresholdPct {
			v.Reason = fmt.Sprintf("informational; would be a %s", direction(d))
		}
		return v
	}
	switch {
	case d.Base.N == 0 || d.New.N == 0:
		v.Outcome, v.Reason = Refused, d.Note+": nothing to compare it with"
	case d.P == nil:
		v.Outcome = Refused
		v.Reason = fmt.Sprintf("%d+%d runs are too few for the U test to reach p<%v; need %d per side", d.Base.N, d.New.N, mp.Alpha, v.RepeatsNeeded)
	default:
		// benjaminiHochberg decides, and refuses a pass from runs too
		// noisy to have seen a change of the threshold.
		v.Outcome = Pass
		v.noisy = v.DetectablePct > mp.ThresholdPct
	}
	return v
}

// noiseReason explains a refused pass.
func (v MetricVerdict) noiseReason() string {
	return fmt.Sprintf("too noisy to pass: spread (CV) %.1f%% base, %.1f%% new; %d+%d runs detect changes of %.0f%% or more, the threshold is %g%%; need %d runs per side",
		v.CVBasePct, v.CVNewPct, v.Base.N, v.New.N, v.DetectablePct, v.ThresholdPct, v.RepeatsNeeded)
}

func direction(d results.Delta) string {
	worse := (d.ChangePct > 0) == isLatency(d.Metric)
	if worse {
		return "regression"
	}
	return "improvement"
}

// benjaminiHochberg decides the gating metrics that the guard let through:
// per alpha, the family of their p-values under the Benjamini-Hochberg
// procedure (as results.Compare does for its own verdicts), so that a dozen
// metrics tested at once do not make a false alarm likely. Metrics with
// identical values on both sides (a class all of whose operations fall in
// one subclass) are one test.
func benjaminiHochberg(ms []MetricVerdict) {
	families := map[float64][]int{}
	dupOf := map[int]int{}
	for i := range ms {
		m := &ms[i]
		if !m.Gate || m.Outcome != Pass {
			continue
		}
		dup := false
		for _, j := range families[m.Alpha] {
			if ms[j].Group == m.Group && slices.Equal(ms[j].Base.Values, m.Base.Values) && slices.Equal(ms[j].New.Values, m.New.Values) {
				dupOf[i], dup = j, true
				break
			}
		}
		if !dup {
			families[m.Alpha] = append(families[m.Alpha], i)
		}
	}
	for alpha, family := range families {
		slices.SortStableFunc(family, func(a, b int) int { return cmp.Compare(*ms[a].P, *ms[b].P) })
		k := 0
		for rank, i := range family {
			if *ms[i].P <= float64(rank+1)/float64(len(family))*alpha {
				k = rank + 1
			}
		}
		for rank, i := range family {
			decide(&ms[i], rank < k, len(family))
		}
		// The noise guard: a significant change is trusted at any spread
		// (the U test keeps its alpha whatever the spread), but runs too
		// spread to see a change of the threshold cannot say there is none.
		for _, i := range family {
			if m := &ms[i]; m.noisy && m.Outcome == Pass {
				m.Outcome, m.Reason = Refused, m.noiseReason()
			}
		}
	}
	for i, j := range dupOf {
		ms[i].Outcome, ms[i].Reason = ms[j].Outcome, ms[j].Reason+" (same values as "+ms[j].Name()+")"
	}
}

func decide(m *MetricVerdict, significant bool, family int) {
	p := *m.P
	beyond := math.Abs(m.ChangePct) > m.ThresholdPct
	switch {
	case significant && beyond:
		m.Outcome = Improved
		if direction(m.Delta) == "regression" {
			m.Outcome = Regressed
		}
		m.Reason = fmt.Sprintf("%+.1f%% at p=%.2g (beyond %g%%, significant among %d at alpha %v)", m.ChangePct, p, m.ThresholdPct, family, m.Alpha)
	case significant:
		m.Outcome = Pass
		m.Reason = fmt.Sprintf("%+.1f%% at p=%.2g: significant but within %g%%", m.ChangePct, p, m.ThresholdPct)
	default:
		m.Outcome = Pass
		m.Reason = fmt.Sprintf("%+.1f%% at p=%.2g: not significant among %d at alpha %v", m.ChangePct, p, family, m.Alpha)
	}
}

// finish counts the outcomes and sets the status: a regression anywhere is a
// regression; otherwise any scenario error, refused gating metric or the
// absence of any judged gating metric is an error.
func (r *Report) finish() {
	judged := 0
	for _, sr := range r.Scenarios {
		if sr.Error != "" {
			r.Errors = append(r.Errors, fmt.Sprintf("%s: %s", sr.Name, sr.Error))
		}
		for _, m := range sr.Metrics {
			if !m.Gate {
				continue
			}
			r.Gating++
			switch m.Outcome {
			case Regressed:
				r.Regressions++
			case Improved:
				r.Improvements++
			case Refused:
				r.Refused++
			}
			if m.Outcome != Refused {
				judged++
			}
		}
	}
	if r.Refused > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d gating metrics refused by the noise guard or for too few runs (see their reasons)", r.Refused))
	}
	if judged == 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%v: no gating metric was judged, so there is no verdict", ErrNothingCompared))
	}
	switch {
	case r.Regressions > 0:
		r.Status = StatusRegression
		r.Summary = fmt.Sprintf("REGRESSION: %d of %d gating metrics regressed", r.Regressions, r.Gating)
	case len(r.Errors) > 0:
		r.Status = StatusError
		r.Summary = fmt.Sprintf("NO VERDICT: %s", r.Errors[0])
	default:
		r.Status = StatusPass
		r.Summary = fmt.Sprintf("no regression: %d gating metrics judged, %d improved", judged, r.Improvements)
	}
}

// cvPct is the coefficient of variation of vs in percent: the sample
// standard deviation over the mean. Zero for fewer than two values.
func cvPct(vs []float64) float64 {
	if len(vs) < 2 {
		return 0
	}
	var sum float64
	for _, v := range vs {
		sum += v
	}
	mean := sum / float64(len(vs))
	if mean == 0 {
		return 0
	}
	var ss float64
	for _, v := range vs {
		ss += (v - mean) * (v - mean)
	}
	return math.Sqrt(ss/float64(len(vs)-1)) / math.Abs(mean) * 100
}

// zSum is z(1-alpha/2) + z(power): the distance, in standard errors, that a
// two-sided test at alpha needs to see a change with the given power.
func zSum(alpha float64) float64 {
	z := func(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
	return z(1-alpha/2) + z(noisePower)
}

// uTestVariance is the Mann-Whitney U test's sample-size penalty against the
// t test on normal data (asymptotic relative efficiency 3/π).
const uTestVariance = math.Pi / 3

// detectablePct is the smallest relative change in percent that nb+nn runs
// with these spreads detect at alpha with noisePower (the normal
// approximation, widened for the U test).
func detectablePct(cvBase, cvNew float64, nb, nn int, alpha float64) float64 {
	if nb < 2 || nn < 2 {
		return 0 // no spread to go by; the gate refuses such runs anyway
	}
	se := math.Sqrt(uTestVariance * (cvBase*cvBase/float64(nb) + cvNew*cvNew/float64(nn)))
	return zSum(alpha) * se
}

// repeatsNeeded is the number of runs per side for which detectablePct is
// within threshold and the U test can reach alpha at all.
func repeatsNeeded(cvBase, cvNew, thresholdPct, alpha float64) int {
	n := int(math.Ceil(uTestVariance * math.Pow(zSum(alpha)/thresholdPct, 2) * (cvBase*cvBase + cvNew*cvNew)))
	return max(n, minRunsForAlpha(alpha), 2)
}

// minRunsForAlpha is the smallest n for which n+n runs that do not overlap
// give the two-sided U test p < alpha: 2/C(2n, n).
func minRunsForAlpha(alpha float64) int {
	for n := 2; n < maxRepeats; n++ {
		// C(2n, n) by the product formula, in floating point.
		c := 1.0
		for i := 1; i <= n; i++ {
			c = c * float64(n+i) / float64(i)
		}
		if 2/c < alpha {
			return n
		}
	}
	return maxRepeats
}
