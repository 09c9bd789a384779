package ci

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapring/snapring/results"
)

func TestParseSuite(t *testing.T) {
	s, err := ParseSuite("testdata/x.yaml", []byte(`# a suite
name: pr
repeats: 4
order: sequential
alpha: 0.005
thresholds: {latency: 15%, throughput: 20}
scenarios:
  - file: tiny.yaml
    repeats: 6
  - builtin: chunk-size-sweep
metrics:
  - {group: ratio, metric: p99, gate: false}
  - {class: origin-write, metric: p50, group: engine, gate: true, threshold: 30%, alpha: 0.01}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "pr" || s.Order != Sequential || s.Policy.Alpha != 0.005 || s.Policy.LatencyThresholdPct != 15 || s.Policy.ThroughputThresholdPct != 20 {
		t.Errorf("settings: %+v", s)
	}
	// The sweep expands to one scenario per value, each with the suite's
	// repeats; the file's own repeats win.
	if len(s.Scenarios) != 5 || s.Scenarios[0].Name != "tiny" || s.Scenarios[0].Repeats != 6 || s.Scenarios[1].Repeats != 4 || s.Runs() != 6+4*4 {
		t.Errorf("scenarios: %d, runs %d", len(s.Scenarios), s.Runs())
	}
	for _, c := range []struct {
		g      results.Group
		c      results.Class
		m      results.Metric
		want   MetricPolicy
		reason string
	}{
		{results.GroupRatio, results.OriginWrite, results.MetricP50, MetricPolicy{true, 15, 0.005}, "ratios gate by default"},
		{results.GroupRatio, results.OriginWrite, results.MetricIOPS, MetricPolicy{true, 20, 0.005}, "throughput threshold"},
		{results.GroupRatio, results.ImageRead, results.MetricP99, MetricPolicy{false, 15, 0.005}, "first rule"},
		{results.GroupEngine, results.OriginWrite, results.MetricP50, MetricPolicy{true, 30, 0.01}, "second rule"},
		{results.GroupEngine, results.OriginWrite, results.MetricP99, MetricPolicy{false, 15, 0.005}, "engine informational by default"},
		{results.GroupBaseline, results.OriginWrite, results.MetricP50, MetricPolicy{false, 15, 0.005}, "baseline informational by default"},
	} {
		if got := s.Policy.For(c.g, c.c, c.m); got != c.want {
			t.Errorf("%s/%s/%s (%s): %+v, want %+v", c.g, c.c, c.m, c.reason, got, c.want)
		}
	}
	// The hash follows what runs and how it is judged, not the file's
	// layout.
	again, _ := ParseSuite("testdata/y.yaml", []byte("name: pr\nrepeats: 4\norder: sequential\nalpha: 0.005\nthresholds: {latency: 15, throughput: 20%}\nscenarios: [{file: tiny.yaml, repeats: 6}, {builtin: chunk-size-sweep}]\nmetrics: [{group: ratio, metric: p99, gate: false}, {group: engine, class: origin-write, metric: p50, gate: true, threshold: 30, alpha: 0.01}]\n"))
	if again == nil || again.Hash() != s.Hash() {
		t.Errorf("the same suite written differently hashes differently")
	}
	other, _ := ParseSuite("testdata/y.yaml", []byte("name: pr\nrepeats: 5\norder: sequential\nalpha: 0.005\nthresholds: {latency: 15, throughput: 20%}\nscenarios: [{file: tiny.yaml, repeats: 6}, {builtin: chunk-size-sweep}]\nmetrics: [{group: ratio, metric: p99, gate: false}, {group: engine, class: origin-write, metric: p50, gate: true, threshold: 30, alpha: 0.01}]\n"))
	if other == nil || other.Hash() == s.Hash() {
		t.Errorf("different repeats hash the same")
	}
}

func TestBadSuites(t *testing.T) {
	dir := t.TempDir()
	tiny, _ := os.ReadFile("testdata/tiny.yaml")
	os.WriteFile(filepath.Join(dir, "tiny.yaml"), tiny, 0o644)
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("name: b\ndevices: [{name: d, size: 4kb}]\nphases: {run: 1s}\nworkloads: [{kind: origin-write}]\n"), 0o644)
	for _, c := range []struct{ name, src, want string }{
		{"empty", "", "s.yaml:1: empty file"},
		{"not a mapping", "- a\n", "s.yaml:1: bad top level"},
		{"syntax", "name: x\nscenarios: [\n", "s.yaml:2: bad YAML: did not find"},
		{"no scenarios", "name: x\n", `s.yaml:1: missing key "scenarios"`},
		{"unknown key", "name: x\nrepeat: 3\nscenarios: [{builtin: default}]\n", `s.yaml:2: unknown key "repeat" in suite`},
		{"duplicate key", "name: x\nname: y\nscenarios: [{builtin: default}]\n", `s.yaml:2: duplicate key "name"`},
		{"repeats range", "scenarios:\n  - builtin: default\n    repeats: 0\n", "s.yaml:3: bad repeats"},
		{"repeats type", "repeats: many\nscenarios: [{builtin: default}]\n", "s.yaml:1: bad repeats"},
		{"order", "order: random\nscenarios: [{builtin: default}]\n", "s.yaml:1: bad order"},
		{"alpha", "alpha: 1.5\nscenarios: [{builtin: default}]\n", "s.yaml:1: bad alpha"},
		{"threshold", "thresholds:\n  latency: -5%\nscenarios: [{builtin: default}]\n", "s.yaml:2: bad thresholds.latency"},
		{"no builtin", "scenarios:\n  - builtin: nope\n", "s.yaml:2: scenarios[0]: scenarios: no such built-in scenario"},
		{"two sources", "scenarios:\n  - {builtin: default, file: tiny.yaml}\n", "s.yaml:2: scenarios[0]: want exactly one of builtin, file, fio"},
		{"fio", "scenarios:\n  - fio: job.fio\n", "s.yaml:2: scenarios[0]: fio jobs are not supported"},
		{"missing file", "scenarios:\n  - file: nope.yaml\n", "s.yaml:2: scenarios[0]: scenarios:"},
		{"bad scenario file", "scenarios:\n\n  - file: broken.yaml\n", "s.yaml:3: scenarios[0]: " + filepath.Join(dir, "broken.yaml") + ":2:"},
		{"scenario twice", "scenarios:\n  - file: tiny.yaml\n  - file: tiny.yaml\n", `s.yaml:3: scenarios[1]: scenario "tiny" already in the suite (line 2)`},
		{"bad group", "scenarios: [{builtin: default}]\nmetrics:\n  - {group: kernel, gate: true}\n", "s.yaml:3: bad group"},
		{"bad class", "scenarios: [{builtin: default}]\nmetrics:\n  - {class: origin-read, gate: true}\n", "s.yaml:3: bad class"},
		{"bad metric", "scenarios: [{builtin: default}]\nmetrics:\n  - {metric: p95, gate: true}\n", "s.yaml:3: bad metric"},
		{"bad gate", "scenarios: [{builtin: default}]\nmetrics:\n  - {metric: p50, gate: yes please}\n", "s.yaml:3: bad gate"},
		{"empty rule", "scenarios: [{builtin: default}]\nmetrics:\n  - {metric: p50}\n", "s.yaml:3: metrics[0] sets nothing"},
		{"two documents", "scenarios: [{builtin: default}]\n---\nname: x\n", "s.yaml:2: a second YAML document"},
	} {
		path := filepath.Join(dir, "s.yaml")
		os.WriteFile(path, []byte(c.src), 0o644)
		_, err := LoadSuite(path)
		if err == nil || !errors.Is(err, ErrSuite) || !strings.HasPrefix(err.Error(), filepath.Join(dir, c.want[:strings.Index(c.want, ":")])) ||
			!strings.Contains(err.Error(), c.want[strings.Index(c.want, ":"):]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line %q", c.name, err, c.want)
		}
	}
	if _, err := LoadSuite(filepath.Join(dir, "none.yaml")); !errors.Is(err, ErrSuite) {
		t.Errorf("missing suite file: %v", err)
	}
}

func FuzzParseSuite(f *testing.F) {
	f.Add([]byte(testSuiteYAML))
	f.Add([]byte("scenarios: [{builtin: default, repeats: 3}]\nmetrics: [{gate: false}]\n"))
	f.Add([]byte("thresholds: {latency: 10%}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSuite("testdata/f.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrSuite) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "testdata/f.yaml:") {
				t.Fatalf("error not one file:line line wrapping ErrSuite: %q", err)
			}
			return
		}
		if len(s.Scenarios) == 0 || s.Runs() > maxSuiteRuns || !(s.Policy.Alpha > 0 && s.Policy.Alpha < 1) {
			t.Fatalf("accepted an invalid suite: %+v", s)
		}
	})
}

// The suite shipped for the example workflow and make perf-ci stays valid
// and gates something.
func TestShippedSuite(t *testing.T) {
	s, err := LoadSuite(filepath.Join("suites", "pr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if mp := s.Policy.For(results.GroupRatio, results.OriginWrite, results.MetricP50); !mp.Gate || s.Runs() < 10 {
		t.Errorf("pr.yaml: %+v, %d runs", mp, s.Runs())
	}
}

func TestScheduleOrder(t *testing.T) {
	src := "repeats: 2\nscenarios:\n  - builtin: default\n  - builtin: hot-spot\n    repeats: 3\n"
	order := func(src string) string {
		s, err := ParseSuite("testdata/o.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range schedule(s) {
			got = append(got, p.sc.Name+itoa2(p.repeat))
		}
		return strings.Join(got, " ")
	}
	if got, want := order(src), "default00 hot-spot00 default01 hot-spot01 hot-spot02"; got != want {
		t.Errorf("interleaved: %s, want %s", got, want)
	}
	if got, want := order("order: sequential\n"+src), "default00 default01 hot-spot00 hot-spot01 hot-spot02"; got != want {
		t.Errorf("sequential: %s, want %s", got, want)
	}
}
