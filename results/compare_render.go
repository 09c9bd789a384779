package results

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

var groupTitles = map[Group]string{
	GroupEngine:   "engine",
	GroupRatio:    "engine/baseline ratio",
	GroupBaseline: "baseline (informational)",
}

func (c *Comparison) groupTitle(g Group) string {
	if g == GroupEngine && !c.Options.Absolute {
		return "engine (informational)"
	}
	return groupTitles[g]
}

// headline summarises the verdict in one line.
func (c *Comparison) headline() string {
	reg, imp := c.Counts()
	verdict := "no regression"
	if reg > 0 {
		verdict = "REGRESSION"
	}
	counted := 0
	for _, d := range c.Deltas {
		if !d.Informational() {
			counted++
		}
	}
	return fmt.Sprintf("%s: %d regressions, %d improvements in %d metrics", verdict, reg, imp, counted)
}

func (c *Comparison) settings() string {
	counted := "verdict from the engine/baseline ratios (engine figures informational; --absolute counts them)"
	if c.Options.Absolute {
		counted = "verdict from the engine figures and the engine/baseline ratios"
	}
	return fmt.Sprintf("base %d runs, new %d runs; alpha %v; thresholds: latency %v%%, throughput %v%%; %s",
		c.BaseRuns, c.NewRuns, c.Options.Alpha, c.Options.LatencyThresholdPct, c.Options.ThroughputThresholdPct, counted)
}

// ciFootnote explains missing confidence intervals, or returns "".
func (c *Comparison) ciFootnote() string {
	for _, d := range c.Deltas {
		for _, s := range []Stat{d.Base, d.New} {
			if s.N > 1 && s.Lo == nil {
				confidence := 1 - c.Options.Alpha
				return fmt.Sprintf("± is the %v confidence interval of the median over runs; it needs at least %d runs per side, so it is left out where there are fewer",
					confidence, minRunsForCI(confidence))
			}
		}
	}
	return ""
}

// verdictText renders a verdict for text and Markdown tables.
func verdictText(d Delta) string {
	if d.Verdict == NoChange {
		return "~"
	}
	return string(d.Verdict)
}

// WriteText writes the comparison as aligned columns, like benchstat.
func (c *Comparison) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "snapring compare: %s\n", c.settings())
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	group := Group("")
	for _, d := range c.Deltas {
		if d.Group != group {
			group = d.Group
			fmt.Fprintf(tw, "\n%s\tbase\tnew\tchange\ttest\tverdict\n", c.groupTitle(group))
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\n", d.Class, d.Metric,
			formatStat(d.Group, d.Metric, d.Base), formatStat(d.Group, d.Metric, d.New),
			formatChange(d), formatTest(d), verdictText(d))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	if note := c.ciFootnote(); note != "" {
		fmt.Fprintf(bw, "\nnote: %s\n", note)
	}
	for _, warning := range c.Warnings {
		fmt.Fprintf(bw, "\nwarning: %s", warning)
	}
	if len(c.Warnings) > 0 {
		fmt.Fprintln(bw)
	}
	fmt.Fprintf(bw, "\n%s\n", c.headline())
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// WriteMarkdown writes the comparison as a Markdown section with one table,
// for CI job summaries.
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "### snapring compare: %s\n\n", c.headline())
	fmt.Fprintf(bw, "%s\n\n", c.settings())
	for _, warning := range c.Warnings {
		fmt.Fprintf(bw, "> **warning:** %s\n>\n", mdEscape(warning))
	}
	if len(c.Warnings) > 0 {
		fmt.Fprintln(bw)
	}
	fmt.Fprintln(bw, "| group | class | metric | base | new | change | test | verdict |")
	fmt.Fprintln(bw, "|---|---|---|---:|---:|---:|---|---|")
	for _, d := range c.Deltas {
		verdict := verdictText(d)
		if d.Verdict != NoChange && !d.Informational() {
			verdict = "**" + verdict + "**"
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			d.Group, d.Class, mdEscape(string(d.Metric)),
			formatStat(d.Group, d.Metric, d.Base), formatStat(d.Group, d.Metric, d.New),
			formatChange(d), mdEscape(formatTest(d)), verdict)
	}
	if note := c.ciFootnote(); note != "" {
		fmt.Fprintf(bw, "\n%s\n", mdEscape(note))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// mdEscape keeps a table cell from breaking the table or being read as
// markup.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

// WriteJSON writes the comparison as an indented JSON document.
func (c *Comparison) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}
