package ci

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/results"
)

// synthetic runs for the unit tests: seeded, so that reports are golden.

type synthSpec struct {
	engineMedianNs, baselineMedianNs float64
	// jitter is the standard deviation of a per-run, per-side factor on
	// the latencies, as real repeats differ from one another.
	jitter float64
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func synthRun(rng *rand.Rand, sc json.RawMessage, start time.Time, index int, spec synthSpec) *results.Result {
	side := func(median float64, classes ...results.Class) results.Side {
		factor := math.Max(0.2, 1+spec.jitter*rng.NormFloat64())
		h := results.NewHistogram()
		for range 2000 {
			h.RecordValue(int64(median * factor * math.Exp(0.3*rng.NormFloat64())))
		}
		s := results.Side{Start: start, Duration: time.Second, Classes: map[results.Class]results.ClassResult{}}
		for _, c := range classes {
			s.Classes[c] = results.SummaryFromHistogram(h, 0, 2000*4096, time.Second)
		}
		return s
	}
	r := &results.Result{Schema: results.SchemaV1, Scenario: sc, LoadMode: results.ClosedLoop, RunIndex: index, Start: start, Duration: 2 * time.Second,
		Env: results.Env{Hostname: "ci-host", KernelRelease: "6.1.0-test", CPUModel: "Test CPU", CPUs: 2, UsableCPUs: 2, GoVersion: "go1.26", Commit: "abc1234", BackingFS: "tmpfs"}}
	r.Engine = side(spec.engineMedianNs, results.OriginWrite, results.OriginWriteCopied)
	b := side(spec.baselineMedianNs, results.OriginWrite)
	r.Baseline = &b
	results.ComputeRatios(r)
	return r
}

// testSuite is a one-scenario suite gating on the origin-write p50 ratio.
const testSuiteYAML = `name: unit
repeats: 10
alpha: 0.001
scenarios:
  - file: tiny.yaml
metrics:
  - {group: ratio, class: origin-write, metric: p50, gate: true, threshold: 50%}
  - {gate: false}
`

func testSuite(t *testing.T, yaml string) *Suite {
	t.Helper()
	s, err := ParseSuite(filepath.Join("testdata", "unit.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// synthSet makes an in-memory set of n runs per scenario of s.
func synthSet(t *testing.T, s *Suite, source string, seed uint64, n int, spec synthSpec) *Set {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	set := &Set{Source: source, Results: map[string][]*results.Result{},
		Manifest: &Manifest{Schema: ManifestSchema, Suite: *s, SuiteHash: s.Hash(), Commit: source + "-commit", Started: t0, Finished: t0.Add(time.Minute), Complete: true}}
	set.Manifest.Env = results.Env{Hostname: "ci-host", KernelRelease: "6.1.0-test", CPUModel: "Test CPU"}
	for _, sc := range s.Scenarios {
		raw, err := json.Marshal(sc.Scenario)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			start := t0.Add(time.Duration(seed)*time.Hour + time.Duration(i)*time.Second)
			r := synthRun(rng, raw, start, i, spec)
			set.Results[sc.Name] = append(set.Results[sc.Name], r)
			set.Manifest.Runs = append(set.Manifest.Runs, RunRecord{Scenario: sc.Name, Repeat: i, File: "results/" + safeName(sc.Name) + "-r" + itoa2(i) + ".json", Duration: 2 * time.Second})
		}
	}
	return set
}

func itoa2(i int) string {
	return string([]byte{byte('0' + i/10), byte('0' + i%10)})
}

// writeSet stores an in-memory set as `ci run` would and returns its
// directory.
func writeSet(t *testing.T, dir string, set *Set) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		t.Fatal(err)
	}
	k := map[string]int{}
	for _, rec := range set.Manifest.Runs {
		if rec.File == "" {
			continue
		}
		r := set.Results[rec.Scenario][k[rec.Scenario]]
		k[rec.Scenario]++
		if err := results.WriteFile(filepath.Join(dir, rec.File), r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := set.Manifest.encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// changedSuite is testSuiteYAML with its scenario changed (a longer run)
// under the same name: a suite edited between base and new.
func changedSuite(t *testing.T) *Suite {
	t.Helper()
	dir := t.TempDir()
	tiny, err := os.ReadFile(filepath.Join("testdata", "tiny.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tiny.yaml"), []byte(strings.Replace(string(tiny), "run: 600ms", "run: 700ms", 1)), 0o644)
	s, err := ParseSuite(filepath.Join(dir, "unit.yaml"), []byte(testSuiteYAML))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
