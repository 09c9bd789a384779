package results

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reportRuns is the input of the report golden tests.
func reportRuns(t *testing.T) []*Result {
	spec := defaultSpec(0)
	spec.opsPerClass = 3000
	return synthRuns(t, spec, 1, 3)
}

func TestWriteHTMLGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, reportRuns(t), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "report.html.golden", buf.Bytes())
}

func TestWriteHTMLIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteHTML(&a, reportRuns(t), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&b, reportRuns(t), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two renderings of the same results differ")
	}
}

// xmlNamespace matches SVG namespace declarations, which name a namespace
// and are never fetched.
var xmlNamespace = regexp.MustCompile(`xmlns(:xlink)?="http://www\.w3\.org/[^"]*"`)

func TestWriteHTMLIsSelfContained(t *testing.T) {
	for _, embed := range []bool{false, true} {
		var buf bytes.Buffer
		if err := WriteHTML(&buf, reportRuns(t)[:1], ReportOptions{EmbedFonts: embed, Title: "a <b> title"}); err != nil {
			t.Fatal(err)
		}
		doc := xmlNamespace.ReplaceAllString(buf.String(), "")
		for _, bad := range []string{"http:", "https:", "<script", "<link", "<img", "@import", "<?xml"} {
			if strings.Contains(doc, bad) {
				t.Errorf("embed=%v: report contains %q", embed, bad)
			}
		}
		for _, want := range []string{"<!DOCTYPE html>", "<style>", "<svg", "a &lt;b&gt; title", "Latency by percentile", "99.99%", "origin-write-cow", "Engine / baseline", "store-queue-full"} {
			if !strings.Contains(doc, want) {
				t.Errorf("embed=%v: report lacks %q", embed, want)
			}
		}
		if got := strings.Count(doc, "<svg"); got != 4 {
			t.Errorf("embed=%v: %d SVG plots, want 4 (latency, IOPS bars, p99 bars, throughput)", embed, got)
		}
		if embed && !strings.Contains(doc, "@font-face") {
			t.Errorf("EmbedFonts did not embed fonts")
		}
	}
}

func TestWriteHTMLDegradedInputs(t *testing.T) {
	runs := reportRuns(t)[:2]
	// No baseline, no series, no histograms: tables only, but no failure.
	runs[0].Baseline, runs[0].Ratios, runs[0].Engine.Series = nil, nil, nil
	// A take during warmup, before measurement started.
	runs[1].Engine.Events = append(runs[1].Engine.Events, Event{Offset: -1500 * time.Millisecond, Kind: EventTake})
	for c, cr := range runs[1].Engine.Classes {
		cr.Histogram = ""
		runs[1].Engine.Classes[c] = cr
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, runs, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<td>-1.5s</td><td>take</td>") {
		t.Errorf("report lacks the warmup event")
	}
	if !strings.Contains(buf.String(), "has no baseline side") {
		t.Errorf("report does not warn about the missing baseline")
	}
	if !strings.Contains(buf.String(), "engine origin-write-cow: a run lacks a readable histogram") {
		t.Errorf("report does not warn about the missing histograms")
	}
	if err := WriteHTML(&buf, nil, ReportOptions{}); !errors.Is(err, ErrReport) {
		t.Errorf("WriteHTML(nil) = %v, want ErrReport", err)
	}
	if err := WriteHTML(&buf, runs, ReportOptions{MaxRunPlots: -1}); !errors.Is(err, ErrOptions) {
		t.Errorf("negative MaxRunPlots: %v, want ErrOptions", err)
	}
	// A result with only an empty engine side still renders.
	empty := &Result{Schema: SchemaV1, LoadMode: ClosedLoop}
	if err := WriteHTML(&buf, []*Result{empty}, ReportOptions{}); err != nil {
		t.Errorf("empty result: %v", err)
	}
}

func TestWritePNGs(t *testing.T) {
	dir := t.TempDir()
	if out := os.Getenv("RESULTS_PNG_DIR"); out != "" {
		dir = out // to look at the images: RESULTS_PNG_DIR=/tmp/x go test -run TestWritePNGs
	}
	paths, err := WritePNGs(dir, reportRuns(t)[:1], ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"latency.png", "engine-vs-baseline-iops.png", "engine-vs-baseline-p99.png", "throughput-run0.png"}
	if len(paths) != len(want) {
		t.Fatalf("wrote %q, want %q", paths, want)
	}
	for i, p := range paths {
		if filepath.Base(p) != want[i] {
			t.Errorf("file %d is %s, want %s", i, filepath.Base(p), want[i])
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 100 {
			t.Errorf("%s: %v is too small", p, b)
		}
	}
	if _, err := WritePNGs(filepath.Join(dir, "missing"), reportRuns(t), ReportOptions{}); !errors.Is(err, ErrWrite) {
		t.Errorf("WritePNGs into a missing directory: %v, want ErrWrite", err)
	}
}

func TestWriteHTMLZeroLatency(t *testing.T) {
	// A recorded 0ns must not break the log latency axis.
	h := NewHistogram()
	for range 100 {
		_ = h.RecordValue(0)
	}
	_ = h.RecordValue(5000)
	r := &Result{Schema: SchemaV1, LoadMode: ClosedLoop, Engine: Side{Duration: 1e9, Classes: map[Class]ClassResult{
		ImageRead: SummaryFromHistogram(h, 0, 0, 1e9),
	}}}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, []*Result{r}, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `id="latency"`) {
		t.Error("no latency plot")
	}
}
