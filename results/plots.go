package results

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Plot bounds. They keep a pathological result from producing a huge or
// unreadable figure.
const (
	curvePointsPerDecade = 20
	maxEventMarkers      = 200
	maxEventLabels       = 20
	figureMargin         = vg.Length(6)
)

// figure is one plot, drawn the same way into SVG and PNG canvases.
type figure struct {
	// name is the PNG file stem and the HTML anchor.
	name          string
	caption       string
	width, height vg.Length
	draw          func(draw.Canvas)
}

// sansFont is the font of every plot text. It is one of the Liberation
// fonts compiled into gonum/plot, so text measures the same everywhere and
// the output does not depend on the fonts installed.
var sansFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

var classColors = map[Class]color.RGBA{
	OriginWrite:       {0x1f, 0x77, 0xb4, 0xff},
	OriginWriteCoW:    {0xd6, 0x27, 0x28, 0xff},
	OriginWriteCopied: {0xff, 0x7f, 0x0e, 0xff},
	ImageRead:         {0x2c, 0xa0, 0x2c, 0xff},
	ImageReadOriginal: {0x17, 0xbe, 0xcf, 0xff},
	ImageReadMemory:   {0x94, 0x67, 0xbd, 0xff},
	ImageReadDiff:     {0x8c, 0x56, 0x4b, 0xff},
	ImageWrite:        {0xe3, 0x77, 0xc2, 0xff},
}

var (
	engineColor   = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	baselineColor = color.RGBA{0x99, 0x99, 0x99, 0xff}
	takeColor     = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	eventColor    = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	baselineDash  = []vg.Length{vg.Points(5), vg.Points(3)}
)

// newPlot returns a plot with every text in sansFont.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(sansFont, 12)
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 10)
		a.Tick.Label.Font = font.From(sansFont, 9)
	}
	p.Legend.TextStyle.Font = font.From(sansFont, 9)
	return p
}

// legendItem is one legend entry.
type legendItem struct {
	label string
	thumb plot.Thumbnailer
}

// drawWithLegend draws p with its legend in a column to the right of the
// plot, where it cannot hide data however many entries it has.
func drawWithLegend(p *plot.Plot, items []legendItem) func(draw.Canvas) {
	return func(c draw.Canvas) {
		// Background first, so the margin and legend column are white too.
		c.SetColor(color.White)
		c.Fill(c.Rectangle.Path())
		c = draw.Crop(c, figureMargin, -figureMargin, figureMargin, -figureMargin)
		if len(items) == 0 {
			p.Draw(c)
			return
		}
		l := plot.NewLegend()
		l.TextStyle.Font = font.From(sansFont, 9)
		l.Top, l.Left = true, true
		l.ThumbnailWidth = vg.Points(24)
		width := vg.Length(0)
		for _, it := range items {
			l.Add(it.label, it.thumb)
			width = max(width, l.TextStyle.Rectangle(it.label).Max.X)
		}
		width += l.ThumbnailWidth + vg.Points(16)
		p.Draw(draw.Crop(c, 0, -width, 0, 0))
		l.Draw(draw.Crop(c, c.Max.X-c.Min.X-width+vg.Points(8), 0, 0, -vg.Points(24)))
	}
}

func lineStyle(clr color.Color, dashed bool) draw.LineStyle {
	ls := draw.LineStyle{Color: clr, Width: vg.Points(1.5)}
	if dashed {
		ls.Dashes = baselineDash
	}
	return ls
}

// latencyUnit picks ns, µs or ms for latencies up to maxNs and returns the
// divisor that converts nanoseconds to it.
func latencyUnit(maxNs float64) (string, float64) {
	switch {
	case maxNs < 10e3:
		return "ns", 1
	case maxNs < 10e6:
		return "µs", 1e3
	default:
		return "ms", 1e6
	}
}

// curve is one line of the percentile plot.
type curve struct {
	side  string
	class Class
	hist  *hdrhistogram.Histogram
}

// percentilePoints returns the points of an HdrHistogram percentile curve:
// x is 1/(1-p), so that each further nine of the percentile takes the same
// width on a log axis, and y the latency at p divided by div.
func percentilePoints(h *hdrhistogram.Histogram, div float64) plotter.XYs {
	n := float64(h.TotalCount())
	var xys plotter.XYs
	last := 0.0
	for k := 0; ; k++ {
		x := math.Pow(10, float64(k)/curvePointsPerDecade)
		if x > n {
			break
		}
		xys = append(xys, plotter.XY{X: x, Y: latencyAt(h, 100*(1-1/x), div)})
		last = x
	}
	if last < n {
		xys = append(xys, plotter.XY{X: n, Y: latencyAt(h, 100*(1-1/n), div)})
	}
	return xys
}

