package fio

import (
	"fmt"
	"math"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/results"
)

// Class mapping: fio's reads are recorded as results.ImageRead and its
// writes as results.OriginWrite (results.ImageWrite on the image target),
// whatever device they went to; on the baseline side these classes are the
// raw read and write, so ratios pair reads with reads and writes with
// writes. Trims are not recorded.
func classFor(dir int, target Kind) (results.Class, bool) {
	switch dir {
	case 0:
		return results.ImageRead, true
	case 1:
		if target == Image {
			return results.ImageWrite, true
		}
		return results.OriginWrite, true
	}
	return "", false
}

func (j *Job) dir(d int) *Dir {
	switch d {
	case 0:
		return &j.Read
	case 1:
		return &j.Write
	}
	return &j.Trim
}

// classAcc sums one class over jobs (and hosts).
type classAcc struct {
	hist *hdrhistogram.Histogram
	// bins are fio's bins summed (midpoint -> count), for fio's own
	// percentiles.
	bins    map[uint64]int64
	n       int64
	minNs   int64
	maxNs   int64
	sumNs   float64
	bytes   int64
	iops    float64
	bwBytes int64
}

func (a *classAcc) add(d *Dir) {
	if a.hist == nil {
		a.hist = results.NewHistogram()
		a.minNs = math.MaxInt64
	}
	a.hist.Merge(binsHistogram(d.Lat.Bins))
	if a.bins == nil {
		a.bins = make(map[uint64]int64)
	}
	for _, b := range d.Lat.Bins {
		a.bins[b.MidNs] += b.Count
	}
	if d.Lat.N > 0 {
		a.minNs = min(a.minNs, d.Lat.MinNs)
		a.maxNs = max(a.maxNs, d.Lat.MaxNs)
		a.sumNs += d.Lat.MeanNs * float64(d.Lat.N)
		a.n += d.Lat.N
	}
	a.bytes += d.IOBytes
	a.iops += d.IOPS
	a.bwBytes += d.BWBytes
}

func (a *classAcc) merge(b *classAcc) {
	if a.hist == nil {
		a.hist = results.NewHistogram()
		a.minNs = math.MaxInt64
	}
	a.hist.Merge(b.hist)
	if a.bins == nil {
		a.bins = make(map[uint64]int64)
	}
	for v, c := range b.bins {
		a.bins[v] += c
	}
	if b.n > 0 {
		a.minNs = min(a.minNs, b.minNs)
		a.maxNs = max(a.maxNs, b.maxNs)
	}
	a.n += b.n
	a.sumNs += b.sumNs
	a.bytes += b.bytes
	a.iops += b.iops
	a.bwBytes += b.bwBytes
}

// summary returns the class's result: the converted histogram;
// percentiles as fio computes them from its bins (so they equal fio's
// printed ones, and over several hosts they are those of the pooled
// samples); min, max and mean from fio's exact figures; IOPS and bandwidth
// as fio measured them (summed over jobs and hosts, which run
// concurrently).
func (a *classAcc) summary(elapsed time.Duration) results.ClassResult {
	cr := results.SummaryFromHistogram(a.hist, 0, a.bytes, elapsed)
	cr.IOPS = a.iops
	cr.MBps = float64(a.bwBytes) / 1e6
	if a.n > 0 {
		cr.MinNs, cr.MaxNs = a.minNs, a.maxNs
		cr.MeanNs = int64(math.Round(a.sumNs / float64(a.n)))
		ps := fioPercentiles(a.bins, []float64{50, 90, 99, 99.9, 99.99})
		cr.P50Ns, cr.P90Ns, cr.P99Ns, cr.P999Ns, cr.P9999Ns = ps[0], ps[1], ps[2], ps[3], ps[4]
	}
	return cr
}

// fioPercentiles is fio's calc_clat_percentiles: the p-th percentile is the
// midpoint of the first bin at which the running count reaches p/100*N.
// ps must be increasing.
func fioPercentiles(bins map[uint64]int64, ps []float64) []int64 {
	vals := make([]uint64, 0, len(bins))
	var n int64
	for v, c := range bins {
		if c > 0 {
			vals = append(vals, v)
			n += c
		}
	}
	slices.Sort(vals)
	out := make([]int64, len(ps))
	if n == 0 {
		return out
	}
	var sum int64
	j := 0
	for _, v := range vals {
		sum += bins[v]
		for j < len(ps) && float64(sum) >= ps[j]/100*float64(n) {
			out[j] = min(int64(v), results.HistogramHighestNs)
			j++
		}
	}
	for ; j < len(ps); j++ {
		out[j] = min(int64(vals[len(vals)-1]), results.HistogramHighestNs)
	}
	return out
}

// hostData is what one fio invocation reported for one host (or the local
// machine, Host ""): its jobs and its histogram log samples.
type hostData struct {
	Host    string
	Jobs    []Job
	Samples []HistSample
	// IntervalMs is log_hist_msec.
	IntervalMs int64
}

// sideOf accumulates the classes of one host.
func (h *hostData) classes(target Kind) map[results.Class]*classAcc {
	out := make(map[results.Class]*classAcc)
	for i := range h.Jobs {
		for d := 0; d < 2; d++ {
			dir := h.Jobs[i].dir(d)
			c, ok := classFor(d, target)
			if !ok || (dir.Lat.N == 0 && dir.TotalIOs == 0) {
				continue
			}
			if out[c] == nil {
				out[c] = &classAcc{}
			}
			out[c].add(dir)
		}
	}
	return out
}

