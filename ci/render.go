package ci

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/snapring/snapring/results"
)

// formatValue shows a metric's value in its unit: latencies as durations,
// ratios plain, throughput as a rate.
func formatValue(g results.Group, m results.Metric, v float64) string {
	switch {
	case g == results.GroupRatio:
		return fmt.Sprintf("%.3f", v)
	case isLatency(m):
		return time.Duration(math.Round(v)).String()
	case m == results.MetricIOPS:
		return fmt.Sprintf("%.0f/s", v)
	default:
		return fmt.Sprintf("%.1f MB/s", v)
	}
}

func formatStat(v MetricVerdict, s results.Stat) string {
	if s.N == 0 {
		return "-"
	}
	return formatValue(v.Group, v.Metric, s.Center)
}

func formatP(v MetricVerdict) string {
	if v.P == nil {
		return "-"
	}
	return fmt.Sprintf("%.2g", *v.P)
}

func formatChange(v MetricVerdict) string {
	if v.Base.N == 0 || v.New.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", v.ChangePct)
}

func verdictWord(v MetricVerdict) string {
	switch v.Outcome {
	case Pass:
		return "~"
	case Info:
		return "info"
	}
	return string(v.Outcome)
}

func (r *Report) settings() string {
	return fmt.Sprintf("suite %s; base %s (commit %s), new %s (commit %s); alpha %v; thresholds latency %g%%, throughput %g%%, %d rules",
		r.Suite, r.Base.Source, r.Base.Commit, r.New.Source, r.New.Commit, r.Policy.Alpha, r.Policy.LatencyThresholdPct, r.Policy.ThroughputThresholdPct, len(r.Policy.Rules))
}

// WriteText writes the report for a terminal or a CI log: every gating
// metric with its reason, then the verdict last, where a log's tail shows it.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "snapring ci compare: %s\n", r.settings())
	for _, sr := range r.Scenarios {
		fmt.Fprintf(bw, "\n%s: base %d runs, new %d runs\n", sr.Name, sr.BaseRuns, sr.NewRuns)
		if sr.Error != "" {
			fmt.Fprintf(bw, "  error: %s\n", sr.Error)
		}
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  gating metric\tbase\tnew\tchange\tp\tCV base/new\tverdict\treason")
		info := 0
		for _, m := range sr.Metrics {
			if !m.Gate {
				info++
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%.1f%%/%.1f%%\t%s\t%s\n", m.Name(), formatStat(m, m.Base), formatStat(m, m.New),
				formatChange(m), formatP(m), m.CVBasePct, m.CVNewPct, verdictWord(m), m.Reason)
		}
		tw.Flush()
		fmt.Fprintf(bw, "  (%d informational metrics in the Markdown, JSON and JUnit outputs)\n", info)
		for _, wn := range sr.Warnings {
			fmt.Fprintf(bw, "  warning: %s\n", wn)
		}
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(bw, "warning: %s\n", wn)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(bw, "error: %s\n", e)
	}
	fmt.Fprintf(bw, "\n%s\n", r.Summary)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

// mdEscape keeps a table cell from breaking the table or reading as markup.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;", "\n", " ", "`", "'").Replace(s)
}

