package results

import (
	"fmt"
	"math"
	"strconv"
)

// formatNs formats a latency in nanoseconds with three significant digits
// and the unit that keeps the number readable: 850ns, 12.3µs, 1.25ms, 2.50s.
func formatNs(ns float64) string {
	abs := math.Abs(ns)
	switch {
	case abs < 1e3:
		return sig3(ns) + "ns"
	case abs < 1e6:
		return sig3(ns/1e3) + "µs"
	case abs < 1e9:
		return sig3(ns/1e6) + "ms"
	default:
		return sig3(ns/1e9) + "s"
	}
}

// formatCount formats an operation rate or count with an SI suffix.
func formatCount(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs < 1e3:
		return sig3(v)
	case abs < 1e6:
		return sig3(v/1e3) + "k"
	case abs < 1e9:
		return sig3(v/1e6) + "M"
	default:
		return sig3(v/1e9) + "G"
	}
}

// formatBytes formats a byte count in binary units.
func formatBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return strconv.FormatInt(b, 10) + " B"
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%s %ciB", sig3(float64(b)/float64(div)), "KMGTPE"[exp])
}

// sig3 formats v with three significant digits, without an exponent for the
// magnitudes formatNs and formatCount produce.
func sig3(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs == 0:
		return "0"
	case abs >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case abs >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// formatMetric formats a value of metric m from group g.
func formatMetric(g Group, m Metric, v float64) string {
	switch {
	case g == GroupRatio:
		return strconv.FormatFloat(v, 'f', 3, 64) + "x"
	case m.latency():
		return formatNs(v)
	case m == MetricIOPS:
		return formatCount(v) + " op/s"
	default:
		return sig3(v) + " MB/s"
	}
}

// formatStat formats a Stat as its center and the confidence interval's
// width in percent ("12.3µs ±2%"), as benchstat does.
func formatStat(g Group, m Metric, s Stat) string {
	if s.N == 0 {
		return "-"
	}
	out := formatMetric(g, m, s.Center)
	if s.N == 1 || s.Lo == nil || s.Hi == nil || s.Center == 0 {
		// Too few runs for a confidence interval; the footnote says so.
		return out
	}
	r := math.Max(*s.Hi/s.Center-1, 1-*s.Lo/s.Center)
	return fmt.Sprintf("%s ±%.0f%%", out, 100*r)
}

// formatChange formats a Delta's change in percent.
func formatChange(d Delta) string {
	if d.Base.N == 0 || d.New.N == 0 || d.Note == "base is zero" {
		return "?"
	}
	return fmt.Sprintf("%+.1f%%", d.ChangePct)
}

// formatTest describes how a Delta was tested.
func formatTest(d Delta) string {
	n := fmt.Sprintf("n=%d+%d", d.Base.N, d.New.N)
	if d.Base.N == d.New.N {
		n = fmt.Sprintf("n=%d", d.Base.N)
	}
	switch {
	case d.Note != "":
		return d.Note
	case d.P != nil:
		return fmt.Sprintf("p=%.3f %s", *d.P, n)
	default:
		return n
	}
}
