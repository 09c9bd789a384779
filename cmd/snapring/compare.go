package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
)

func readResults(list string) ([]*results.Result, error) {
	var out []*results.Result
	for _, p := range strings.Split(list, ",") {
		if p == "" {
			continue
		}
		r, err := results.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no result files in %q", list)
	}
	return out, nil
}

func compareCmd() *cobra.Command {
	var (
		format string
		opts   results.CompareOptions
	)
	cmd := &cobra.Command{
		Use:   "compare BASE.json[,BASE2.json...] NEW.json[,NEW2.json...]",
		Short: "Compare results per metric with a statistical verdict; exit 0 no regression, 1 regression, 2 error",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := readResults(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			newRuns, err := readResults(args[1])
			if err != nil {
				return &exitError{2, err}
			}
			opts.EnsureDefaults()
			if err := opts.Validate(); err != nil {
				return &exitError{2, err}
			}
			if format != "text" && format != "markdown" && format != "md" && format != "json" {
				return &exitError{2, fmt.Errorf("--format %q: want text, markdown or json", format)}
			}
			if err := results.CheckComparable(base, newRuns); err != nil {
				return &exitError{2, err}
			}
			c := results.Compare(base, newRuns, opts)
			if err := c.Err(); err != nil {
				return &exitError{2, err}
			}
			// Warnings go to stderr; the Markdown and JSON documents keep
			// them too (a CI summary should show them).
			for _, w := range c.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "snapring: warning:", w)
			}
			text := c
			text.Warnings = nil
			out := cmd.OutOrStdout()
			switch format {
			case "text":
				err = text.WriteText(out)
			case "markdown", "md":
				err = c.WriteMarkdown(out)
			case "json":
				err = c.WriteJSON(out)
			default:
				return &exitError{2, fmt.Errorf("--format %q: want text, markdown or json", format)}
			}
			if err != nil {
				return &exitError{2, err}
			}
			if c.Regressed() {
				return &exitError{1, fmt.Errorf("regression")}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "text", "text, markdown or json")
	fl.Float64Var(&opts.Alpha, "alpha", 0, "significance level (default 0.05)")
	fl.Float64Var(&opts.LatencyThresholdPct, "latency-threshold", 0, "latency change in percent that counts (default 10)")
	fl.Float64Var(&opts.ThroughputThresholdPct, "throughput-threshold", 0, "throughput change in percent that counts (default 10)")
	fl.BoolVar(&opts.Absolute, "absolute", false, "let the engine's absolute figures count toward the verdict, not only the engine/baseline ratios (for dedicated, quiet machines)")
	return cmd
}

func reportCmd() *cobra.Command {
	var (
		out    string
		pngDir string
		opts   results.ReportOptions
	)
	cmd := &cobra.Command{
		Use:   "report RESULT.json... -o report.html",
		Short: "Render results as one self-contained offline HTML file (and PNG plots with --png DIR)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := readResults(strings.Join(args, ","))
			if err != nil {
				return &exitError{2, err}
			}
			if out == "" {
				return &exitError{2, fmt.Errorf("-o report.html is required")}
			}
			if fi, err := os.Stat(out); err == nil && fi.IsDir() {
				return &exitError{2, fmt.Errorf("-o %s is a directory: want the HTML file to write", out)}
			}
			if err := results.ProbeDir(filepath.Dir(out)); err != nil {
				return &exitError{2, fmt.Errorf("-o %s: %v", out, err)}
			}
			if pngDir != "" {
				if err := results.ProbeDir(pngDir); err != nil {
					return &exitError{2, fmt.Errorf("--png: %v", err)}
				}
			}
			var staged results.Outputs
			defer staged.Abort()
			if err := staged.StageHTML(out, rs, opts); err != nil {
				return &exitError{2, err}
			}
			var files []string
			if pngDir != "" {
				if files, err = staged.StagePNGs(pngDir, rs, opts); err != nil {
					return &exitError{2, err}
				}
			}
			if err := staged.Commit(); err != nil {
				return &exitError{2, err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "report:", out)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), "plot:", f)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&out, "output", "o", "", "HTML file to write")
	fl.StringVar(&pngDir, "png", "", "also write PNG plots into this directory")
	fl.StringVar(&opts.Title, "title", "", "report title")
	return cmd
}

func scenariosCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "scenarios", Short: "List and show the built-in scenarios"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the built-in scenarios",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range scenarios.BuiltinNames() {
				sc, err := scenarios.Builtin(n)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-18s %s\n", n, strings.Join(strings.Fields(sc.Description), " "))
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "show NAME",
		Short: "Print a built-in scenario's YAML",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := scenarios.BuiltinSource(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			_, err = cmd.OutOrStdout().Write(src)
			return err
		},
	})
	return cmd
}