// duration is the longest runtime of any job and direction.
func (h *hostData) duration() time.Duration {
	var ms int64
	for i := range h.Jobs {
		for d := 0; d < 3; d++ {
			ms = max(ms, h.Jobs[i].dir(d).RuntimeMs)
		}
	}
	return time.Duration(ms) * time.Millisecond
}

// series turns the host's histogram log samples into per-interval points.
// fio logs a window when a completion ends it, so the last, partial window
// is never logged: the completions fio counted (N) but did not log are put
// into one last interval that ends at the job's runtime, so the series adds
// up to the job's totals.
func (h *hostData) series(target Kind) []results.SeriesPoint {
	if h.IntervalMs <= 0 || len(h.Samples) == 0 {
		return nil
	}
	iv := h.IntervalMs
	points := make(map[int64]*results.SeriesPoint)
	get := func(idx int64) *results.SeriesPoint {
		p := points[idx]
		if p == nil {
			p = &results.SeriesPoint{
				Offset:   time.Duration(idx*iv) * time.Millisecond,
				Length:   time.Duration(iv) * time.Millisecond,
				ClassOps: map[results.Class]int64{},
			}
			points[idx] = p
		}
		return p
	}
	var logged [2]int64
	var lastBS [2]int64
	var lastIdx int64 = -1
	for _, s := range h.Samples {
		c, ok := classFor(s.Dir, target)
		if !ok {
			continue
		}
		// The window ending at TimeMs started one interval before it.
		idx := max((s.TimeMs+iv/2)/iv-1, 0)
		p := get(idx)
		p.Ops += s.Count
		p.Bytes += s.Count * s.BS
		p.ClassOps[c] += s.Count
		logged[s.Dir] += s.Count
		lastBS[s.Dir] = s.BS
		lastIdx = max(lastIdx, idx)
	}
	// The unlogged tail.
	runtime := h.duration()
	for d := 0; d < 2; d++ {
		c, ok := classFor(d, target)
		if !ok {
			continue
		}
		var n, bytes int64
		for i := range h.Jobs {
			n += h.Jobs[i].dir(d).Lat.N
			bytes += h.Jobs[i].dir(d).IOBytes
		}
		rest := n - logged[d]
		if rest <= 0 {
			continue
		}
		p := get(lastIdx + 1)
		if end := runtime - p.Offset; end > 0 && end < p.Length {
			p.Length = end
		}
		bs := lastBS[d]
		if n > 0 {
			bs = bytes / n
		}
		p.Ops += rest
		p.Bytes += rest * bs
		p.ClassOps[c] += rest
	}
	idxs := make([]int64, 0, len(points))
	for i := range points {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	out := make([]results.SeriesPoint, 0, len(idxs))
	for _, i := range idxs {
		out = append(out, *points[i])
	}
	return out
}

// HostResult is one host's classes in a multi-host run, kept in the
// result's metadata (Meta.Hosts) with their histograms.
type HostResult struct {
	// Host is "host:port" as given to --hosts.
	Host    string                                `json:"host"`
	Classes map[results.Class]results.ClassResult `json:"classes"`
}

// buildSide turns the hosts' data of one target into one side: the classes
// of all hosts merged (HdrHistogram adds, so percentiles are of all
// samples), the series summed per interval, and, with more than one host,
// each host's own classes.
func buildSide(hosts []hostData, target Kind, start time.Time) (results.Side, []HostResult, error) {
	side := results.Side{Start: start, Classes: map[results.Class]results.ClassResult{}}
	merged := make(map[results.Class]*classAcc)
	var perHost []HostResult
	series := make(map[time.Duration]*results.SeriesPoint)
	for i := range hosts {
		h := &hosts[i]
		side.Duration = max(side.Duration, h.duration())
		cls := h.classes(target)
		if len(cls) == 0 {
			return side, nil, fmt.Errorf("%w: %s: no reads or writes completed", ErrOutput, hostLabel(h.Host))
		}
		hr := HostResult{Host: h.Host, Classes: map[results.Class]results.ClassResult{}}
		for c, a := range cls {
			hr.Classes[c] = a.summary(h.duration())
			if merged[c] == nil {
				merged[c] = &classAcc{}
			}
			merged[c].merge(a)
		}
		perHost = append(perHost, hr)
		for _, p := range h.series(target) {
			q := series[p.Offset]
			if q == nil {
				cp := p
				cp.ClassOps = map[results.Class]int64{}
				cp.Ops, cp.Bytes = 0, 0
				q = &cp
				series[p.Offset] = q
			}
			q.Length = max(q.Length, p.Length)
			q.Ops += p.Ops
			q.Bytes += p.Bytes
			for c, n := range p.ClassOps {
				q.ClassOps[c] += n
			}
		}
	}
	for c, a := range merged {
		side.Classes[c] = a.summary(side.Duration)
	}
	offs := make([]time.Duration, 0, len(series))
	for o := range series {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	for _, o := range offs {
		side.Series = append(side.Series, *series[o])
	}
	if len(hosts) < 2 {
		perHost = nil
	}
	return side, perHost, nil
}

func hostLabel(h string) string {
	if h == "" {
		return "local fio"
	}
	return h
}
