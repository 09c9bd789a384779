package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for ReportOptions.
const (
	DefaultReportTitle = "snapring benchmark report"
	DefaultMaxRunPlots = 10
	DefaultPNGDPI      = 96
)

// ReportOptions configures WriteHTML and WritePNGs.
type ReportOptions struct {
	// Title heads the HTML report (default DefaultReportTitle).
	Title string
	// EmbedFonts embeds the plot fonts in each SVG, so the plots look the
	// same in every browser at the cost of about 1 MB per plot. Without it
	// the SVGs name the font (Liberation Sans) and browsers substitute.
	EmbedFonts bool
	// LinearLatency draws the percentile plot's latency axis linear instead
	// of logarithmic.
	LinearLatency bool
	// MaxRunPlots bounds the number of per-run throughput plots
	// (default DefaultMaxRunPlots).
	MaxRunPlots int
	// PNGDPI is the resolution of WritePNGs's images (default DefaultPNGDPI).
	PNGDPI int
}

// EnsureDefaults replaces zero fields with their defaults.
func (o *ReportOptions) EnsureDefaults() {
	if o.Title == "" {
		o.Title = DefaultReportTitle
	}
	if o.MaxRunPlots == 0 {
		o.MaxRunPlots = DefaultMaxRunPlots
	}
	if o.PNGDPI == 0 {
		o.PNGDPI = DefaultPNGDPI
	}
}

// Validate reports options that make no sense.
func (o ReportOptions) Validate() error {
	if o.MaxRunPlots < 0 || o.MaxRunPlots > 1000 {
		return fmt.Errorf("%w: MaxRunPlots %d is not within 0..1000", ErrOptions, o.MaxRunPlots)
	}
	if o.PNGDPI < 0 || o.PNGDPI > 1200 {
		return fmt.Errorf("%w: PNGDPI %d is not within 1..1200", ErrOptions, o.PNGDPI)
	}
	return nil
}

// report is what the HTML and PNG outputs are made from.
type report struct {
	runs     []*Result
	engine   pooledSide
	baseline pooledSide
	ratios   map[Class]Ratio
	figures  []figure
	warnings []string
}

func buildReport(results []*Result, opts ReportOptions) (*report, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	runs := nonNil(results)
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w: no results", ErrReport)
	}
	rp := &report{
		runs:     runs,
		engine:   poolSide(runs, func(r *Result) *Side { return &r.Engine }),
		baseline: poolSide(runs, func(r *Result) *Side { return r.Baseline }),
		ratios:   poolRatios(runs),
	}
	rp.warnings = append(runWarnings("", runs), consistencyWarnings(runs)...)
	if f, ok := latencyFigure(rp.engine, rp.baseline, opts.LinearLatency); ok {
		rp.figures = append(rp.figures, f)
	}
	for _, s := range []struct {
		name string
		side pooledSide
	}{{"engine", rp.engine}, {"baseline", rp.baseline}} {
		for _, c := range sortedClasses(s.side) {
			if s.side[c].hist == nil {
				rp.warnings = append(rp.warnings, fmt.Sprintf("%s %s: a run lacks a readable histogram, so it has no percentile curve and its percentiles are medians of the runs' summaries", s.name, c))
			}
		}
	}
	rp.figures = append(rp.figures, compareFigures(rp.engine, rp.baseline)...)
	for i, r := range runs {
		if i >= opts.MaxRunPlots {
			rp.warnings = append(rp.warnings, fmt.Sprintf("throughput plotted for the first %d of %d runs only", opts.MaxRunPlots, len(runs)))
			break
		}
		if f, ok := throughputFigure(r, i); ok {
			rp.figures = append(rp.figures, f)
		}
		if f, ok := latencyOverTimeFigure(r, i); ok {
			rp.figures = append(rp.figures, f)
		}
	}
	return rp, nil
}