// WriteMarkdown writes the report for $GITHUB_STEP_SUMMARY or a merge
// request comment: the verdict first, one table of gating metrics per
// scenario, the informational ones folded away.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	icon := map[Status]string{StatusPass: "✅", StatusRegression: "❌", StatusError: "⚠️"}[r.Status]
	fmt.Fprintf(bw, "## %s snapring ci: %s\n\n", icon, mdEscape(r.Summary))
	fmt.Fprintf(bw, "%s\n\n", mdEscape(r.settings()))
	for _, e := range r.Errors {
		fmt.Fprintf(bw, "> **error:** %s\n>\n", mdEscape(e))
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(bw, "> **warning:** %s\n>\n", mdEscape(wn))
	}
	if len(r.Errors)+len(r.Warnings) > 0 {
		fmt.Fprintln(bw)
	}
	for _, sr := range r.Scenarios {
		fmt.Fprintf(bw, "### %s\n\nbase %d runs, new %d runs\n\n", mdEscape(sr.Name), sr.BaseRuns, sr.NewRuns)
		if sr.Error != "" {
			fmt.Fprintf(bw, "**error:** %s\n\n", mdEscape(sr.Error))
		}
		for _, wn := range sr.Warnings {
			fmt.Fprintf(bw, "> **warning:** %s\n>\n", mdEscape(wn))
		}
		if len(sr.Warnings) > 0 {
			fmt.Fprintln(bw)
		}
		var gating, info []MetricVerdict
		for _, m := range sr.Metrics {
			if m.Gate {
				gating = append(gating, m)
			} else {
				info = append(info, m)
			}
		}
		if len(gating) > 0 {
			mdTable(bw, gating, true)
			fmt.Fprintln(bw)
		}
		if len(info) > 0 {
			fmt.Fprintf(bw, "<details><summary>%d informational metrics</summary>\n\n", len(info))
			mdTable(bw, info, false)
			fmt.Fprint(bw, "\n</details>\n\n")
		}
	}
	fmt.Fprintln(bw, "Verdicts: `~` no significant change beyond the threshold (median, Mann-Whitney U, Benjamini-Hochberg); `refused`: the noise guard found the runs too spread, or too few, to judge the threshold.")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

func mdTable(w io.Writer, ms []MetricVerdict, gating bool) {
	fmt.Fprintln(w, "| metric | base | new | change | p | CV base/new | threshold | verdict | reason |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---|")
	for _, m := range ms {
		verdict := verdictWord(m)
		if gating && m.Outcome != Pass {
			verdict = "**" + verdict + "**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.1f%% / %.1f%% | %g%% | %s | %s |\n", mdEscape(m.Name()),
			mdEscape(formatStat(m, m.Base)), mdEscape(formatStat(m, m.New)), formatChange(m), formatP(m),
			m.CVBasePct, m.CVNewPct, m.ThresholdPct, verdict, mdEscape(m.Reason))
	}
}

// WriteJSON writes the whole report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

// BenchmarkActionEntry is one entry of github-action-benchmark's custom
// tool formats (customSmallerIsBetter, customBiggerIsBetter): the fields
// that action reads.
type BenchmarkActionEntry struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	Range string  `json:"range,omitempty"`
	Extra string  `json:"extra,omitempty"`
}

// BenchmarkAction returns the new set's medians in github-action-benchmark's
// custom format, split as the action needs: latencies (and latency ratios)
// for a customSmallerIsBetter file, throughputs for a customBiggerIsBetter
// one.
func (r *Report) BenchmarkAction() (smaller, bigger []BenchmarkActionEntry) {
	smaller, bigger = []BenchmarkActionEntry{}, []BenchmarkActionEntry{}
	for _, sr := range r.Scenarios {
		for _, m := range sr.Metrics {
			if m.New.N == 0 {
				continue
			}
			e := BenchmarkActionEntry{Name: sr.Name + " " + m.Name(), Value: m.New.Center}
			switch {
			case m.Group == results.GroupRatio:
				e.Unit = "engine/baseline"
			case isLatency(m.Metric):
				e.Unit = "ns"
			case m.Metric == results.MetricIOPS:
				e.Unit = "ops/s"
			default:
				e.Unit = "MB/s"
			}
			if m.New.Lo != nil && m.New.Hi != nil {
				e.Range = fmt.Sprintf("± %.4g", max(*m.New.Hi-m.New.Center, m.New.Center-*m.New.Lo))
			} else if m.New.N > 1 {
				e.Range = fmt.Sprintf("± %.4g", m.CVNewPct/100*m.New.Center)
			}
			e.Extra = fmt.Sprintf("n=%d, base median %.4g, change %s, p=%s, verdict %s (%s)", m.New.N, m.Base.Center, formatChange(m), formatP(m), verdictWord(m), m.Reason)
			if isLatency(m.Metric) {
				smaller = append(smaller, e)
			} else {
				bigger = append(bigger, e)
			}
		}
	}
	return smaller, bigger
}

