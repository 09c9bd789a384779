//go:build !race

package bench

import (
	"context"
	"runtime"
	"testing"
)

// TestRunAllocsPerOp: the runner drives the engine without allocating per
// operation. Setup, the once-a-second samples and the histograms' V2
// encoding at the end (the library allocates per non-empty bucket) allocate
// a roughly fixed amount, so the test runs the same scenario for 0.5 s and
// for 2 s and bounds the extra mallocs per extra operation. Not under -race,
// which allocates on its own and slows the I/O (make test runs it without).
func TestRunAllocsPerOp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 3 seconds")
	}
	run := func(d string) (mallocs, ops int64) {
		sc := parse(t, `
name: allocs
devices: [{name: d0, size: 64MiB}]
diff_storage: {kind: tempfile, limit: 128MiB, portion: 32MiB}
engine: {chunk_minimum_shift: 16}
phases: {prefill: false, run: `+d+`}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 16}
  - {name: r, kind: image-read, block_size: 64KiB, queue_depth: 4}
`)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := Run(context.Background(), RunConfig{Scenario: sc, SkipBaseline: true})
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		for c, cr := range res.Engine.Classes {
			if c.Aggregate() {
				ops += cr.Count
			}
		}
		return int64(after.Mallocs - before.Mallocs), ops
	}
	m1, o1 := run("500ms")
	m2, o2 := run("2s")
	perOp := float64(m2-m1) / float64(o2-o1)
	t.Logf("0.5 s: %d mallocs, %d ops; 2 s: %d mallocs, %d ops; %.4f mallocs per extra op", m1, o1, m2, o2, perOp)
	if o2-o1 < 10000 || perOp > 0.05 {
		t.Fatalf("%.4f mallocs per extra operation: the I/O path allocates", perOp)
	}
}