// latencyAt returns h's value at percentile p divided by div, at least 1ns
// so that a recorded zero cannot break a log axis.
func latencyAt(h *hdrhistogram.Histogram, p, div float64) float64 {
	return float64(max(h.ValueAtPercentile(p), 1)) / div
}

// percentileLabel labels the x position 10^k of the percentile axis:
// 0%, 90%, 99%, 99.9%, ...
func percentileLabel(k int) string {
	switch k {
	case 0:
		return "0%"
	case 1:
		return "90%"
	case 2:
		return "99%"
	default:
		return "99." + strings.Repeat("9", k-2) + "%"
	}
}

// percentileTicks labels decades of 1/(1-p) up to 10^maxK with the
// percentile they stand for, and marks the other integers as minor ticks.
func percentileTicks(maxK int) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for k := 0; k <= maxK; k++ {
		base := math.Pow10(k)
		ticks = append(ticks, plot.Tick{Value: base, Label: percentileLabel(k)})
		if k < maxK {
			for m := 2; m < 10; m++ {
				ticks = append(ticks, plot.Tick{Value: base * float64(m)})
			}
		}
	}
	return ticks
}

// logTicks marks a log axis with labels at each decade and, when the axis
// spans at most two decades, at 2 and 5 times each decade as well.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	dense := e1-e0 <= 2
	var ticks []plot.Tick
	for e := e0; e <= e1 && e-e0 < 30; e++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow10(e)
			t := plot.Tick{Value: v}
			if m == 1 || (dense && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// niceLogBounds widens [lo, hi] to the nearest 1, 2 or 5 times a power of
// ten, so that a log axis starts and ends on a labelled tick.
func niceLogBounds(lo, hi float64) (float64, float64) {
	nice := []float64{1, 2, 5, 10}
	down := func(v float64) float64 {
		p := math.Pow10(int(math.Floor(math.Log10(v))))
		for i := len(nice) - 1; i >= 0; i-- {
			if nice[i]*p <= v*(1+1e-9) {
				return nice[i] * p
			}
		}
		return p
	}
	up := func(v float64) float64 {
		p := math.Pow10(int(math.Floor(math.Log10(v))))
		for _, m := range nice {
			if m*p >= v*(1-1e-9) {
				return m * p
			}
		}
		return 10 * p
	}
	lo, hi = down(lo), up(hi)
	if hi <= lo {
		hi = up(lo * 1.01)
	}
	return lo, hi
}

// countTicks labels a linear axis of rates with SI suffixes.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = compactCount(ticks[i].Value)
		}
	}
	return ticks
}

