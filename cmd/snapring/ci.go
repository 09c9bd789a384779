package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/bench"
	"github.com/snapring/snapring/ci"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/uring"
)

// ciExit is the exit error of a ci command that could not measure or
// decide: 2, or 125 (git bisect run's "skip") under --bisect.
func ciExit(bisect bool, err error) error {
	if bisect {
		return &exitError{ci.ExitSkip, err}
	}
	return &exitError{ci.ExitError, err}
}

func ciCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ci", Short: "Performance-regression CI: run a suite, compare it with a baseline, gate on the verdict (docs/ci.md)"}
	cmd.AddCommand(ciRunCmd(), ciCompareCmd(), ciBaselineCmd(), ciNoiseCmd())
	return cmd
}

func ciRunCmd() *cobra.Command {
	var (
		outDir   string
		bisect   bool
		quiet    bool
		watchdog time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run SUITE.yaml -o DIR",
		Short: "Run a suite's scenarios and repeats into a new directory: results, manifest (commit, environment, suite hash), and the noise guard's figures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			suite, err := ci.LoadSuite(args[0])
			if err != nil {
				return ciExit(bisect, err)
			}
			if outDir == "" {
				return ciExit(bisect, errors.New("-o DIR is required"))
			}
			if watchdog < 0 {
				return ciExit(bisect, fmt.Errorf("--watchdog %v: want a positive duration", watchdog))
			}
			if err := ci.CheckOutDir(outDir); err != nil {
				return ciExit(bisect, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg := ci.RunConfig{Suite: suite, OutDir: outDir, Commit: gitCommit(), Watchdog: watchdog, Log: cmd.OutOrStdout(),
				Stuck: func(name string, repeat int, limit time.Duration) { ciStuck(bisect, name, repeat, limit) }}
			if !quiet && isTerminal(os.Stderr) {
				cfg.Progress, cfg.Log = os.Stderr, io.Discard
			}
			_, runErr := ci.Run(ctx, cfg)
			if set, err := ci.LoadSet(outDir); err == nil {
				ci.WriteNoise(cmd.OutOrStdout(), ci.Noise(set))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "results: %s\n", outDir)
			if runErr != nil {
				return ciExit(bisect, runErr)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&outDir, "out", "o", "", "directory for the results and manifest (new, or empty)")
	fl.BoolVar(&bisect, "bisect", false, "for git bisect run: exit 125 (skip) instead of 2 when runs fail or hang")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	fl.DurationVar(&watchdog, "watchdog", 0, "call a run hung after this long (0: the suite's watchdog, or from the scenario's phases and sizes)")
	return cmd
}

// ciStuck ends a suite whose run hangs, as `snapring run` does (every
// goroutine's stack, the engine's queues, one line last), with exit 3, or
// 125 under --bisect: a commit whose run hangs cannot be measured.
func ciStuck(bisect bool, name string, repeat int, limit time.Duration) {
	full, summary := bench.Stacks()
	os.Stderr.Write(full)
	fmt.Fprintf(os.Stderr, "\ngoroutines in snapring code:\n%s", summary)
	fmt.Fprintln(os.Stderr, "engine queues:")
	engine.WriteState(os.Stderr)
	fmt.Fprintf(os.Stderr, "io-wq kicks so far: %d\n", uring.Kicks())
	fmt.Fprintf(os.Stderr, "snapring: ci: run %d of %s hung: not done after %v (the manifest records it)\n", repeat, name, limit)
	if bisect {
		os.Exit(ci.ExitSkip)
	}
	os.Exit(3)
}

func ciCompareCmd() *cobra.Command {
	var (
		baselineRef string
		bisect      bool
		out         ci.Outputs
	)
	cmd := &cobra.Command{
		Use:   "compare BASE_DIR NEW_DIR | compare --baseline-ref REF NEW_DIR",
		Short: "Judge a suite run against a baseline per scenario and metric; exit 0 pass, 1 regression, 2 no verdict (125 with --bisect)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var baseRef, newRef string
			switch {
			case len(args) == 2 && baselineRef == "":
				baseRef, newRef = args[0], args[1]
			case len(args) == 1 && baselineRef != "":
				baseRef, newRef = baselineRef, args[0]
			default:
				return ciExit(bisect, errors.New("want BASE_DIR NEW_DIR, or --baseline-ref REF NEW_DIR"))
			}
			if err := out.Check(baseRef, newRef); err != nil {
				return ciExit(bisect, err)
			}
			base, err := ci.LoadSet(baseRef)
			if err != nil {
				return ciExit(bisect, fmt.Errorf("baseline: %w", err))
			}
			newSet, err := ci.LoadSet(newRef)
			if err != nil {
				return ciExit(bisect, err)
			}
			rep, err := ci.Compare(base, newSet, ci.CompareOptions{})
			if err != nil {
				return ciExit(bisect, err)
			}
			if err := rep.WriteText(cmd.OutOrStdout()); err != nil {
				return ciExit(bisect, err)
			}
			files, err := out.Write(rep, base, newSet)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), "wrote:", f)
			}
			if err != nil {
				return ciExit(bisect, err)
			}
			switch code := rep.ExitCode(bisect); code {
			case ci.ExitPass:
				return nil
			case ci.ExitRegression:
				return &exitError{code, errors.New(rep.Summary)}
			default:
				return &exitError{code, errors.New(rep.Summary)}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&baselineRef, "baseline-ref", "", "the baseline: a results directory, a tarball of one (.tar.gz), or git:REV:PATH of either")
	fl.BoolVar(&bisect, "bisect", false, "for git bisect run: exit 125 (skip) instead of 2 when there is no verdict")
	fl.StringVar(&out.Markdown, "markdown", "", "write the verdicts as Markdown (for $GITHUB_STEP_SUMMARY)")
	fl.StringVar(&out.JUnit, "junit", "", "write JUnit XML: a test case per metric, regressions as failures")
	fl.StringVar(&out.JSON, "json", "", "write the full report as JSON")
	fl.StringVar(&out.BenchmarkAction, "benchmark-action", "", "write latencies for github-action-benchmark (tool: customSmallerIsBetter)")
	fl.StringVar(&out.BenchmarkActionBigger, "benchmark-action-bigger", "", "write throughputs for github-action-benchmark (tool: customBiggerIsBetter)")
	fl.StringVar(&out.HTMLDir, "html", "", "write index.html and each side's HTML report into this new directory")
	fl.BoolVar(&out.PNG, "png", false, "with --html, also the new side's plots as PNG files")
	return cmd
}

func ciBaselineCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "baseline", Short: "Manage stored baselines"}
	cmd.AddCommand(&cobra.Command{
		Use:   "update RESULTS_DIR BASELINE",
		Short: "Make a complete suite run the baseline: BASELINE is a directory, or a tarball if it ends in .tar.gz/.tgz/.tar; replaced only if it is a baseline already",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := ci.UpdateBaseline(args[0], args[1])
			if err != nil {
				return &exitError{ci.ExitError, err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "baseline: %s (suite %s, commit %s, %d runs)\n", args[1], set.Manifest.Suite.Name, set.Manifest.Commit, len(set.Manifest.Runs))
			return nil
		},
	})
	return cmd
}

func ciNoiseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "noise RESULTS",
		Short: "Print the noise guard's figures for a results set: per gating metric, the spread (CV) of its repeats and the repeats its threshold needs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := ci.LoadSet(args[0])
			if err != nil {
				return &exitError{ci.ExitError, err}
			}
			return ci.WriteNoise(cmd.OutOrStdout(), ci.Noise(set))
		},
	}
}
