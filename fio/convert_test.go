package fio

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/results"
)

var testStart = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestPlatGeometry(t *testing.T) {
	prev := uint64(0)
	for idx := 0; idx < PlatNr; idx++ {
		v := platIdxToVal(idx)
		if got := platValToIdx(v); got != idx {
			t.Fatalf("idx %d: midpoint %d maps back to %d", idx, v, got)
		}
		if idx > 0 && v <= prev {
			t.Fatalf("idx %d: midpoint %d not above %d", idx, v, prev)
		}
		prev = v
		if !isBinMidpoint(v) {
			t.Fatalf("idx %d: %d not a midpoint", idx, v)
		}
	}
	// Every value lies within BinRelativeError of its bin's midpoint.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 100000; i++ {
		v := uint64(rng.Int63n(1 << 33))
		m := platIdxToVal(platValToIdx(v))
		if math.Abs(float64(m)-float64(v)) > BinRelativeError*float64(v)+1 {
			t.Fatalf("value %d: midpoint %d is off by more than 1/128", v, m)
		}
	}
}

// fioRank is fio's percentile rank (stat.c: the first bin where the
// running sum reaches p/100*N), hdrRank HdrHistogram's.
func fioRank(p float64, n int64) int64 { return int64(math.Ceil(p / 100 * float64(n))) }
func hdrRank(p float64, n int64) int64 {
	return min(max(int64(p/100*float64(n)+0.5), 1), n)
}

// binOfRank returns the index in bins of the rank-th sample (1-based).
func binOfRank(bins []Bin, rank int64) int {
	var sum int64
	for i, b := range bins {
		sum += b.Count
		if sum >= rank {
			return i
		}
	}
	return len(bins) - 1
}

// checkPercentiles asserts that the result's percentiles are fio's printed
// ones, and that the percentiles HdrHistogram computes from the converted
// histogram (as compare and report do when they pool runs) are within
// fio's bin error of them: within HdrHistogram's 1/1024 when both
// percentile rules (fio: ceil(p*N), HdrHistogram: round(p*N)) pick a
// sample in the same bin. When they pick different samples, no conversion
// can agree (the tail bins may be far apart); those are counted.
func checkPercentiles(t *testing.T, what string, d Dir, cr results.ClassResult) (rankSplits int) {
	t.Helper()
	fioOurs := map[float64]int64{50: cr.P50Ns, 90: cr.P90Ns, 99: cr.P99Ns, 99.9: cr.P999Ns, 99.99: cr.P9999Ns}
	for _, fp := range d.Lat.Percentiles {
		if v, ok := fioOurs[fp.P]; ok && v != fp.Ns {
			t.Errorf("%s p%v: result says %d, fio printed %d", what, fp.P, v, fp.Ns)
		}
	}
	h, err := cr.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	hs := results.SummaryFromHistogram(h, 0, 0, time.Second)
	ours := map[float64]int64{50: hs.P50Ns, 90: hs.P90Ns, 99: hs.P99Ns, 99.9: hs.P999Ns, 99.99: hs.P9999Ns}
	checked := 0
	for _, fp := range d.Lat.Percentiles {
		o, ok := ours[fp.P]
		if !ok {
			continue
		}
		checked++
		fv := float64(fp.Ns)
		diff := math.Abs(float64(o) - fv)
		fb, hb := binOfRank(d.Lat.Bins, fioRank(fp.P, d.Lat.N)), binOfRank(d.Lat.Bins, hdrRank(fp.P, d.Lat.N))
		if int64(d.Lat.Bins[fb].MidNs) != fp.Ns {
			t.Errorf("%s p%v: fio printed %d, its own bins say %d", what, fp.P, fp.Ns, d.Lat.Bins[fb].MidNs)
		}
		if fb != hb {
			rankSplits++
			continue
		}
		if diff > fv/1024+1 || diff > BinRelativeError*fv {
			t.Errorf("%s p%v: converted histogram gives %d, fio %d: off by %.0f ns, beyond 1/1024 (and fio's bin error 1/128)", what, fp.P, o, fp.Ns, diff)
		}
	}
	if checked != 5 {
		t.Errorf("%s: compared %d percentiles, want 5", what, checked)
	}
	return rankSplits
}

