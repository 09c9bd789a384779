package ci

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	steady = synthSpec{engineMedianNs: 40e3, baselineMedianNs: 20e3, jitter: 0.03}
	slower = synthSpec{engineMedianNs: 80e3, baselineMedianNs: 20e3, jitter: 0.03}
	noisy  = synthSpec{engineMedianNs: 40e3, baselineMedianNs: 20e3, jitter: 0.4}
)

func findMetric(t *testing.T, rep *Report, name string) MetricVerdict {
	t.Helper()
	for _, sr := range rep.Scenarios {
		for _, m := range sr.Metrics {
			if m.Name() == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s in the report", name)
	return MetricVerdict{}
}

func TestCompareFlagsRegression(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	rep, err := Compare(synthSet(t, s, "base", 1, 10, steady), synthSet(t, s, "new", 2, 10, slower), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := findMetric(t, rep, "ratio/origin-write/p50")
	if rep.Status != StatusRegression || rep.ExitCode(false) != 1 || rep.ExitCode(true) != 1 || m.Outcome != Regressed {
		t.Fatalf("status %s, metric %s (%s); want a regression, exit 1", rep.Status, m.Outcome, m.Reason)
	}
	if m.P == nil || *m.P >= 0.001 || m.ChangePct < 80 || m.ChangePct > 120 {
		t.Errorf("p %v, change %.1f%%; want p<0.001 and about +100%%", m.P, m.ChangePct)
	}
	// Only the gating metric counts; the engine's own p50 doubled too but
	// is informational.
	if rep.Gating != 1 || rep.Regressions != 1 {
		t.Errorf("gating %d, regressions %d; want 1 and 1", rep.Gating, rep.Regressions)
	}
	if e := findMetric(t, rep, "engine/origin-write/p50"); e.Outcome != Info || !strings.Contains(e.Reason, "would be a regression") {
		t.Errorf("engine p50: %s (%s); want informational, noting the regression", e.Outcome, e.Reason)
	}
}

func TestCompareSameBuildPasses(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	for seed := uint64(1); seed <= 5; seed++ {
		rep, err := Compare(synthSet(t, s, "base", 2*seed, 10, steady), synthSet(t, s, "new", 2*seed+1, 10, steady), CompareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != StatusPass || rep.ExitCode(true) != 0 {
			m := findMetric(t, rep, "ratio/origin-write/p50")
			t.Errorf("seed %d: %s, %s (%s); want a pass", seed, rep.Status, m.Outcome, m.Reason)
		}
	}
}

func TestNoiseGuard(t *testing.T) {
	s := testSuite(t, strings.Replace(testSuiteYAML, "threshold: 50%", "threshold: 10%", 1))
	rep, err := Compare(synthSet(t, s, "base", 1, 10, noisy), synthSet(t, s, "new", 2, 10, noisy), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := findMetric(t, rep, "ratio/origin-write/p50")
	if m.Outcome != Refused || !strings.Contains(m.Reason, "too noisy") || m.RepeatsNeeded <= 10 || m.CVBasePct < 10 {
		t.Fatalf("%s (%s), CV %.1f%%, repeats needed %d; want refused as too noisy, needing more than 10 runs", m.Outcome, m.Reason, m.CVBasePct, m.RepeatsNeeded)
	}
	if rep.Status != StatusError || rep.ExitCode(false) != 2 || rep.ExitCode(true) != 125 {
		t.Errorf("status %s, exits %d/%d; want error, 2 and 125", rep.Status, rep.ExitCode(false), rep.ExitCode(true))
	}
	// The guard asks for a number of runs that does bring the detectable
	// change within the threshold.
	if d := detectablePct(m.CVBasePct, m.CVNewPct, m.RepeatsNeeded, m.RepeatsNeeded, m.Alpha); d > m.ThresholdPct {
		t.Errorf("%d runs detect %.1f%%, more than the threshold %g%%", m.RepeatsNeeded, d, m.ThresholdPct)
	}
	// A change far beyond the noise is still a regression: the U test keeps
	// its alpha whatever the spread; what noise takes away is a pass.
	huge := noisy
	huge.engineMedianNs *= 10
	rep, err = Compare(synthSet(t, s, "base", 1, 10, noisy), synthSet(t, s, "new", 2, 10, huge), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusRegression {
		t.Errorf("a tenfold slowdown on noisy runs: %s; want a regression", rep.Status)
	}
}

func TestTooFewRunsRefused(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	rep, err := Compare(synthSet(t, s, "base", 1, 3, steady), synthSet(t, s, "new", 2, 3, slower), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := findMetric(t, rep, "ratio/origin-write/p50")
	if m.Outcome != Refused || !strings.Contains(m.Reason, "too few") || rep.ExitCode(false) != 2 {
		t.Errorf("3+3 runs at alpha 0.001: %s (%s), exit %d; want refused, exit 2", m.Outcome, m.Reason, rep.ExitCode(false))
	}
}

func TestNeverPassesVacuously(t *testing.T) {
	// No metric gates: nothing judged is not a pass.
	s := testSuite(t, strings.Replace(testSuiteYAML, "gate: true, threshold: 50%", "gate: false", 1))
	rep, err := Compare(synthSet(t, s, "base", 1, 10, steady), synthSet(t, s, "new", 2, 10, steady), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusError || !strings.Contains(strings.Join(rep.Errors, ";"), "nothing compared") || rep.ExitCode(true) != 125 {
		t.Errorf("no gating metric: %s %v; want an error, nothing compared, exit 125 under bisect", rep.Status, rep.Errors)
	}
	// Every new run failed.
	s = testSuite(t, testSuiteYAML)
	failed := synthSet(t, s, "new", 2, 0, steady)
	for i := range 10 {
		failed.Manifest.Runs = append(failed.Manifest.Runs, RunRecord{Scenario: "tiny", Repeat: i, Error: "bench: run: device d0: boom"})
	}
	rep, err = Compare(synthSet(t, s, "base", 1, 10, steady), failed, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusError || rep.ExitCode(false) != 2 || rep.ExitCode(true) != 125 || !strings.Contains(rep.Errors[0], "every new run failed") {
		t.Errorf("every run failed: %s %v; want error, exit 2/125", rep.Status, rep.Errors)
	}
	var junit bytes.Buffer
	rep.WriteJUnit(&junit)
	if !strings.Contains(junit.String(), `type="no-results"`) {
		t.Errorf("JUnit does not report the failed runs:\n%s", junit.String())
	}
}

func TestCompareRefusesMismatchedAndDuplicateSets(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	base := synthSet(t, s, "base", 1, 10, steady)
	changed := testSuite(t, testSuiteYAML)
	changed.Scenarios[0].Hash = "0123456789abcdef"
	if _, err := Compare(base, synthSet(t, changed, "new", 2, 10, steady), CompareOptions{}); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "tiny changed between base and new") {
		t.Errorf("changed scenario: %v; want ErrMismatch naming it", err)
	}
	renamed := testSuite(t, testSuiteYAML)
	renamed.Scenarios[0].Name = "other"
	if _, err := Compare(base, synthSet(t, renamed, "new", 2, 10, steady), CompareOptions{}); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "only in base") {
		t.Errorf("renamed scenario: %v; want ErrMismatch", err)
	}
	if _, err := Compare(base, base, CompareOptions{}); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "in both base and new") {
		t.Errorf("a set against itself: %v; want ErrInput", err)
	}
	incomplete := synthSet(t, s, "new", 2, 10, steady)
	incomplete.Manifest.Complete, incomplete.Manifest.Problem = false, "run 3 of tiny hung: not done after 2m0s"
	if _, err := Compare(base, incomplete, CompareOptions{}); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "hung") {
		t.Errorf("incomplete set: %v; want ErrInput saying why", err)
	}
}

// goldenReport is a fixed comparison: a regression, with one more
// scenario's worth of informational metrics.
func goldenReport(t *testing.T) *Report {
	s := testSuite(t, testSuiteYAML)
	rep, err := Compare(synthSet(t, s, "base", 1, 10, steady), synthSet(t, s, "new", 2, 10, slower), CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := goldenReport(t).WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.md.golden")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Markdown differs from %s (go test ./ci -run Golden -update to accept):\n%s", golden, buf.String())
	}
	// It renders: a heading, tables whose rows have the header's columns.
	lines := strings.Split(buf.String(), "\n")
	if !strings.HasPrefix(lines[0], "## ❌ snapring ci: REGRESSION") {
		t.Errorf("first line %q", lines[0])
	}
	cols := 0
	for i, l := range lines {
		if !strings.HasPrefix(l, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("line %d has %d cells, the table %d: %s", i+1, n-1, cols-1, l)
		}
	}
}

func TestJUnitValidatesAgainstSchema(t *testing.T) {
	xsd, err := os.ReadFile(filepath.Join("testdata", "junit.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := loadSchema(xsd)
	if err != nil {
		t.Fatal(err)
	}
	s := testSuite(t, testSuiteYAML)
	noisySuite := testSuite(t, strings.Replace(testSuiteYAML, "threshold: 50%", "threshold: 10%", 1))
	reports := map[string]*Report{"regression": goldenReport(t)}
	reports["pass"], _ = Compare(synthSet(t, s, "base", 1, 10, steady), synthSet(t, s, "new", 2, 10, steady), CompareOptions{})
	reports["refused"], _ = Compare(synthSet(t, noisySuite, "base", 1, 10, noisy), synthSet(t, noisySuite, "new", 2, 10, noisy), CompareOptions{})
	for name, rep := range reports {
		var buf bytes.Buffer
		if err := rep.WriteJUnit(&buf); err != nil {
			t.Fatal(err)
		}
		if err := sch.validate(buf.Bytes()); err != nil {
			t.Errorf("%s: JUnit does not validate: %v\n%s", name, err, buf.String())
		}
		xmllint(t, name, buf.Bytes())
	}
	var buf bytes.Buffer
	reports["regression"].WriteJUnit(&buf)
	out := buf.String()
	if !strings.Contains(out, `<testcase name="ratio/origin-write/p50" classname="snapring.ci.unit.tiny" time="0">`) ||
		!strings.Contains(out, `<failure message="regression +`) || !strings.Contains(out, `p=`) {
		t.Errorf("the regression is not a failure carrying change and p-value:\n%s", out)
	}
	if !strings.Contains(reports["refused"].mustJUnit(t), `type="refused"`) {
		t.Errorf("a refused metric is not an error")
	}
	// The validator itself must be able to fail.
	for _, bad := range []string{
		strings.Replace(out, ` hostname="ci-host"`, "", 1),
		strings.Replace(out, `<system-err></system-err>`, "", 1),
		strings.Replace(out, `timestamp="2026-12-01T10:00:00"`, `timestamp="2026-12-01 10:00"`, 1),
		strings.Replace(out, `type="regression"`, "", 1),
		strings.Replace(out, `tests="`, `tests="x`, 1),
	} {
		if bad == out {
			t.Fatal("mutation did not apply")
		}
		if sch.validate([]byte(bad)) == nil {
			t.Errorf("an invalid document validates")
		}
	}
}

func (r *Report) mustJUnit(t *testing.T) string {
	var buf bytes.Buffer
	if err := r.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// xmllint validates with libxml2 too when it is installed (make deps-ci).
func xmllint(t *testing.T, name string, doc []byte) {
	path, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI_REQUIRE_XMLLINT") != "" {
			t.Fatal("xmllint not installed (make deps-ci)")
		}
		return
	}
	f := filepath.Join(t.TempDir(), name+".xml")
	os.WriteFile(f, doc, 0o644)
	if out, err := exec.Command(path, "--noout", "--schema", filepath.Join("testdata", "junit.xsd"), f).CombinedOutput(); err != nil {
		t.Errorf("%s: xmllint: %v\n%s", name, err, out)
	}
}

func TestBenchmarkActionFormat(t *testing.T) {
	rep := goldenReport(t)
	smaller, bigger := rep.BenchmarkAction()
	for _, c := range []struct {
		name    string
		entries []BenchmarkActionEntry
		units   []string
	}{{"smaller", smaller, []string{"ns", "engine/baseline"}}, {"bigger", bigger, []string{"ops/s", "MB/s", "engine/baseline"}}} {
		var buf bytes.Buffer
		if err := writeJSONList(&buf, c.entries); err != nil {
			t.Fatal(err)
		}
		// Read it as the action does: a list of objects with a string name
		// and unit, a numeric value, optional string range and extra.
		var got []map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("%s: no entries", c.name)
		}
		names := map[string]bool{}
		for _, e := range got {
			name, ok1 := e["name"].(string)
			unit, ok2 := e["unit"].(string)
			value, ok3 := e["value"].(float64)
			if !ok1 || !ok2 || !ok3 || name == "" || value <= 0 || !strings.Contains(strings.Join(c.units, ","), unit) {
				t.Errorf("%s: bad entry %v", c.name, e)
			}
			for _, k := range []string{"range", "extra"} {
				if v, ok := e[k]; ok {
					if _, isStr := v.(string); !isStr {
						t.Errorf("%s: %s is not a string: %v", c.name, k, e)
					}
				}
			}
			if names[name] {
				t.Errorf("%s: name %q twice (the action keys its history by name)", c.name, name)
			}
			names[name] = true
		}
		if c.name == "smaller" && !names["tiny ratio/origin-write/p50"] || c.name == "bigger" && !names["tiny engine/origin-write/iops"] {
			t.Errorf("%s: missing the expected metric: %v", c.name, names)
		}
	}
}
