package ci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/snapring/snapring/bench"
	"github.com/snapring/snapring/results"
)

// RunConfig is one run of a suite.
type RunConfig struct {
	Suite *Suite
	// OutDir receives manifest.json and results/*.json. It must not exist
	// or be empty (CheckOutDir); Run creates it.
	OutDir string
	// Commit is snapring's git commit, recorded in the manifest and the
	// results.
	Commit string
	// Progress, when set (a terminal), shows a progress bar.
	Progress io.Writer
	// Log, when set, gets one line per run.
	Log io.Writer
	// Watchdog overrides the suite's: a run not done after this long is
	// hung. Zero: the suite's, or bench.StuckAfter of the scenario.
	Watchdog time.Duration
	// Stuck is called, after the manifest has recorded the hang, from the
	// watchdog's goroutine when a run hangs. It must not return: a hung run
	// cannot be taken back (the CLI dumps the stacks and exits).
	Stuck func(scenario string, repeat int, limit time.Duration)
}

// CheckOutDir makes sure a suite's results can go to dir without touching
// anything already there: dir does not exist (its parent does) or is an
// empty directory.
func CheckOutDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(filepath.Clean(dir))
		if pfi, err := os.Stat(parent); err != nil || !pfi.IsDir() {
			return fmt.Errorf("%w: output directory %s: its parent %s is not a directory", ErrOutput, dir, parent)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%w: output directory %s: %v", ErrOutput, dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: output directory %s is not a directory", ErrOutput, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: output directory %s: %v", ErrOutput, dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: output directory %s is not empty (a suite's results go to a new or empty directory)", ErrOutput, dir)
	}
	return nil
}

type plannedRun struct {
	sc     *SuiteScenario
	repeat int
}

// schedule lists the runs in the suite's order.
func schedule(s *Suite) []plannedRun {
	var runs []plannedRun
	if s.Order == Sequential {
		for i := range s.Scenarios {
			for r := 0; r < s.Scenarios[i].Repeats; r++ {
				runs = append(runs, plannedRun{&s.Scenarios[i], r})
			}
		}
		return runs
	}
	for r := 0; r < maxRepeats; r++ {
		for i := range s.Scenarios {
			if r < s.Scenarios[i].Repeats {
				runs = append(runs, plannedRun{&s.Scenarios[i], r})
			}
		}
	}
	return runs
}

// runner holds the manifest being written; the watchdog writes it too.
type runner struct {
	cfg RunConfig
	mu  sync.Mutex
	m   Manifest
}

func (r *runner) writeManifest() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.m.encode()
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.cfg.OutDir, ManifestFile), b)
}

