package results_test

import (
	"fmt"
	"os"
	"time"

	"github.com/snapring/snapring/results"
)

// run builds a result whose engine writes take writeUs microseconds (and a
// first write to a chunk three times as long) against a raw write of 20µs.
func run(writeUs int64) *results.Result {
	engine, cow, raw := results.NewHistogram(), results.NewHistogram(), results.NewHistogram()
	for i := range int64(1000) {
		jitter := (i % 10) * 1000 // 0-9µs
		engine.RecordValue(writeUs*1000 + jitter)
		raw.RecordValue(20_000 + jitter)
		if i%4 == 0 { // every fourth write copies its chunk
			cow.RecordValue(3*writeUs*1000 + jitter)
		}
	}
	elapsed := 10 * time.Second
	r := &results.Result{
		Env:      results.Env{KernelRelease: "6.12.0", Commit: "abc123"},
		LoadMode: results.ClosedLoop,
		Engine: results.Side{Duration: elapsed, Classes: map[results.Class]results.ClassResult{
			results.OriginWrite:    results.SummaryFromHistogram(engine, 0, engine.TotalCount()*4096, elapsed),
			results.OriginWriteCoW: results.SummaryFromHistogram(cow, 0, cow.TotalCount()*4096, elapsed),
		}},
		Baseline: &results.Side{Duration: elapsed, Classes: map[results.Class]results.ClassResult{
			results.OriginWrite: results.SummaryFromHistogram(raw, 0, raw.TotalCount()*4096, elapsed),
		}},
	}
	results.ComputeRatios(r)
	return r
}

func Example() {
	base := run(40)
	fmt.Printf("engine p50 %dns, baseline p50 %dns, ratio %.2f\n",
		base.Engine.Classes[results.OriginWrite].P50Ns,
		base.Baseline.Classes[results.OriginWrite].P50Ns,
		base.Ratios[results.OriginWrite].P50)

	// One run on each side: the threshold alone decides.
	cmp := results.Compare([]*results.Result{base}, []*results.Result{run(50)}, results.CompareOptions{})
	if err := cmp.WriteText(os.Stdout); err != nil {
		fmt.Println(err)
	}
	fmt.Println("regressed:", cmp.Regressed())
	// Output:
	// engine p50 44031ns, baseline p50 24015ns, ratio 1.83
	// snapring compare: base 1 runs, new 1 runs; alpha 0.05; thresholds: latency 10%, throughput 10%; verdict from the engine/baseline ratios (engine figures informational; --absolute counts them)
	//
	// engine (informational)  base       new        change  test                 verdict
	// origin-write p50        44.0µs     54.0µs     +22.7%  n=1, threshold only  regression
	// origin-write p99        49.0µs     59.0µs     +20.4%  n=1, threshold only  regression
	// origin-write mean       44.5µs     54.5µs     +22.5%  n=1, threshold only  regression
	// origin-write iops       100 op/s   100 op/s   +0.0%   n=1, threshold only  ~
	// origin-write mb/s       0.41 MB/s  0.41 MB/s  +0.0%   n=1, threshold only  ~
	// origin-write-cow p50    124µs      154µs      +24.3%  n=1, threshold only  regression
	// origin-write-cow p99    128µs      158µs      +23.4%  n=1, threshold only  regression
	// origin-write-cow mean   124µs      154µs      +24.2%  n=1, threshold only  regression
	// origin-write-cow iops   25.0 op/s  25.0 op/s  +0.0%   n=1, threshold only  ~
	// origin-write-cow mb/s   0.10 MB/s  0.10 MB/s  +0.0%   n=1, threshold only  ~
	//
	// engine/baseline ratio  base    new     change  test                 verdict
	// origin-write p50       1.833x  2.249x  +22.7%  n=1, threshold only  regression
	// origin-write p99       1.690x  2.034x  +20.4%  n=1, threshold only  regression
	// origin-write iops      1.000x  1.000x  +0.0%   n=1, threshold only  ~
	// origin-write mb/s      1.000x  1.000x  +0.0%   n=1, threshold only  ~
	// origin-write-cow p50   5.165x  6.417x  +24.3%  n=1, threshold only  regression
	// origin-write-cow p99   4.415x  5.450x  +23.4%  n=1, threshold only  regression
	//
	// baseline (informational)  base       new        change  test                 verdict
	// origin-write p50          24.0µs     24.0µs     +0.0%   n=1, threshold only  ~
	// origin-write p99          29.0µs     29.0µs     +0.0%   n=1, threshold only  ~
	// origin-write mean         24.5µs     24.5µs     +0.0%   n=1, threshold only  ~
	// origin-write iops         100 op/s   100 op/s   +0.0%   n=1, threshold only  ~
	// origin-write mb/s         0.41 MB/s  0.41 MB/s  +0.0%   n=1, threshold only  ~
	//
	// REGRESSION: 4 regressions, 0 improvements in 6 metrics
	// regressed: true
}

func ExampleSummaryFromHistogram() {
	h := results.NewHistogram()
	for v := int64(1); v <= 100; v++ {
		h.RecordValue(v * 1000) // 1µs .. 100µs
	}
	cr := results.SummaryFromHistogram(h, 0, 100*4096, time.Second)
	fmt.Println(cr.Count, cr.P50Ns, cr.P99Ns, cr.MaxNs, cr.IOPS, cr.MBps)
	fmt.Println(cr.Histogram[:8])
	// Output:
	// 100 50015 99007 100031 100 0.4096
	// HISTFAAA
}
