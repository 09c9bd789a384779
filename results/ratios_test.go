package results

import (
	"testing"
)

func TestBaselineClassFor(t *testing.T) {
	both := map[Class]ClassResult{OriginWrite: {}, ImageRead: {}}
	withImageWrite := map[Class]ClassResult{OriginWrite: {}, ImageRead: {}, ImageWrite: {}}
	tests := []struct {
		engine   Class
		baseline map[Class]ClassResult
		want     Class
		ok       bool
	}{
		{OriginWrite, both, OriginWrite, true},
		{OriginWriteCoW, both, OriginWrite, true},
		{OriginWriteCopied, both, OriginWrite, true},
		{ImageRead, both, ImageRead, true},
		{ImageReadOriginal, both, ImageRead, true},
		{ImageReadMemory, both, ImageRead, true},
		{ImageReadDiff, both, ImageRead, true},
		{ImageWrite, both, OriginWrite, true},
		{ImageWrite, withImageWrite, ImageWrite, true},
		{ImageReadDiff, map[Class]ClassResult{OriginWrite: {}}, ImageRead, false},
		{"mystery", both, "", false},
	}
	for _, tt := range tests {
		got, ok := BaselineClassFor(tt.engine, tt.baseline)
		if got != tt.want || ok != tt.ok {
			t.Errorf("BaselineClassFor(%s, %d classes) = %s, %v; want %s, %v", tt.engine, len(tt.baseline), got, ok, tt.want, tt.ok)
		}
	}
}

func TestComputeRatios(t *testing.T) {
	cr := func(count int64, iops, mbps float64, p50, p99 int64) ClassResult {
		return ClassResult{Count: count, IOPS: iops, MBps: mbps, P50Ns: p50, P99Ns: p99}
	}
	r := &Result{
		Engine: Side{Classes: map[Class]ClassResult{
			OriginWrite:       cr(100, 50, 200, 30, 400),
			OriginWriteCoW:    cr(40, 20, 80, 60, 800),
			ImageReadDiff:     cr(10, 5, 20, 40, 100),
			ImageWrite:        cr(10, 5, 20, 0, 0),
			ImageReadOriginal: cr(0, 0, 0, 0, 0),
		}},
		Baseline: &Side{Classes: map[Class]ClassResult{
			OriginWrite: cr(200, 100, 400, 10, 100),
			ImageRead:   cr(100, 100, 400, 20, 50),
		}},
	}
	ComputeRatios(r)
	want := map[Class]Ratio{
		OriginWrite:    {Baseline: OriginWrite, IOPS: 0.5, MBps: 0.5, P50: 3, P99: 4},
		OriginWriteCoW: {Baseline: OriginWrite, P50: 6, P99: 8}, // sub-class: no throughput ratio
		ImageReadDiff:  {Baseline: ImageRead, P50: 2, P99: 2},
		ImageWrite:     {Baseline: OriginWrite, IOPS: 0.05, MBps: 0.05}, // zero latency: undefined
		// ImageReadOriginal saw no operations: no ratio.
	}
	if len(r.Ratios) != len(want) {
		t.Errorf("got %d ratios, want %d: %+v", len(r.Ratios), len(want), r.Ratios)
	}
	for c, w := range want {
		if got := r.Ratios[c]; got != w {
			t.Errorf("ratio %s = %+v, want %+v", c, got, w)
		}
	}
	r.Baseline = nil
	ComputeRatios(r)
	if r.Ratios != nil {
		t.Errorf("ratios without a baseline: %+v", r.Ratios)
	}
}
