package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
)

func parse(t *testing.T, src string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

const small = `
name: small
devices:
  - name: d0
    size: 16MiB
diff_storage: {kind: tempfile, limit: 64MiB, portion: 8MiB}
engine: {chunk_minimum_shift: 16}
phases: {run: 1s}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 8}
  - {name: r, kind: image-read, pattern: sequential, block_size: 64KiB, queue_depth: 2}
  - {name: iw, kind: image-write, block_size: 4KiB, queue_depth: 2, rate: 500}
`

func TestRunSmall(t *testing.T) {
	res, err := Run(context.Background(), RunConfig{Scenario: parse(t, small), Commit: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partial || res.Baseline == nil || res.LoadMode != results.OpenLoop {
		t.Fatalf("partial %v baseline %v mode %s", res.Partial, res.Baseline != nil, res.LoadMode)
	}
	for _, c := range []results.Class{results.OriginWrite, results.OriginWriteCoW, results.ImageRead, results.ImageWrite} {
		cr, ok := res.Engine.Classes[c]
		if !ok || cr.Count == 0 || cr.P50Ns <= 0 || cr.Histogram == "" {
			t.Errorf("engine class %s: %+v", c, cr)
		}
	}
	for _, c := range []results.Class{results.OriginWrite, results.ImageRead, results.ImageWrite} {
		if cr := res.Baseline.Classes[c]; cr.Count == 0 {
			t.Errorf("baseline class %s missing", c)
		}
	}
	if r := res.Ratios[results.OriginWrite]; r.IOPS <= 0 {
		t.Errorf("no origin-write ratio: %+v", res.Ratios)
	}
	if res.Engine.Counters[results.CounterChunksCopied] == 0 {
		t.Error("no chunk copied")
	}
	var take bool
	for _, e := range res.Engine.Events {
		take = take || e.Kind == results.EventTake
	}
	if !take || len(res.Engine.Series) == 0 {
		t.Errorf("take event %v, series %d", take, len(res.Engine.Series))
	}
	// The result survives its own codec.
	path := filepath.Join(t.TempDir(), "r.json")
	if err := results.WriteFile(path, res); err != nil {
		t.Fatal(err)
	}
	if _, err := results.ReadFile(path); err != nil {
		t.Fatal(err)
	}
}

// TestRunCancelledIsPartial: cancelled while the engine side runs, the run
// stops early with a result marked partial; cancelled in the baseline, it
// stops early with ErrInterrupted and no result (half a baseline is not one).
func TestRunCancelledIsPartial(t *testing.T) {
	sc := parse(t, strings.Replace(small, "run: 1s", "run: 30s", 1))
	for _, skipBaseline := range []bool{true, false} {
		// Cancel once the side under test reports progress: deterministic,
		// however slow the prefill and the setup are on a loaded machine.
		side := "engine"
		if !skipBaseline {
			side = "baseline"
		}
		ctx, cancel := context.WithCancel(context.Background())
		var start time.Time
		progress := cancelOn{side: side, cancel: cancel, at: &start}
		res, err := Run(ctx, RunConfig{Scenario: sc, SkipBaseline: skipBaseline, Progress: &progress})
		cancel()
		if start.IsZero() {
			t.Fatalf("baseline skipped %v: the %s side never reported progress (%v)", skipBaseline, side, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("baseline skipped %v: stopped %v after the cancel", skipBaseline, took)
		}
		if skipBaseline {
			if err != nil || !res.Partial {
				t.Errorf("cancelled in the engine side: %v, result %+v; want a partial result", err, res)
			}
		} else if !errors.Is(err, ErrInterrupted) || res != nil {
			t.Errorf("cancelled in the baseline: %v; want ErrInterrupted and no result", err)
		}
	}
}

// cancelOn cancels when a progress line names side.
type cancelOn struct {
	side   string
	cancel func()
	at     *time.Time
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if c.at.IsZero() && strings.Contains(string(p), c.side) {
		*c.at = time.Now()
		c.cancel()
	}
	return len(p), nil
}

func TestRunOverflowKeepsGoing(t *testing.T) {
	sc := parse(t, `
name: overflow
devices: [{name: d0, size: 16MiB}]
diff_storage: {kind: tempfile, limit: 1MiB, portion: 1MiB}
engine: {chunk_minimum_shift: 16}
phases: {run: 1s}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 4}
  - {name: r, kind: image-read, block_size: 4KiB, queue_depth: 1}
`)
	res, err := Run(context.Background(), RunConfig{Scenario: sc, SkipBaseline: true})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, e := range res.Engine.Events {
		kinds[e.Kind] = true
	}
	if !kinds[results.EventOverflow] || !kinds[results.EventCorrupted] {
		t.Fatalf("events %v", kinds)
	}
	if res.Engine.Classes[results.ImageRead].Errors == 0 {
		t.Fatal("image reads after overflow did not fail")
	}
	if cr := res.Engine.Classes[results.OriginWrite]; cr.Errors != 0 || cr.Count == 0 {
		t.Fatalf("origin writes: %+v", cr)
	}
}

func TestRunMissingDevicePath(t *testing.T) {
	sc := parse(t, `
name: missing
devices: [{name: d0, backing: {kind: path, path: /nonexistent/disk.img}}]
diff_storage: {kind: tempfile, limit: 64MiB}
phases: {run: 1s}
workloads: [{kind: origin-write}]
`)
	_, err := Run(context.Background(), RunConfig{Scenario: sc})
	if !errors.Is(err, ErrRun) || !strings.Contains(err.Error(), "/nonexistent/disk.img does not exist") {
		t.Fatalf("got %v", err)
	}
}

func TestRawAgainstFio(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	f, _ := os.CreateTemp("/dev/shm", "raw-*")
	defer os.Remove(f.Name())
	f.Truncate(8 << 20)
	f.Close()
	res, err := RunRaw(RawConfig{Path: f.Name(), Random: true, BlockSize: 4096, QueueDepth: 4, Duration: 100 * time.Millisecond})
	if err != nil || res.Ops == 0 || res.IOPS() <= 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if err := (&RawConfig{Path: f.Name(), BlockSize: 1000, QueueDepth: 1, Duration: time.Second}).Validate(); err == nil {
		t.Fatal("block size 1000 accepted")
	}
}

func TestParseFio(t *testing.T) {
	out := []byte(`fio: warning\n{"fio version": "fio-3.33", "jobs": [{"jobname": "x", "error": 0, "read": {"io_bytes": 4096, "iops": 1000.5, "runtime": 10, "total_ios": 1}, "write": {"iops": 0}}]}`)
	r, err := ParseFio(out)
	if err != nil || r.IOPS() != 1000.5 || r.FioVersion != "fio-3.33" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "{}", `{"jobs": [{"jobname": "x", "error": 5}]}`, "{bad"} {
		if _, err := ParseFio([]byte(bad)); !errors.Is(err, ErrFioOutput) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseFio(f *testing.F) {
	f.Add([]byte(`{"fio version": "fio-3.33", "jobs": [{"jobname": "x", "read": {"iops": 1}}]}`))
	f.Add([]byte(`warn {"jobs": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseFio(data)
		if err == nil && len(r.Jobs) == 0 {
			t.Fatal("accepted a result without jobs")
		}
	})
}
