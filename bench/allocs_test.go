//go:build !race

package bench

import (
	"context"
	"testing"

	"github.com/snapring/snapring/results"
)

// TestRunAllocsPerOp: the runner drives the engine without allocating per
// operation: the heap allocations counted over the recorded run phase
// (Memory.Mallocs: the once-a-second samples and whatever else the process
// does meanwhile, but not setup nor the histograms' encoding, which
// allocates per bucket and so grows with the latency spread of a loaded
// machine) stay far below one per hundred operations. Not under -race,
// which allocates on its own and slows the I/O (make test runs it without).
func TestRunAllocsPerOp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 2 seconds")
	}
	sc := parse(t, `
name: allocs
devices: [{name: d0, size: 64MiB}]
diff_storage: {kind: tempfile, limit: 128MiB, portion: 32MiB}
engine: {chunk_minimum_shift: 16}
phases: {prefill: false, warmup: 200ms, run: 2s}
workloads:
  - {name: w, kind: origin-write, block_size: 4KiB, queue_depth: 16}
  - {name: r, kind: image-read, block_size: 64KiB, queue_depth: 4}
`)
	res, err := Run(context.Background(), RunConfig{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name string
		s    *results.Side
	}{{"baseline", res.Baseline}, {"engine", &res.Engine}} {
		var ops int64
		for c, cr := range side.s.Classes {
			if c.Aggregate() {
				ops += cr.Count
			}
		}
		perOp := float64(side.s.Memory.Mallocs) / float64(ops)
		t.Logf("%s: %d mallocs over %d operations: %.4f per operation", side.name, side.s.Memory.Mallocs, ops, perOp)
		if ops < 5000 || perOp > 0.01 {
			t.Errorf("%s: %.4f mallocs per operation (%d operations): the I/O path allocates", side.name, perOp, ops)
		}
	}
}
