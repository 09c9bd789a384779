package fio

import (
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/results"
)

// fio's latency histogram geometry (stat.h: FIO_IO_U_PLAT_BITS,
// FIO_IO_U_PLAT_VAL, FIO_IO_U_PLAT_GROUP_NR): values below 128 ns have a
// bin each; above, every power of two is split into 64 bins.
const (
	platBits    = 6
	platVal     = 1 << platBits
	platGroupNr = 29
	// PlatNr is the number of bins in one fio latency histogram, and so the
	// number of counts on a histogram log line with log_hist_coarseness=0.
	PlatNr = platGroupNr * platVal
)

// BinRelativeError is fio's own bin error: a sample of value v lies in a
// bin whose midpoint m is within v/128 of it (half a bin width; the bins
// of a group are 2^(g) wide for values from 2^(g+6)). Values below 128 ns
// are exact.
const BinRelativeError = 1.0 / 128

// platIdxToVal is fio's plat_idx_to_val: the midpoint of bin idx, the
// value fio prints as a json+ bin key and as a percentile.
func platIdxToVal(idx int) uint64 {
	if idx < platVal<<1 {
		return uint64(idx)
	}
	errorBits := uint(idx>>platBits) - 1
	base := uint64(1) << (errorBits + platBits)
	k := uint64(idx % platVal)
	return base + uint64((float64(k)+0.5)*float64(uint64(1)<<errorBits))
}

// platValToIdx is fio's plat_val_to_idx: the bin a value falls into.
func platValToIdx(val uint64) int {
	msb := 0
	if val != 0 {
		msb = 63 - bits.LeadingZeros64(val)
	}
	if msb <= platBits {
		return int(val)
	}
	errorBits := uint(msb - platBits)
	base := int(errorBits+1) << platBits
	offset := int((platVal - 1) & (val >> errorBits))
	return min(base+offset, PlatNr-1)
}

// isBinMidpoint reports whether v is the midpoint of one of fio's bins,
// which every json+ bin key is.
func isBinMidpoint(v uint64) bool {
	idx := platValToIdx(v)
	return idx < PlatNr && platIdxToVal(idx) == v
}

// binsHistogram converts fio's json+ bins (midpoint ns -> count) into an
// HdrHistogram of our standard geometry: every sample is recorded at its
// bin's midpoint. See the package documentation for the error this adds.
// Midpoints above results.HistogramHighestNs are clamped to it.
func binsHistogram(bins []Bin) *hdrhistogram.Histogram {
	h := results.NewHistogram()
	for _, b := range bins {
		v := min(int64(b.MidNs), results.HistogramHighestNs)
		// RecordValues fails only for values outside the geometry, which
		// the clamp rules out (fio's smallest midpoint is 0, recorded in
		// the lowest bucket).
		_ = h.RecordValues(v, b.Count)
	}
	return h
}
