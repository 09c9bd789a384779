package results

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func TestSummaryFromHistogram(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 10000; v++ {
		if err := h.RecordValue(v * 1000); err != nil { // 1µs .. 10ms
			t.Fatal(err)
		}
	}
	got := SummaryFromHistogram(h, 3, 10000*4096, 2*time.Second)
	// Values are exact to HistogramSigFigs significant digits.
	within := func(name string, got, want int64) {
		t.Helper()
		if d := float64(got-want) / float64(want); d < -0.001 || d > 0.001 {
			t.Errorf("%s = %d, want %d ±0.1%%", name, got, want)
		}
	}
	if got.Count != 10000 || got.Errors != 3 || got.Bytes != 10000*4096 {
		t.Errorf("count %d errors %d bytes %d", got.Count, got.Errors, got.Bytes)
	}
	within("min", got.MinNs, 1_000)
	within("mean", got.MeanNs, 5_000_500)
	within("p50", got.P50Ns, 5_000_000)
	within("p90", got.P90Ns, 9_000_000)
	within("p99", got.P99Ns, 9_900_000)
	within("p99.9", got.P999Ns, 9_990_000)
	within("p99.99", got.P9999Ns, 9_999_000)
	within("max", got.MaxNs, 10_000_000)
	if got.IOPS != 5000 || got.MBps != 10000*4096/1e6/2 {
		t.Errorf("iops %v MB/s %v, want 5000 and %v", got.IOPS, got.MBps, 10000*4096/1e6/2)
	}

	back, err := got.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equals(h) {
		t.Errorf("decoded histogram differs from the recorded one")
	}
}

func TestSummaryFromHistogramEdgeCases(t *testing.T) {
	if got := SummaryFromHistogram(nil, 2, 0, time.Second); got != (ClassResult{Errors: 2}) {
		t.Errorf("nil histogram: %+v", got)
	}
	got := SummaryFromHistogram(NewHistogram(), 0, 0, 0)
	if got.Count != 0 || got.IOPS != 0 || got.P99Ns != 0 || got.Histogram == "" {
		t.Errorf("empty histogram, zero elapsed: %+v", got)
	}
	if err := got.validate(); err != nil {
		t.Errorf("summary of an empty histogram is invalid: %v", err)
	}
}

// TestHistogramEncodingIsStandard checks that histograms are stored in the
// form HdrHistogram's own tools read: base64 of the V2 compressed encoding,
// whose cookie makes every such string start "HISTF".
func TestHistogramEncodingIsStandard(t *testing.T) {
	h := NewHistogram()
	for _, v := range []int64{1, 10, 100, 1000, 1e6, 1e9, HistogramHighestNs} {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := EncodeHistogram(h)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "HISTFAAA") {
		t.Errorf("encoding starts %.12q, want HISTFAAA (single base64 of the V2 compressed form)", enc)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("not plain base64: %v", err)
	}
	if cookie := binary.BigEndian.Uint32(raw); cookie != 0x1c849314 {
		t.Errorf("cookie %#x, want 0x1c849314 (V2 compressed)", cookie)
	}
	if n := binary.BigEndian.Uint32(raw[4:]); int(n) != len(raw)-8 {
		t.Errorf("compressed length field %d, payload %d bytes", n, len(raw)-8)
	}
	back, err := hdrhistogram.Decode([]byte(enc))
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equals(h) || back.TotalCount() != 7 || back.SignificantFigures() != HistogramSigFigs {
		t.Errorf("hdrhistogram.Decode round trip lost data")
	}
}

func TestDecodeJavaHistogram(t *testing.T) {
	h, err := DecodeHistogram(javaHistogram)
	if err != nil {
		t.Fatalf("cannot read a histogram written by Java HdrHistogram: %v", err)
	}
	if h.TotalCount() == 0 {
		t.Errorf("decoded an empty histogram")
	}
	// And what we write back starts the way Java's does.
	enc, err := EncodeHistogram(h)
	if err != nil {
		t.Fatal(err)
	}
	if enc[:8] != javaHistogram[:8] {
		t.Errorf("re-encoded prefix %q, Java's %q", enc[:8], javaHistogram[:8])
	}
}

func TestDecodeHistogramErrors(t *testing.T) {
	for _, s := range []string{"", "HISTF", "not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := DecodeHistogram(s); !errors.Is(err, ErrHistogram) {
			t.Errorf("DecodeHistogram(%q) = %v, want ErrHistogram", s, err)
		}
	}
}
