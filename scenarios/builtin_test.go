package scenarios_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/scenarios"
)

func TestBuiltinNames(t *testing.T) {
	want := []string{"backup-impact", "backup-scan", "chunk-size-sweep", "cow-first-write", "default", "hot-spot", "overflow", "steady-rewrite"}
	if got := scenarios.BuiltinNames(); !slices.Equal(got, want) {
		t.Errorf("BuiltinNames() = %q, want %q", got, want)
	}
}

// TestBuiltins parses and validates every built-in scenario and holds each to
// its time budget: 30 s of workloads for one run, 60 s for a sweep, leaving
// room for prefill and destroy.
func TestBuiltins(t *testing.T) {
	const (
		maxRun   = 28 * time.Second
		maxSweep = 55 * time.Second
	)
	for _, name := range scenarios.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			s, err := scenarios.Builtin(name)
			if err != nil {
				t.Fatalf("Builtin(%q): %v", name, err)
			}
			if s.Name != name {
				t.Errorf("name key %q differs from the file name %q", s.Name, name)
			}
			if s.Description == "" {
				t.Errorf("no description")
			}
			var total time.Duration
			for _, run := range s.Expand() {
				if err := run.Validate(); err != nil {
					t.Errorf("%s: %v", run.Name, err)
				}
				if d := run.Phases.Total(); d > maxRun {
					t.Errorf("%s: workloads run %v, more than %v", run.Name, d, maxRun)
				}
				total += run.Phases.Total()
			}
			if total > maxSweep {
				t.Errorf("all runs take %v, more than %v", total, maxSweep)
			}
			checkRoundTrips(t, s)
		})
	}
}

// checkRoundTrips checks that s survives YAML (as shown) and JSON (as stored
// in results) unchanged.
func checkRoundTrips(t *testing.T, s *scenarios.Scenario) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	y, err := s.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	fromYAML, err := scenarios.Parse("shown.yaml", y)
	if err != nil {
		t.Fatalf("Parse of YAML output: %v\n%s", err, y)
	}
	if got, _ := json.Marshal(fromYAML); string(got) != string(want) {
		t.Errorf("YAML round trip changed the scenario:\n got: %s\nwant: %s", got, want)
	}
	var fromJSON scenarios.Scenario
	if err := json.Unmarshal(want, &fromJSON); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if err := fromJSON.Validate(); err != nil {
		t.Errorf("Validate after JSON round trip: %v", err)
	}
	if got, _ := json.Marshal(&fromJSON); string(got) != string(want) {
		t.Errorf("JSON round trip changed the scenario:\n got: %s\nwant: %s", got, want)
	}
}

func TestBuiltinUnknown(t *testing.T) {
	_, err := scenarios.Builtin("nope")
	want := `scenarios: no such built-in scenario "nope" (have backup-impact, backup-scan, chunk-size-sweep, cow-first-write, default, hot-spot, overflow, steady-rewrite)`
	if err == nil || err.Error() != want {
		t.Errorf("Builtin(nope) error = %v, want %s", err, want)
	}
	if !errors.Is(err, scenarios.ErrNoBuiltin) {
		t.Errorf("error does not wrap ErrNoBuiltin")
	}
	if _, err := scenarios.BuiltinSource("../decode.go"); !errors.Is(err, scenarios.ErrNoBuiltin) {
		t.Errorf("BuiltinSource(../decode.go) error = %v, want ErrNoBuiltin", err)
	}
}

func TestBuiltinSource(t *testing.T) {
	src, err := scenarios.BuiltinSource("default")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "# ") || !strings.Contains(string(src), "name: default\n") {
		t.Errorf("BuiltinSource(default) is not the commented file:\n%s", src)
	}
}

// TestDefaultScenario pins what `make run` does.
func TestDefaultScenario(t *testing.T) {
	s, err := scenarios.Builtin("default")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Workloads) != 2 {
		t.Fatalf("%d workloads, want 2", len(s.Workloads))
	}
	w, r := s.Workloads[0], s.Workloads[1]
	if w.Kind != scenarios.OriginWrite || w.Pattern != scenarios.PatternRandom || w.BlockSize != 4*scenarios.KiB || w.QueueDepth != 16 {
		t.Errorf("writer = %+v", w)
	}
	// Open loop with a hot set, so that copy-on-write goes on through the
	// measured part instead of ending in the warm-up.
	if w.Rate == 0 || w.Distribution != scenarios.DistributionHotspot {
		t.Errorf("writer is not an open-loop hot-set load: %+v", w)
	}
	if r.Kind != scenarios.ImageRead || r.Pattern != scenarios.PatternSequential || r.BlockSize != scenarios.MiB {
		t.Errorf("reader = %+v", r)
	}
	if s.Devices[0].Backing.FS != scenarios.FSTmpfs || s.DiffStorage.FS != scenarios.FSTmpfs {
		t.Errorf("default does not run on tmpfs: %+v, %+v", s.Devices[0].Backing, s.DiffStorage)
	}
}
