package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/bench"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/uring"
)

// commit is set with -ldflags "-X main.commit=..." by the Makefile.
var commit = ""

func gitCommit() string {
	if commit != "" {
		return commit
	}
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// loadScenario resolves a built-in name or a file.
func loadScenario(arg string) (*scenarios.Scenario, error) {
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, "/.") {
		return scenarios.Load(arg)
	}
	return scenarios.Builtin(arg)
}

// checkOutDir makes sure results can be written there before anything runs.
func checkOutDir(dir string) error { return results.ProbeDir(dir) }

// interrupted is the exit status of a command stopped by SIGINT or SIGTERM,
// as shells report it.
const interrupted = 130

// staged holds the outputs of the command in progress, for the watchdog to
// remove when it ends a stuck run.
var staged results.Outputs

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func runCmd() *cobra.Command {
	var (
		outDir     string
		repeat     int
		noBaseline bool
		png        bool
		quiet      bool
		seed       int64
		watchdog   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Run a scenario (a built-in name or a YAML file) in process, with its raw baseline, and write JSON results and an HTML report",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := loadScenario(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			if repeat < 1 || repeat > 100 {
				return &exitError{2, fmt.Errorf("--repeat %d: want 1..100", repeat)}
			}
			if outDir == "" {
				return &exitError{2, errors.New("-o: want a directory")}
			}
			if err := checkOutDir(outDir); err != nil {
				return &exitError{2, err}
			}
			if watchdog < 0 || watchdog > 0 && watchdog < time.Second {
				return &exitError{2, fmt.Errorf("--watchdog %v: want at least 1s, or 0 for the scenario's own", watchdog)}
			}
			runs := sc.Expand()
			for _, s := range runs {
				// Everything a run names is checked before the first one
				// creates a file.
				s.EnsureDefaults()
				if err := s.Validate(); err != nil {
					return &exitError{2, err}
				}
				if err := bench.Check(bench.RunConfig{Scenario: s}); err != nil {
					return &exitError{2, err}
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var progress io.Writer
			if !quiet && isTerminal(os.Stderr) {
				progress = os.Stderr
			}
			defer staged.Abort()
			stamp := time.Now().Format("20060102-150405")
			var all []*results.Result
			var paths []string
			for _, s := range runs {
				for i := 0; i < repeat && ctx.Err() == nil; i++ {
					limit := watchdog
					if limit == 0 {
						limit = bench.StuckAfter(s)
					}
					wd := time.AfterFunc(limit, func() { stuck(s.Name, i, limit) })
					res, err := bench.Run(ctx, bench.RunConfig{Scenario: s, Progress: progress, Commit: gitCommit(), RunIndex: i, Seed: seed + int64(i), SkipBaseline: noBaseline})
					wd.Stop()
					if errors.Is(err, bench.ErrInterrupted) {
						break
					}
					if err != nil {
						if errors.Is(err, scenarios.ErrInvalid) || errors.Is(err, bench.ErrRun) {
							return &exitError{2, err}
						}
						return err
					}
					name := fmt.Sprintf("%s-%s-r%d.json", safeName(s.Name), stamp, i)
					path := filepath.Join(outDir, name)
					if err := staged.StageResult(path, res); err != nil {
						return err
					}
					all = append(all, res)
					paths = append(paths, path)
					printSummary(cmd.OutOrStdout(), s.Name, res)
				}
			}
			if len(all) == 0 {
				if ctx.Err() != nil {
					return &exitError{interrupted, errors.New("interrupted before any result: nothing written")}
				}
				return &exitError{2, errors.New("no result")}
			}
			htmlPath := filepath.Join(outDir, fmt.Sprintf("%s-%s.html", safeName(sc.Name), stamp))
			if err := staged.StageHTML(htmlPath, all, results.ReportOptions{Title: "snapring: " + sc.Name}); err != nil {
				return err
			}
			var plots []string
			if png {
				if plots, err = staged.StagePNGs(outDir, all, results.ReportOptions{}); err != nil {
					return err
				}
			}
			if err := staged.Commit(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range paths {
				fmt.Fprintln(out, "result:", p)
			}
			fmt.Fprintln(out, "report:", htmlPath)
			for _, f := range plots {
				fmt.Fprintln(out, "plot:  ", f)
			}
			if ctx.Err() != nil {
				return &exitError{interrupted, errors.New("interrupted: the results written are marked partial (compare refuses them)")}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&outDir, "out", "o", ".", "directory for the JSON results and the HTML report (must exist)")
	fl.IntVar(&repeat, "repeat", 1, "repetitions (for compare's statistics)")
	fl.BoolVar(&noBaseline, "no-baseline", false, "skip the raw baseline side")
	fl.BoolVar(&png, "png", false, "also write the plots as PNG files (CI artifacts)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress display")
	fl.Int64Var(&seed, "seed", 1, "random seed for offsets and data")
	fl.DurationVar(&watchdog, "watchdog", 0, "call a run stuck after this long: print every goroutine's stack and exit 3 (0: from the scenario's phases and sizes, at least 2 minutes)")
	return cmd
}

// stuck ends a run that hangs: the full goroutine dump, then a summary of
// the goroutines in snapring code and one line saying what happened, last,
// where a CI log's tail shows it.
func stuck(name string, i int, limit time.Duration) {
	full, summary := bench.Stacks()
	os.Stderr.Write(full)
	fmt.Fprintf(os.Stderr, "\ngoroutines in snapring code:\n%s", summary)
	fmt.Fprintln(os.Stderr, "engine queues:")
	engine.WriteState(os.Stderr)
	fmt.Fprintf(os.Stderr, "io-wq kicks so far: %d\n", uring.Kicks())
	staged.Abort()
	fmt.Fprintf(os.Stderr, "snapring: run %d of %s stuck: not done after %v (a bug: the stacks above say where)\n", i, name, limit)
	os.Exit(3)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '=' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// printSummary is the one-screen summary: per class, engine against
// baseline.
func printSummary(w io.Writer, name string, r *results.Result) {
	mode := string(r.LoadMode)
	if r.Partial {
		mode += ", partial"
	}
	fmt.Fprintf(w, "\n%s (run %d, %s, %v)\n", name, r.RunIndex, mode, r.Engine.Duration.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tIOPS\tMB/s\tp50\tp99\tp99.9\tbase IOPS\tbase p99\tIOPS ratio\tp99 ratio\t")
	for _, c := range results.Classes {
		cr, ok := r.Engine.Classes[c]
		if !ok {
			continue
		}
		var bIOPS, bP99 string
		if r.Baseline != nil {
			if bc, ok := results.BaselineClassFor(c, r.Baseline.Classes); ok {
				b := r.Baseline.Classes[bc]
				bIOPS, bP99 = fmt.Sprintf("%.0f", b.IOPS), time.Duration(b.P99Ns).String()
			}
		}
		ratio := r.Ratios[c]
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%v\t%v\t%v\t%s\t%s\t%s\t%s\t\n", c, cr.IOPS, cr.MBps,
			time.Duration(cr.P50Ns), time.Duration(cr.P99Ns), time.Duration(cr.P999Ns), bIOPS, bP99, fmtRatio(ratio.IOPS), fmtRatio(ratio.P99))
	}
	tw.Flush()
	if c := r.Engine.Counters; c != nil {
		fmt.Fprintf(w, "chunks copied %d, stored %d, in memory %d; difference storage used %d MiB\n",
			c[results.CounterChunksCopied], c[results.CounterChunksStored], c[results.CounterStoreQueue], c[results.CounterDiffBytesUsed]>>20)
	}
	if u := r.CowUse; u != nil {
		fmt.Fprintf(w, "copy-on-write: %.0f chunks/s in the measured part, %.1f%% of the %.0f chunks/s the engine copies with nothing else running\n",
			u.MeasuredChunksPerSecond, 100*u.Fraction(), u.CapacityChunksPerSecond)
	}
	if k := r.Engine.IOWQKicks + baselineKicks(r); k > 0 {
		fmt.Fprintf(w, "io-wq kicks %d (engine %d): waits that saw nothing complete for 50 ms and woke the kernel's io-wq\n", k, r.Engine.IOWQKicks)
	}
	for _, e := range r.Engine.Events {
		if e.Kind != results.EventTake && e.Kind != results.EventDestroy {
			fmt.Fprintf(w, "event at %v: %s\n", e.Offset.Round(time.Millisecond), e.Detail)
		}
	}
}

func baselineKicks(r *results.Result) int64 {
	if r.Baseline == nil {
		return 0
	}
	return r.Baseline.IOWQKicks
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
