package fio

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/snapring/snapring/results"
)

// WritePresets lists the presets with their default targets.
func WritePresets(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRESET\tTARGETS\tDESCRIPTION")
	for _, p := range Presets {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, kindList(p.Targets), p.Description)
	}
	return tw.Flush()
}

// byTarget reads the written results and groups them by target, in the
// order the targets first appear.
func byTarget(ws []Written) ([]Kind, map[Kind][]*results.Result, error) {
	var order []Kind
	m := make(map[Kind][]*results.Result)
	for _, w := range ws {
		r, err := results.ReadFile(w.Path)
		if err != nil {
			return nil, nil, err
		}
		if _, ok := m[w.Target]; !ok {
			order = append(order, w.Target)
		}
		m[w.Target] = append(m[w.Target], r)
	}
	return order, m, nil
}

// WriteReports writes one HTML report per target (its rounds together)
// next to its results, as fio-NAME-TARGET.html, and returns their paths.
func WriteReports(ws []Written) ([]string, error) {
	order, m, err := byTarget(ws)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range order {
		first := ws[slices.IndexFunc(ws, func(w Written) bool { return w.Target == k })].Path
		path := strings.TrimSuffix(first, ".json")
		if i := strings.LastIndex(path, "-r"); i > 0 && strings.HasSuffix(path[:i], "-"+string(k)) {
			path = path[:i]
		}
		path += ".html"
		var meta Meta
		_ = json.Unmarshal(m[k][0].Scenario, &meta)
		title := fmt.Sprintf("fio %s on %s", firstNonEmpty(meta.Preset, meta.JobFile), k)
		if err := results.WriteHTMLFile(path, m[k], results.ReportOptions{Title: title}); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// WriteSummary prints, per target and class, the medians over the rounds
// of IOPS, MB/s, p50 and p99 and of the ratios against raw.
func WriteSummary(w io.Writer, ws []Written) error {
	order, m, err := byTarget(ws)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tclass\trounds\tIOPS\tMB/s\tp50 µs\tp99 µs\tIOPS/raw\tp99/raw\t")
	for _, k := range order {
		rs := m[k]
		var classes []results.Class
		for _, c := range results.Classes {
			if _, ok := rs[0].Engine.Classes[c]; ok {
				classes = append(classes, c)
			}
		}
		for _, c := range classes {
			var iops, mbps, p50, p99, riops, rp99 []float64
			for _, r := range rs {
				cr := r.Engine.Classes[c]
				iops = append(iops, cr.IOPS)
				mbps = append(mbps, cr.MBps)
				p50 = append(p50, float64(cr.P50Ns)/1e3)
				p99 = append(p99, float64(cr.P99Ns)/1e3)
				if ratio, ok := r.Ratios[c]; ok {
					riops = append(riops, ratio.IOPS)
					rp99 = append(rp99, ratio.P99)
				}
			}
			ratio := func(vs []float64) string {
				if len(vs) == 0 {
					return "-"
				}
				return fmt.Sprintf("%.2f", medianOf(vs))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", k, c, len(rs),
				medianOf(iops), medianOf(mbps), medianOf(p50), medianOf(p99), ratio(riops), ratio(rp99))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Ours against dm-snapshot's: per round, then the median.
	for _, ours := range []Kind{Origin} {
		if m[ours] == nil || m[DMSnapshot] == nil {
			continue
		}
		for _, c := range results.Classes {
			var r []float64
			for _, a := range m[ours] {
				for _, b := range m[DMSnapshot] {
					ca, oka := a.Engine.Classes[c]
					cb, okb := b.Engine.Classes[c]
					if a.RunIndex == b.RunIndex && oka && okb && cb.IOPS > 0 {
						r = append(r, ca.IOPS/cb.IOPS)
					}
				}
			}
			if len(r) > 0 {
				fmt.Fprintf(w, "%s/%s %s IOPS: median %.2f over %d rounds (%s)\n", ours, DMSnapshot, c, medianOf(r), len(r), formatRatios(r))
			}
		}
	}
	return nil
}

func formatRatios(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(s, " ")
}

func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	n := len(s)
	return (s[n/2-1] + s[n/2]) / 2
}