func TestConvertedPercentilesTestdata(t *testing.T) {
	for _, name := range []string{"randrw.json", "client-2hosts.json"} {
		out, err := Parse(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range out.Jobs {
			side, _, err := buildSide([]hostData{{Jobs: []Job{j}}}, Raw, testStart)
			if err != nil {
				t.Fatal(err)
			}
			splits := checkPercentiles(t, name+" read", j.Read, side.Classes[results.ImageRead])
			splits += checkPercentiles(t, name+" write", j.Write, side.Classes[results.OriginWrite])
			t.Logf("%s: %d of 10 percentiles: the rank rules picked different samples", name, splits)
			cr := side.Classes[results.ImageRead]
			if cr.Count != j.Read.Lat.N || cr.MinNs != j.Read.Lat.MinNs || cr.MaxNs != j.Read.Lat.MaxNs || cr.IOPS != j.Read.IOPS {
				t.Errorf("%s: read summary %+v against fio %+v", name, cr, j.Read)
			}
		}
	}
}

func TestSeriesAddsUp(t *testing.T) {
	out, err := Parse(readTestdata(t, "randrw.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "randrw_clat_hist.1.log"))
	if err != nil {
		t.Fatal(err)
	}
	samples, err := ParseHistLog(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	side, _, err := buildSide([]hostData{{Jobs: out.Jobs, Samples: samples, IntervalMs: 1000}}, Raw, testStart)
	if err != nil {
		t.Fatal(err)
	}
	if len(side.Series) != 3 {
		t.Fatalf("%d series points, want 3 (two logged seconds and the unlogged tail)", len(side.Series))
	}
	var reads, writes int64
	for i, p := range side.Series {
		if p.Offset != time.Duration(i)*time.Second {
			t.Errorf("point %d at %v", i, p.Offset)
		}
		reads += p.ClassOps[results.ImageRead]
		writes += p.ClassOps[results.OriginWrite]
		if p.Bytes != p.Ops*4096 {
			t.Errorf("point %d: %d bytes for %d ops", i, p.Bytes, p.Ops)
		}
	}
	if reads != out.Jobs[0].Read.Lat.N || writes != out.Jobs[0].Write.Lat.N {
		t.Errorf("series: %d reads %d writes, fio: %d %d", reads, writes, out.Jobs[0].Read.Lat.N, out.Jobs[0].Write.Lat.N)
	}
	if last := side.Series[2]; last.Length != time.Second {
		t.Errorf("tail length %v, want 1s (the runtime, 3001 ms, ends after it)", last.Length)
	}
}

// binsOf turns samples (fio bin midpoints) into json+ bins.
func binsOf(samples []uint64) []Bin {
	m := map[uint64]int64{}
	for _, s := range samples {
		m[s]++
	}
	var bins []Bin
	for v, c := range m {
		bins = append(bins, Bin{MidNs: v, Count: c})
	}
	slices.SortFunc(bins, func(a, b Bin) int { return cmpUint(a.MidNs, b.MidNs) })
	return bins
}

func jobOf(host string, samples []uint64) Job {
	lat := Latency{N: int64(len(samples)), Bins: binsOf(samples), MinNs: math.MaxInt64}
	var sum float64
	for _, s := range samples {
		lat.MinNs = min(lat.MinNs, int64(s))
		lat.MaxNs = max(lat.MaxNs, int64(s))
		sum += float64(s)
	}
	lat.MeanNs = sum / float64(len(samples))
	return Job{Name: "j", Host: host, Read: Dir{TotalIOs: lat.N, IOPS: float64(lat.N), RuntimeMs: 1000, IOBytes: lat.N * 4096, BWBytes: lat.N * 4096, LatKind: "clat", Lat: lat}}
}

// The merged p99 over hosts is the p99 of the pooled samples, not an
// average of the hosts' p99s.
func TestMergedP99IsPooled(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	// Midpoints below 2048 ns, which HdrHistogram at 3 significant
	// digits holds exactly, so the expected value is exact.
	maxIdx := platValToIdx(2047)
	draw := func(lo, hi int) uint64 { return platIdxToVal(lo + rng.Intn(hi-lo)) }
	var hosts []hostData
	var pooled []uint64
	for h, n := range []int{1000, 3000, 500} {
		var s []uint64
		for i := 0; i < n; i++ {
			v := draw(0, maxIdx/2)
			if h == 2 && i%10 == 0 {
				v = draw(maxIdx/2, maxIdx) // one slow host
			}
			s = append(s, v)
		}
		pooled = append(pooled, s...)
		hosts = append(hosts, hostData{Host: "127.0.0.1:" + string(rune('1'+h)), Jobs: []Job{jobOf("127.0.0.1", s)}})
	}
	side, perHost, err := buildSide(hosts, Raw, testStart)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pooled)
	want := int64(pooled[fioRank(99, int64(len(pooled)))-1])
	got := side.Classes[results.ImageRead]
	if got.P99Ns != want {
		t.Fatalf("merged p99 %d, pooled samples' p99 %d", got.P99Ns, want)
	}
	if got.Count != int64(len(pooled)) || got.MinNs != int64(pooled[0]) || got.MaxNs != int64(pooled[len(pooled)-1]) {
		t.Fatalf("merged count %d min %d max %d", got.Count, got.MinNs, got.MaxNs)
	}
	if len(perHost) != 3 {
		t.Fatalf("%d per-host results", len(perHost))
	}
	var avg float64
	for _, hr := range perHost {
		avg += float64(hr.Classes[results.ImageRead].P99Ns) / 3
	}
	if int64(avg) == want {
		t.Fatalf("the average of the hosts' p99s equals the pooled p99: the inputs do not tell merging from averaging")
	}
	// HdrHistogram's rule on the merged histogram gives the pooled p99 too.
	if hs := results.SummaryFromHistogram(mustDecode(t, got), 0, 0, time.Second); hs.P99Ns != int64(pooled[hdrRank(99, int64(len(pooled)))-1]) {
		t.Fatalf("HdrHistogram p99 of the merged histogram %d, pooled %d", hs.P99Ns, pooled[hdrRank(99, int64(len(pooled)))-1])
	}
	// The merged histogram is the sum of the hosts' histograms.
	h, err := got.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	sum := results.NewHistogram()
	for _, hr := range perHost {
		hh, err := hr.Classes[results.ImageRead].DecodeHistogram()
		if err != nil {
			t.Fatal(err)
		}
		sum.Merge(hh)
	}
	if !h.Equals(sum) {
		t.Fatal("merged histogram differs from the sum of the hosts'")
	}
	if got.IOPS != 4500 {
		t.Fatalf("merged IOPS %v, want the sum 4500", got.IOPS)
	}
}

func mustDecode(t *testing.T, cr results.ClassResult) *hdrhistogram.Histogram {
	t.Helper()
	h, err := cr.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