// WriteHTML writes one self-contained HTML file about results (normally the
// repetitions of one scenario): plots as inline SVG, summary tables, inline
// CSS, and no reference to anything outside the file. The output depends
// only on results and opts, so it can be compared with a golden file.
func WriteHTML(w io.Writer, results []*Result, opts ReportOptions) error {
	opts.EnsureDefaults()
	rp, err := buildReport(results, opts)
	if err != nil {
		return err
	}
	data := htmlData{Title: opts.Title, Warnings: rp.warnings}
	for _, f := range rp.figures {
		svg, err := renderSVG(f, opts.EmbedFonts)
		if err != nil {
			return err
		}
		data.Figures = append(data.Figures, htmlFigure{
			Name:    f.name,
			Caption: f.caption,
			// The SVG comes from gonum/plot, which escapes all text it draws.
			SVG: template.HTML(inlineSVG(svg)),
		})
	}
	rp.fillTables(&data)
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("%w: %w", ErrReport, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// inlineSVG drops the XML prolog and generator comment, which have no place
// inside an HTML document.
func inlineSVG(doc []byte) string {
	s := string(doc)
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	return strings.TrimSpace(s)
}

// WritePNGs writes each plot of the report as a PNG file in dir (for CI
// artifacts) and returns the paths written. Files are named after the plot:
// latency.png, engine-vs-baseline-iops.png, engine-vs-baseline-p99.png,
// throughput-run0.png, ...
func WritePNGs(dir string, results []*Result, opts ReportOptions) ([]string, error) {
	var o Outputs
	defer o.Abort()
	paths, err := o.StagePNGs(dir, results, opts)
	if err != nil {
		return nil, err
	}
	return paths, o.Commit()
}

type namedPNG struct {
	name string
	data []byte
}

// renderPNGs renders every figure of the report as PNG.
func renderPNGs(results []*Result, opts ReportOptions) ([]namedPNG, error) {
	opts.EnsureDefaults()
	rp, err := buildReport(results, opts)
	if err != nil {
		return nil, err
	}
	var out []namedPNG
	for _, f := range rp.figures {
		png, err := renderPNG(f, opts.PNGDPI)
		if err != nil {
			return nil, err
		}
		out = append(out, namedPNG{name: f.name, data: png})
	}
	return out, nil
}

type htmlFigure struct {
	Name, Caption string
	SVG           template.HTML
}

type htmlTable struct {
	Title   string
	Note    string
	Headers []string
	Rows    [][]string
}

type htmlData struct {
	Title    string
	Warnings []string
	Figures  []htmlFigure
	Tables   []htmlTable
	Scenario string
}

func (rp *report) fillTables(data *htmlData) {
	data.Tables = append(data.Tables, rp.runsTable(), rp.envTable())
	for _, s := range []struct {
		name string
		side pooledSide
	}{{"Engine", rp.engine}, {"Baseline", rp.baseline}} {
		if len(s.side) > 0 {
			data.Tables = append(data.Tables, classTable(s.name, s.side, len(rp.runs)))
		}
	}
	if len(rp.ratios) > 0 {
		data.Tables = append(data.Tables, rp.ratioTable())
	}
	if t, ok := rp.countersTable(); ok {
		data.Tables = append(data.Tables, t)
	}
	if t, ok := rp.eventsTable(); ok {
		data.Tables = append(data.Tables, t)
	}
	data.Tables = append(data.Tables, rp.memoryTable())
	if sc := rp.runs[0].Scenario; len(sc) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, sc, "", "  ") == nil {
			data.Scenario = buf.String()
		} else {
			data.Scenario = string(sc)
		}
	}
}

func (rp *report) runsTable() htmlTable {
	t := htmlTable{
		Title:   "Runs",
		Headers: []string{"run", "start (UTC)", "duration", "load mode", "partial", "engine duration", "baseline duration", "commit"},
	}
	for _, r := range rp.runs {
		baseDur := "not run"
		if r.Baseline != nil {
			baseDur = r.Baseline.Duration.Round(time.Millisecond).String()
		}
		t.Rows = append(t.Rows, []string{
			strconv.Itoa(r.RunIndex), r.Start.UTC().Format(time.RFC3339), r.Duration.Round(time.Millisecond).String(),
			string(r.LoadMode), yesNo(r.Partial), r.Engine.Duration.Round(time.Millisecond).String(), baseDur, r.Env.Commit,
		})
	}
	return t
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (rp *report) envTable() htmlTable {
	e := rp.runs[0].Env
	t := htmlTable{Title: "Environment", Note: "Of the first run."}
	t.Rows = [][]string{
		{"host", e.Hostname},
		{"kernel", e.KernelRelease},
		{"machine", e.Machine},
		{"CPU", e.CPUModel},
		{"CPUs (usable)", fmt.Sprintf("%d (%d)", e.CPUs, e.UsableCPUs)},
		{"Go", e.GoVersion},
		{"commit", e.Commit},
		{"backing", strings.TrimSpace(e.BackingFS + " " + e.BackingPath)},
	}
	return t
}

func classTable(side string, ps pooledSide, runs int) htmlTable {
	t := htmlTable{
		Title: side + " latency and throughput",
		Note: fmt.Sprintf("Percentiles over all operations of %d run(s) (histograms merged); IOPS and MB/s are medians over runs; count, errors and bytes are totals.",
			runs),
		Headers: []string{"class", "runs", "count", "errors", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max", "IOPS", "MB/s", "bytes"},
	}
	for _, c := range sortedClasses(ps) {
		s := ps[c].sum
		t.Rows = append(t.Rows, []string{
			string(c), strconv.Itoa(ps[c].runs), strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Errors, 10),
			formatNs(float64(s.MeanNs)), formatNs(float64(s.P50Ns)), formatNs(float64(s.P90Ns)), formatNs(float64(s.P99Ns)),
			formatNs(float64(s.P999Ns)), formatNs(float64(s.P9999Ns)), formatNs(float64(s.MaxNs)),
			formatCount(s.IOPS), sig3(s.MBps), formatBytes(s.Bytes),
		})
	}
	return t
}

func (rp *report) ratioTable() htmlTable {
	t := htmlTable{
		Title:   "Engine / baseline",
		Note:    "Medians over runs. Latency ratios above 1 and throughput ratios below 1 are the cost of the snapshot. Throughput ratios are given for aggregate classes only.",
		Headers: []string{"class", "baseline class", "IOPS", "MB/s", "p50", "p99"},
	}
	for _, c := range sortedClasses(rp.ratios) {
		r := rp.ratios[c]
		t.Rows = append(t.Rows, []string{string(c), string(r.Baseline), ratioCell(r.IOPS), ratioCell(r.MBps), ratioCell(r.P50), ratioCell(r.P99)})
	}
	return t
}

func ratioCell(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 3, 64) + "x"
}