// Run runs every scenario of the suite its number of repeats, in the
// suite's order, writing each result as it comes and the manifest after
// every run (so that an interrupted or hung suite leaves a manifest that
// says so). A run that fails is recorded and the suite goes on. It returns
// an error wrapping ErrRunsFailed when a scenario got no result at all or
// the suite was interrupted: such a set cannot be compared.
func Run(ctx context.Context, cfg RunConfig) (*Manifest, error) {
	s := cfg.Suite
	if s == nil || len(s.Scenarios) == 0 {
		return nil, fmt.Errorf("%w: no scenarios", ErrSuite)
	}
	if cfg.Stuck == nil {
		return nil, errors.New("ci: RunConfig.Stuck is required")
	}
	if err := CheckOutDir(cfg.OutDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.OutDir, "results"), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutput, err)
	}
	r := &runner{cfg: cfg, m: Manifest{Schema: ManifestSchema, Suite: *s, SuiteHash: s.Hash(), Commit: cfg.Commit,
		Env: results.CollectEnv("", cfg.Commit), Started: time.Now().UTC()}}
	if err := r.writeManifest(); err != nil {
		return nil, err
	}
	plan := schedule(s)
	var bar *progressbar.ProgressBar
	if cfg.Progress != nil {
		bar = progressbar.NewOptions(len(plan), progressbar.OptionSetWriter(cfg.Progress), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
	}
	envSet := false
	for _, p := range plan {
		if ctx.Err() != nil {
			break
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("%s r%d", p.sc.Name, p.repeat))
		}
		rec, res := r.runOne(ctx, p)
		if ctx.Err() != nil {
			break // an interrupted run's figures cover part of it: dropped
		}
		r.mu.Lock()
		if res != nil && !envSet {
			r.m.Env, envSet = res.Env, true
		}
		r.m.Runs = append(r.m.Runs, rec)
		r.mu.Unlock()
		if err := r.writeManifest(); err != nil {
			return nil, err
		}
		if bar != nil {
			bar.Add(1)
		}
		if cfg.Log != nil {
			status := "ok"
			if rec.Error != "" {
				status = "FAILED: " + rec.Error
			}
			fmt.Fprintf(cfg.Log, "run %s r%d (%v): %s\n", p.sc.Name, p.repeat, rec.Duration.Round(time.Millisecond), status)
		}
	}
	if bar != nil {
		bar.Finish()
	}
	r.mu.Lock()
	r.m.Finished = time.Now().UTC()
	r.m.Complete = ctx.Err() == nil
	if !r.m.Complete {
		r.m.Problem = "interrupted"
	}
	m := r.m
	r.mu.Unlock()
	if err := r.writeManifest(); err != nil {
		return nil, err
	}
	if !m.Complete {
		return &m, fmt.Errorf("%w: interrupted after %d of %d runs", ErrRunsFailed, len(m.Runs), len(plan))
	}
	if missing := scenariosWithoutResults(&m); len(missing) > 0 {
		return &m, fmt.Errorf("%w: no result for %s (%s)", ErrRunsFailed, strings.Join(missing, ", "), firstError(&m))
	}
	return &m, nil
}

// runOne runs one repeat of one scenario under the watchdog and writes its
// result.
func (r *runner) runOne(ctx context.Context, p plannedRun) (RunRecord, *results.Result) {
	rec := RunRecord{Scenario: p.sc.Name, Repeat: p.repeat}
	limit := r.cfg.Watchdog
	if limit == 0 {
		limit = r.cfg.Suite.Watchdog
	}
	if limit == 0 {
		limit = bench.StuckAfter(p.sc.Scenario)
	}
	t0 := time.Now()
	wd := time.AfterFunc(limit, func() {
		r.mu.Lock()
		r.m.Finished = time.Now().UTC()
		r.m.Complete = false
		r.m.Problem = fmt.Sprintf("run %d of %s hung: not done after %v", p.repeat, p.sc.Name, limit)
		r.mu.Unlock()
		r.writeManifest()
		r.cfg.Stuck(p.sc.Name, p.repeat, limit)
	})
	res, err := bench.Run(ctx, bench.RunConfig{Scenario: p.sc.Scenario, Commit: r.cfg.Commit, RunIndex: p.repeat, Seed: r.cfg.Suite.Seed + int64(p.repeat)})
	wd.Stop()
	rec.Duration = time.Since(t0)
	if err == nil && res.Partial {
		err = errors.New("partial result")
	}
	if err != nil {
		rec.Error = oneLine(err.Error())
		return rec, nil
	}
	rec.File = fmt.Sprintf("results/%s-r%02d.json", safeName(p.sc.Name), p.repeat)
	if err := results.WriteFile(filepath.Join(r.cfg.OutDir, rec.File), res); err != nil {
		rec.File, rec.Error = "", oneLine(err.Error())
		return rec, nil
	}
	return rec, res
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

func scenariosWithoutResults(m *Manifest) []string {
	var missing []string
	for _, sc := range m.Suite.Scenarios {
		ok := false
		for _, r := range m.Runs {
			if r.Scenario == sc.Name && r.File != "" {
				ok = true
				break
			}
		}
		if !ok {
			missing = append(missing, sc.Name)
		}
	}
	return missing
}

func firstError(m *Manifest) string {
	for _, r := range m.Runs {
		if r.Error != "" {
			return fmt.Sprintf("first error: %s r%d: %s", r.Scenario, r.Repeat, r.Error)
		}
	}
	return "no run"
}
