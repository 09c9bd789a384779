package results

import (
	"fmt"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry for per-class latency histograms. Values are
// nanoseconds; a latency above HistogramHighestNs cannot be recorded, so
// the runner should clamp to it (and count the operation as an error if it
// timed out).
const (
	HistogramLowestNs  int64 = 1
	HistogramHighestNs int64 = int64(time.Minute)
	HistogramSigFigs         = 3
)

// histogramPrefix starts every base64 V2 compressed HdrHistogram: it is the
// cookie 0x1c849314 in base64.
const histogramPrefix = "HISTF"

// NewHistogram returns an empty latency histogram with the standard geometry.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistogramLowestNs, HistogramHighestNs, HistogramSigFigs)
}

// EncodeHistogram encodes h in HdrHistogram's V2 compressed encoding as
// base64 text, the form HdrHistogram's log tools (HistogramLogProcessor,
// HdrHistogram plotters) read.
func EncodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	// Encode already returns base64 text; encoding it again would produce
	// something no HdrHistogram tool reads.
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrHistogram, err)
	}
	return string(b), nil
}

// DecodeHistogram decodes the output of EncodeHistogram.
func DecodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrHistogram)
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHistogram, err)
	}
	return h, nil
}

// SummaryFromHistogram summarises one class. h holds the latencies (ns) of
// the completed operations, errors counts the failed ones, bytes is the
// payload moved by the completed ones and elapsed is the side's measured
// duration, which IOPS and MB/s divide by. A nil h gives a summary with only
// Errors and Bytes set. If h cannot be encoded, Histogram is left empty.
func SummaryFromHistogram(h *hdrhistogram.Histogram, errors int64, bytes int64, elapsed time.Duration) ClassResult {
	cr := ClassResult{Errors: errors, Bytes: bytes}
	cr.MBps = perSecond(float64(bytes)/1e6, elapsed)
	if h == nil {
		return cr
	}
	cr.Count = h.TotalCount()
	cr.IOPS = perSecond(float64(cr.Count), elapsed)
	if cr.Count > 0 {
		cr.MinNs = h.Min()
		cr.MeanNs = int64(math.Round(h.Mean()))
		cr.MaxNs = h.Max()
		ps := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9, 99.99})
		cr.P50Ns, cr.P90Ns, cr.P99Ns, cr.P999Ns, cr.P9999Ns = ps[0], ps[1], ps[2], ps[3], ps[4]
	}
	if enc, err := EncodeHistogram(h); err == nil {
		cr.Histogram = enc
	}
	return cr
}

// DecodeHistogram decodes the class's histogram.
func (cr ClassResult) DecodeHistogram() (*hdrhistogram.Histogram, error) {
	return DecodeHistogram(cr.Histogram)
}