func (rp *report) countersTable() (htmlTable, bool) {
	names := make(map[string]bool)
	for _, r := range rp.runs {
		for n := range r.Engine.Counters {
			names[n] = true
		}
	}
	if len(names) == 0 {
		return htmlTable{}, false
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	t := htmlTable{Title: "Engine counters", Note: "At the end of the engine side.", Headers: append([]string{"run"}, sorted...)}
	for _, r := range rp.runs {
		row := []string{strconv.Itoa(r.RunIndex)}
		for _, n := range sorted {
			v, ok := r.Engine.Counters[n]
			cell := "-"
			if ok {
				cell = strconv.FormatInt(v, 10)
			}
			row = append(row, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, true
}

func (rp *report) eventsTable() (htmlTable, bool) {
	t := htmlTable{Title: "Events", Note: "Offsets from the start of the engine side's measurement; negative during warmup.", Headers: []string{"run", "offset", "kind", "device", "detail"}}
	for _, r := range rp.runs {
		for i, e := range r.Engine.Events {
			if i >= maxEventMarkers {
				t.Rows = append(t.Rows, []string{strconv.Itoa(r.RunIndex), "", fmt.Sprintf("(%d more)", len(r.Engine.Events)-i), "", ""})
				break
			}
			t.Rows = append(t.Rows, []string{strconv.Itoa(r.RunIndex), e.Offset.Round(time.Millisecond).String(), e.Kind, e.Device, e.Detail})
		}
	}
	return t, len(t.Rows) > 0
}

func (rp *report) memoryTable() htmlTable {
	t := htmlTable{Title: "Memory", Headers: []string{"run", "side", "RSS", "RSS peak", "Go heap", "Go heap peak"}}
	for _, r := range rp.runs {
		for _, s := range []struct {
			name string
			side *Side
		}{{"engine", &r.Engine}, {"baseline", r.Baseline}} {
			if s.side == nil {
				continue
			}
			m := s.side.Memory
			t.Rows = append(t.Rows, []string{strconv.Itoa(r.RunIndex), s.name,
				formatBytes(m.RSSBytes), formatBytes(m.RSSPeakBytes), formatBytes(m.HeapBytes), formatBytes(m.HeapPeakBytes)})
		}
	}
	return t
}

// htmlTemplate is the report page. The rule for "figure svg text" overrides
// the font named inside the SVGs: the plots are laid out with Liberation
// Sans metrics, and Arial has the same metrics, so either keeps every label
// where gonum/plot measured it.
var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
figure svg text { font-family: "Liberation Sans", Arial, Helvetica, sans-serif !important; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f3f3f3; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child { text-align: left; }
.note { font-size: 0.9em; color: #555; }
.warning { background: #fff4e0; border-left: 4px solid #f0a030; padding: 0.4em 0.8em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Warnings}}<p class="warning">{{.}}</p>
{{end}}
{{- range .Figures}}
<figure id="{{.Name}}">
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{end}}
{{- range .Tables}}
<h2>{{.Title}}</h2>
{{if .Note}}<p class="note">{{.Note}}</p>
{{end -}}
<table>
{{if .Headers}}<tr>{{range .Headers}}<th>{{.}}</th>{{end}}</tr>
{{end -}}
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end -}}
</table>
{{end}}
{{- if .Scenario}}
<h2>Scenario</h2>
<pre>{{.Scenario}}</pre>
{{end -}}
</body>
</html>
`))

// WriteHTMLFile writes the HTML report to path atomically.
func WriteHTMLFile(path string, results []*Result, opts ReportOptions) error {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, results, opts); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}