func writeJSONList(w io.Writer, v []BenchmarkActionEntry) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}

// JUnit XML, in the Ant format (testdata/junit.xsd): one testsuite per
// scenario, one testcase per metric; a regression is a failure, a refused
// gating metric or a scenario that could not run an error. A last testsuite,
// "verdict", carries the overall outcome, so that a report that shows only
// failures still shows why the job failed.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Package    string          `xml:"package,attr"`
	ID         int             `xml:"id,attr"`
	Name       string          `xml:"name,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out"`
	SystemErr  string          `xml:"system-err"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// token makes a value fit xs:token: no leading, trailing or repeated
// spaces, no tabs or newlines.
func token(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	host := token(r.New.Env.Hostname)
	if host == "" {
		host = "localhost"
	}
	// The schema's timestamp has no time zone; UTC is said in a property.
	stamp := r.New.Started.UTC().Format("2006-01-02T15:04:05")
	props := []junitProperty{
		{"suite", r.Suite}, {"timezone", "UTC"},
		{"base.source", r.Base.Source}, {"base.commit", r.Base.Commit},
		{"new.source", r.New.Source}, {"new.commit", r.New.Commit},
		{"alpha", fmt.Sprint(r.Policy.Alpha)}, {"kernel", r.New.Env.KernelRelease}, {"cpu", r.New.Env.CPUModel},
	}
	pkg := "snapring.ci." + token(r.Suite)
	var doc junitSuites
	for i, sr := range r.Scenarios {
		s := junitSuite{Package: pkg, ID: i, Name: token(sr.Name), Timestamp: stamp, Hostname: host, Time: "0", Properties: props}
		if sr.Error != "" {
			s.Cases = append(s.Cases, junitCase{Name: "runs", ClassName: pkg + "." + token(sr.Name), Time: "0",
				Error: &junitProblem{Message: sr.Error, Type: "no-results", Text: sr.Error}})
			s.Errors++
		}
		for _, m := range sr.Metrics {
			c := junitCase{Name: m.Name(), ClassName: pkg + "." + token(sr.Name), Time: "0"}
			detail := fmt.Sprintf("base %s (n=%d), new %s (n=%d), change %s, p=%s, CV %.1f%%/%.1f%%, threshold %g%%, alpha %v: %s",
				formatStat(m, m.Base), m.Base.N, formatStat(m, m.New), m.New.N, formatChange(m), formatP(m), m.CVBasePct, m.CVNewPct, m.ThresholdPct, m.Alpha, m.Reason)
			switch m.Outcome {
			case Regressed:
				c.Failure = &junitProblem{Message: fmt.Sprintf("regression %s, p=%s", formatChange(m), formatP(m)), Type: "regression", Text: detail}
				s.Failures++
			case Refused:
				c.Error = &junitProblem{Message: m.Reason, Type: "refused", Text: detail}
				s.Errors++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		s.SystemOut = strings.Join(sr.Warnings, "\n")
		doc.Suites = append(doc.Suites, s)
	}
	v := junitSuite{Package: pkg, ID: len(doc.Suites), Name: "verdict", Timestamp: stamp, Hostname: host, Time: "0", Properties: props, Tests: 1,
		SystemOut: strings.Join(append(append([]string{r.Summary}, r.Errors...), r.Warnings...), "\n")}
	c := junitCase{Name: "overall", ClassName: pkg + ".verdict", Time: "0"}
	switch r.Status {
	case StatusRegression:
		c.Failure = &junitProblem{Message: r.Summary, Type: "regression", Text: r.Summary}
		v.Failures = 1
	case StatusError:
		c.Error = &junitProblem{Message: r.Summary, Type: "no-verdict", Text: strings.Join(r.Errors, "\n")}
		v.Errors = 1
	}
	v.Cases = []junitCase{c}
	doc.Suites = append(doc.Suites, v)
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return nil
}
