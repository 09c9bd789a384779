// Package ci is snapring's performance-regression gate for CI jobs: suite
// files, suite runs with manifests, stored baselines, and a verdict per
// scenario and metric in the formats CI systems read.
//
// A suite (LoadSuite, ParseSuite) lists scenarios (built-in names or
// scenario files), their repeats, the run order (interleaved by default),
// and a Policy: which metrics gate, their thresholds and alpha. Errors in a
// suite file are one line, "file:line: problem", wrapping ErrSuite.
//
// Run runs a suite into a new directory: each run's result (the results
// package's JSON) and manifest.json (Manifest: the resolved suite with each
// scenario's hash, the suite hash, commit, machine, and every run with its
// file or error), rewritten after each run so that an interrupted or hung
// suite says so. LoadSet reads such a directory back, or a tarball of one,
// or "git:REV:PATH"; UpdateBaseline stores a complete run as a baseline.
//
// Compare judges a new set against a base set with results.Compare's
// statistics (medians, Mann-Whitney U) and the suite's policy, applying
// Benjamini-Hochberg over the gating metrics and a noise guard: the
// coefficient of variation of each set's same-build repeats gives the
// smallest change the runs can detect, and a pass is refused (Refused,
// with the repeats that would do) where that exceeds the threshold. The
// Report's ExitCode is 0 (pass), 1 (regression) or 2 (no verdict: failed or
// missing runs, nothing judged, refused metrics), 125 instead of 2 for git
// bisect run. Sets that cannot be compared at all (incomplete, a changed
// suite, a run in both) are an error from Compare.
//
// Outputs: Report.WriteText, WriteMarkdown (job summaries), WriteJUnit
// (one testcase per metric, regressions as failures; the schema is
// testdata/junit.xsd), WriteJSON, BenchmarkAction (github-action-benchmark's
// customSmallerIsBetter and customBiggerIsBetter entries), and Outputs,
// which checks and writes any of them plus an HTML directory with each
// side's report and PNG plots.
//
// The CLI is `snapring ci run|compare|baseline update|noise`; docs/ci.md
// describes the suite format and CI setups.
package ci
