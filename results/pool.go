package results

import (
	"math"
	"slices"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// pooledClass combines one class of one side over several runs: the
// histograms are merged, so its percentiles are those of all operations,
// and the rates are medians of the runs' rates.
type pooledClass struct {
	class Class
	runs  int
	// hist merges the runs' histograms; nil if any run lacks a usable one,
	// in which case latency figures are medians of the runs' summaries.
	hist *hdrhistogram.Histogram
	sum  ClassResult
}

// pooledSide holds the pooled classes of one side, keyed by class.
type pooledSide map[Class]*pooledClass

// poolSide pools one side over runs; side picks it out of a Result and may
// return nil for a run without that side.
func poolSide(runs []*Result, side func(*Result) *Side) pooledSide {
	byClass := make(map[Class][]ClassResult)
	for _, r := range runs {
		s := side(r)
		if s == nil {
			continue
		}
		for c, cr := range s.Classes {
			if cr.Count > 0 {
				byClass[c] = append(byClass[c], cr)
			}
		}
	}
	out := make(pooledSide, len(byClass))
	for c, crs := range byClass {
		out[c] = poolClass(c, crs)
	}
	return out
}

func poolClass(c Class, crs []ClassResult) *pooledClass {
	pc := &pooledClass{class: c, runs: len(crs)}
	merged := NewHistogram()
	for _, cr := range crs {
		h, err := cr.DecodeHistogram()
		if err != nil {
			merged = nil
			break
		}
		merged.Merge(h)
	}
	pick := func(f func(ClassResult) float64) float64 {
		vs := make([]float64, len(crs))
		for i, cr := range crs {
			vs[i] = f(cr)
		}
		return median(vs)
	}
	pc.sum = ClassResult{
		IOPS: pick(func(cr ClassResult) float64 { return cr.IOPS }),
		MBps: pick(func(cr ClassResult) float64 { return cr.MBps }),
	}
	for _, cr := range crs {
		pc.sum.Count += cr.Count
		pc.sum.Errors += cr.Errors
		pc.sum.Bytes += cr.Bytes
	}
	if merged != nil && merged.TotalCount() > 0 {
		pc.hist = merged
		s := SummaryFromHistogram(merged, 0, 0, 0)
		pc.sum.MinNs, pc.sum.MeanNs, pc.sum.MaxNs = s.MinNs, s.MeanNs, s.MaxNs
		pc.sum.P50Ns, pc.sum.P90Ns, pc.sum.P99Ns, pc.sum.P999Ns, pc.sum.P9999Ns = s.P50Ns, s.P90Ns, s.P99Ns, s.P999Ns, s.P9999Ns
		return pc
	}
	lat := func(f func(ClassResult) int64) int64 {
		return int64(math.Round(pick(func(cr ClassResult) float64 { return float64(f(cr)) })))
	}
	pc.sum.MinNs = lat(func(cr ClassResult) int64 { return cr.MinNs })
	pc.sum.MeanNs = lat(func(cr ClassResult) int64 { return cr.MeanNs })
	pc.sum.P50Ns = lat(func(cr ClassResult) int64 { return cr.P50Ns })
	pc.sum.P90Ns = lat(func(cr ClassResult) int64 { return cr.P90Ns })
	pc.sum.P99Ns = lat(func(cr ClassResult) int64 { return cr.P99Ns })
	pc.sum.P999Ns = lat(func(cr ClassResult) int64 { return cr.P999Ns })
	pc.sum.P9999Ns = lat(func(cr ClassResult) int64 { return cr.P9999Ns })
	pc.sum.MaxNs = lat(func(cr ClassResult) int64 { return cr.MaxNs })
	return pc
}

// poolRatios returns, per engine class, the median of each ratio over the
// runs that define it.
func poolRatios(runs []*Result) map[Class]Ratio {
	type acc struct {
		baseline             Class
		iops, mbps, p50, p99 []float64
	}
	accs := make(map[Class]*acc)
	for _, r := range runs {
		ratios := r.Ratios
		if len(ratios) == 0 && r.Baseline != nil {
			tmp := *r
			ComputeRatios(&tmp)
			ratios = tmp.Ratios
		}
		for c, ratio := range ratios {
			a := accs[c]
			if a == nil {
				a = &acc{baseline: ratio.Baseline}
				accs[c] = a
			}
			appendPositive(&a.iops, ratio.IOPS)
			appendPositive(&a.mbps, ratio.MBps)
			appendPositive(&a.p50, ratio.P50)
			appendPositive(&a.p99, ratio.P99)
		}
	}
	out := make(map[Class]Ratio, len(accs))
	for c, a := range accs {
		out[c] = Ratio{Baseline: a.baseline, IOPS: median(a.iops), MBps: median(a.mbps), P50: median(a.p50), P99: median(a.p99)}
	}
	return out
}

func appendPositive(vs *[]float64, v float64) {
	if v > 0 {
		*vs = append(*vs, v)
	}
}

// median returns the median of vs, or 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}