// compactCount formats a tick value with an SI suffix and no trailing
// zeros: 0, 500, 1.5k, 2M.
func compactCount(v float64) string {
	suffixes := []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}}
	for _, s := range suffixes {
		if math.Abs(v) >= s.div {
			return strconv.FormatFloat(v/s.div, 'g', 4, 64) + s.suffix
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// latencyFigure draws latency against percentile for every class of both
// sides, HdrHistogram style.
func latencyFigure(engine, baseline pooledSide, linear bool) (figure, bool) {
	var curves []curve
	for _, s := range []struct {
		name string
		side pooledSide
	}{{"engine", engine}, {"baseline", baseline}} {
		for _, c := range sortedClasses(s.side) {
			if pc := s.side[c]; pc.hist != nil {
				curves = append(curves, curve{s.name, c, pc.hist})
			}
		}
	}
	if len(curves) == 0 {
		return figure{}, false
	}
	maxNs, minNs, maxN := 0.0, math.Inf(1), 0.0
	for _, cv := range curves {
		maxNs = max(maxNs, float64(max(cv.hist.Max(), 1)))
		minNs = min(minNs, float64(max(cv.hist.Min(), 1)))
		maxN = max(maxN, float64(cv.hist.TotalCount()))
	}
	unit, div := latencyUnit(maxNs)
	p := newPlot("Latency by percentile", "percentile", "latency ("+unit+")")
	maxK := max(2, int(math.Ceil(math.Log10(maxN))))
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = 1, math.Pow10(maxK)
	p.X.Tick.Marker = percentileTicks(maxK)
	if linear {
		p.Y.Min = 0
	} else {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	addGrid(p)
	var items []legendItem
	for _, cv := range curves {
		line, err := plotter.NewLine(percentilePoints(cv.hist, div))
		if err != nil {
			continue
		}
		line.LineStyle = lineStyle(classColors[cv.class], cv.side == "baseline")
		p.Add(line)
		items = append(items, legendItem{cv.side + " " + string(cv.class), line})
	}
	if linear {
		p.Y.Max *= 1.05 // headroom, so the tail does not run along the edge
	} else {
		p.Y.Min, p.Y.Max = niceLogBounds(minNs/div, maxNs/div)
	}
	return figure{
		name:    "latency",
		caption: "Latency by percentile (x: 1/(1-p) on a log scale; solid: engine, dashed: baseline; all runs merged).",
		width:   8 * vg.Inch, height: 4.5 * vg.Inch,
		draw: drawWithLegend(p, items),
	}, true
}

// seriesLine returns total IOPS per interval, at interval midpoints.
func seriesLine(series []SeriesPoint) plotter.XYs {
	xys := make(plotter.XYs, 0, len(series))
	for _, pt := range series {
		xys = append(xys, plotter.XY{X: (pt.Offset + pt.Length/2).Seconds(), Y: pt.IOPS()})
	}
	return xys
}

// eventMarkers draws a vertical line, labelled with its kind, at each event.
type eventMarkers struct {
	events []Event
}

func (m eventMarkers) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	label := draw.TextStyle{
		Color:    color.Black,
		Font:     font.From(sansFont, 8),
		Rotation: math.Pi / 2,
		XAlign:   draw.XRight,
		YAlign:   draw.YTop,
		Handler:  p.TextHandler,
	}
	lastLabelX := vg.Length(math.Inf(-1))
	labels := 0
	for i, e := range m.events {
		if i >= maxEventMarkers {
			break
		}
		x := trX(e.Offset.Seconds())
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		ls := draw.LineStyle{Color: eventColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		if e.Kind == EventTake {
			ls = draw.LineStyle{Color: takeColor, Width: vg.Points(1.5)}
		}
		c.StrokeLine2(ls, x, c.Min.Y, x, c.Max.Y)
		if labels < maxEventLabels && x-lastLabelX > vg.Points(10) {
			c.FillText(label, vg.Point{X: x + vg.Points(2), Y: c.Max.Y - vg.Points(2)}, e.Kind)
			lastLabelX = x
			labels++
		}
	}
}

// throughputFigure draws total IOPS over time of one run, engine and
// baseline, with the engine side's events marked.
func throughputFigure(r *Result, index int) (figure, bool) {
	if len(r.Engine.Series) == 0 && (r.Baseline == nil || len(r.Baseline.Series) == 0) {
		return figure{}, false
	}
	p := newPlot(fmt.Sprintf("Throughput over time, run %d", r.RunIndex), "time since measurement start (s)", "IOPS")
	p.X.Min, p.Y.Min = 0, 0
	p.Y.Tick.Marker = countTicks{}
	addGrid(p)
	var items []legendItem
	for _, s := range []struct {
		name string
		side *Side
	}{{"engine", &r.Engine}, {"baseline", r.Baseline}} {
		if s.side == nil || len(s.side.Series) == 0 {
			continue
		}
		line, err := plotter.NewLine(seriesLine(s.side.Series))
		if err != nil {
			continue
		}
		clr := engineColor
		if s.name == "baseline" {
			clr = baselineColor
		}
		line.LineStyle = lineStyle(clr, s.name == "baseline")
		p.Add(line)
		items = append(items, legendItem{s.name + " IOPS", line})
	}
	p.Y.Max *= 1.1 // headroom above the highest point
	p.X.Max = max(p.X.Max, r.Engine.Duration.Seconds())
	if r.Baseline != nil {
		p.X.Max = max(p.X.Max, r.Baseline.Duration.Seconds())
	}
	if len(r.Engine.Events) > 0 {
		p.Add(eventMarkers{r.Engine.Events})
		for _, e := range r.Engine.Events {
			p.X.Min = min(p.X.Min, e.Offset.Seconds())
			p.X.Max = max(p.X.Max, e.Offset.Seconds())
		}
		if slices.ContainsFunc(r.Engine.Events, func(e Event) bool { return e.Kind == EventTake }) {
			items = append(items, legendItem{EventTake, legendLine{draw.LineStyle{Color: takeColor, Width: vg.Points(1.5)}}})
		}
		if slices.ContainsFunc(r.Engine.Events, func(e Event) bool { return e.Kind != EventTake }) {
			items = append(items, legendItem{"event", legendLine{draw.LineStyle{Color: eventColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}}})
		}
	}
	return figure{
		name:    fmt.Sprintf("throughput-run%d", index),
		caption: fmt.Sprintf("IOPS per interval of run %d (solid: engine, dashed: baseline); vertical lines mark the snapshot take and other engine events.", r.RunIndex),
		width:   8 * vg.Inch, height: 3.5 * vg.Inch,
		draw: drawWithLegend(p, items),
	}, true
}

// latencyOverTimeFigure draws, per second of one run, the p99 (solid) and
// p50 (thin) latency of the aggregate classes, the baseline's p99 dashed,
// with the take and the engine's events marked: a stall is a spike here.
func latencyOverTimeFigure(r *Result, index int) (figure, bool) {
	type line struct {
		side  string
		class Class
		p50   bool
		xys   plotter.XYs
	}
	var lines []line
	maxNs, minNs := 0.0, math.Inf(1)
	add := func(side string, sd *Side, c Class, p50 bool) {
		var xys plotter.XYs
		for _, pt := range sd.Series {
			l, ok := pt.ClassLatency[c]
			if !ok {
				continue
			}
			v := float64(max(l.P99Ns, 1))
			if p50 {
				v = float64(max(l.P50Ns, 1))
			}
			maxNs, minNs = max(maxNs, v), min(minNs, v)
			xys = append(xys, plotter.XY{X: (pt.Offset + pt.Length/2).Seconds(), Y: v})
		}
		if len(xys) > 0 {
			lines = append(lines, line{side, c, p50, xys})
		}
	}
	for _, c := range Classes {
		if !c.Aggregate() {
			continue
		}
		add("engine", &r.Engine, c, false)
		add("engine", &r.Engine, c, true)
		if r.Baseline != nil {
			add("baseline", r.Baseline, c, false)
		}
	}
	if len(lines) == 0 {
		return figure{}, false
	}
	unit, div := latencyUnit(maxNs)
	p := newPlot(fmt.Sprintf("Latency over time, run %d", r.RunIndex), "time since measurement start (s)", "latency ("+unit+")")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	addGrid(p)
	var items []legendItem
	for _, l := range lines {
		for i := range l.xys {
			l.xys[i].Y /= div
		}
		pl, err := plotter.NewLine(l.xys)
		if err != nil {
			continue
		}
		pl.LineStyle = lineStyle(classColors[l.class], l.side == "baseline")
		name := l.side + " " + string(l.class) + " p99"
		if l.p50 {
			pl.LineStyle.Width = vg.Points(0.6)
			name = l.side + " " + string(l.class) + " p50"
		}
		p.Add(pl)
		items = append(items, legendItem{name, pl})
	}
	p.X.Min = 0
	p.X.Max = max(p.X.Max, r.Engine.Duration.Seconds())
	p.Y.Min, p.Y.Max = niceLogBounds(minNs/div, maxNs/div)
	if len(r.Engine.Events) > 0 {
		p.Add(eventMarkers{r.Engine.Events})
		for _, e := range r.Engine.Events {
			p.X.Min = min(p.X.Min, e.Offset.Seconds())
		}
	}
	return figure{
		name:    fmt.Sprintf("latency-over-time-run%d", index),
		caption: fmt.Sprintf("Latency per second of run %d by class: p99 (thick), p50 (thin), baseline p99 dashed; vertical lines mark the snapshot take and other engine events.", r.RunIndex),
		width:   8 * vg.Inch, height: 3.5 * vg.Inch,
		draw: drawWithLegend(p, items),
	}, true
}

// legendLine is a legend thumbnail for a line style.
type legendLine struct{ draw.LineStyle }

func (l legendLine) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(l.LineStyle, c.Min.X, y, c.Max.X, y)
}

// barFigure draws engine against baseline bars, one pair per class.
func barFigure(name, title, xLabel, caption string, classes []Class, engine, baseline []float64) (figure, bool) {
	if len(classes) == 0 {
		return figure{}, false
	}
	p := newPlot(title, xLabel, "")
	p.X.Min = 0
	p.X.Tick.Marker = countTicks{}
	n := len(classes)
	// NominalY puts the first name at the bottom; reverse so the report
	// order reads top to bottom.
	names := make([]string, n)
	engVals, baseVals := make(plotter.Values, n), make(plotter.Values, n)
	for i, c := range classes {
		j := n - 1 - i
		names[j], engVals[j], baseVals[j] = string(c), engine[i], baseline[i]
	}
	barWidth := vg.Points(9)
	engBars, err := plotter.NewBarChart(engVals, barWidth)
	if err != nil {
		return figure{}, false
	}
	baseBars, err := plotter.NewBarChart(baseVals, barWidth)
	if err != nil {
		return figure{}, false
	}
	for _, b := range []*plotter.BarChart{engBars, baseBars} {
		b.Horizontal = true
		b.LineStyle.Width = 0
	}
	engBars.Color, engBars.Offset = engineColor, barWidth/2
	baseBars.Color, baseBars.Offset = baselineColor, -barWidth/2
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{0xdd}
	grid.Horizontal.Color = nil
	p.Add(grid, engBars, baseBars)
	p.NominalY(names...)
	p.X.Max *= 1.05 // headroom, so the longest bar does not touch the edge
	return figure{
		name:    name,
		caption: caption,
		width:   8 * vg.Inch, height: vg.Length(1.1+0.32*float64(n)) * vg.Inch,
		draw: drawWithLegend(p, []legendItem{{"engine", engBars}, {"baseline (matched)", baseBars}}),
	}, true
}

// compareFigures draws engine against matched baseline IOPS (aggregate
// classes only) and p99 (every class).
func compareFigures(engine, baseline pooledSide) []figure {
	baseSums := make(map[Class]ClassResult, len(baseline))
	for c, pc := range baseline {
		baseSums[c] = pc.sum
	}
	var iopsClasses, p99Classes []Class
	var iopsEng, iopsBase, p99Eng, p99Base []float64
	maxP99 := 0.0
	for _, c := range sortedClasses(engine) {
		bc, ok := BaselineClassFor(c, baseSums)
		if !ok {
			continue
		}
		eng, base := engine[c].sum, baseSums[bc]
		if c.Aggregate() {
			iopsClasses = append(iopsClasses, c)
			iopsEng, iopsBase = append(iopsEng, eng.IOPS), append(iopsBase, base.IOPS)
		}
		p99Classes = append(p99Classes, c)
		p99Eng, p99Base = append(p99Eng, float64(eng.P99Ns)), append(p99Base, float64(base.P99Ns))
		maxP99 = max(maxP99, float64(eng.P99Ns), float64(base.P99Ns))
	}
	unit, div := latencyUnit(maxP99)
	for i := range p99Eng {
		p99Eng[i] /= div
		p99Base[i] /= div
	}
	var figs []figure
	if f, ok := barFigure("engine-vs-baseline-iops", "IOPS: engine against baseline", "IOPS (median over runs)",
		"IOPS of the aggregate classes against the matched baseline class (medians over runs).",
		iopsClasses, iopsEng, iopsBase); ok {
		figs = append(figs, f)
	}
	if f, ok := barFigure("engine-vs-baseline-p99", "p99 latency: engine against baseline", "p99 latency ("+unit+")",
		"p99 latency of each class against the matched baseline class (all runs merged).",
		p99Classes, p99Eng, p99Base); ok {
		figs = append(figs, f)
	}
	return figs
}

// render draws f on canvas c, turning a panic inside gonum/plot (which it
// uses for impossible axis ranges) into an error.
func render(f figure, c draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: figure %s: %v", ErrReport, f.name, r)
		}
	}()
	f.draw(c)
	return nil
}

// renderSVG returns f as an SVG document. The output depends only on f's
// data: no timestamps, and fonts are either referenced by name or embedded.
func renderSVG(f figure, embedFonts bool) ([]byte, error) {
	c := vgsvg.NewWith(vgsvg.UseWH(f.width, f.height), vgsvg.EmbedFonts(embedFonts))
	if err := render(f, draw.New(c)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("%w: figure %s: %w", ErrReport, f.name, err)
	}
	return buf.Bytes(), nil
}

// renderPNG returns f as a PNG image.
func renderPNG(f figure, dpi int) ([]byte, error) {
	c := vgimg.NewWith(vgimg.UseWH(f.width, f.height), vgimg.UseDPI(dpi))
	if err := render(f, draw.New(c)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("%w: figure %s: %w", ErrReport, f.name, err)
	}
	return buf.Bytes(), nil
}

// addGrid draws the light grid every figure has.
func addGrid(p *plot.Plot) {
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{0xdd}
	grid.Horizontal.Color = color.Gray{0xdd}
	p.Add(grid)
}
