#!/usr/bin/env bash
# make perf-ci: the pull-request performance check of
# .github/workflows/perf.yml, locally. It builds snapring at PERF_BASE
# (default: main) in a temporary git worktree and at the working tree, runs
# PERF_SUITE with each on this machine, and judges the working tree against
# the base. With PERF_BASELINE (a results directory, a .tar.gz, or
# git:REV:PATH) it compares against that stored baseline instead of building
# the base. Everything goes to a new directory, PERF_OUT (default
# out/perf-ci/<UTC time>): base/, new/, summary.md, junit.xml, report.json,
# benchmark-smaller.json, benchmark-bigger.json, html/.
# Exit status: snapring ci compare's (0 pass, 1 regression, 2 no verdict).
set -euo pipefail
GO=${GO:-go}
suite=${PERF_SUITE:-ci/suites/pr.yaml}
base_ref=${PERF_BASE:-main}
baseline=${PERF_BASELINE:-}
out=${PERF_OUT:-${OUT:-out}/perf-ci/$(date -u +%Y%m%d-%H%M%S)}
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  echo "perf-ci: $out exists and is not empty" >&2
  exit 2
fi
mkdir -p "$out" bin
"$GO" build -ldflags "-X main.commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +dirty)" -o bin/snapring ./cmd/snapring

if [ -z "$baseline" ]; then
  base_commit=$(git rev-parse --verify --quiet "$base_ref^{commit}") || { echo "perf-ci: PERF_BASE=$base_ref is not a commit" >&2; exit 2; }
  wt=$(mktemp -d)
  git worktree add --detach -q "$wt" "$base_commit"
  trap 'git worktree remove --force "$wt"' EXIT
  (cd "$wt" && "$GO" build -ldflags "-X main.commit=$(git rev-parse --short HEAD)" -o "$wt/snapring-base" ./cmd/snapring)
  if ! "$wt/snapring-base" ci --help >/dev/null 2>&1; then
    echo "perf-ci: $base_ref has no 'snapring ci'; compare against a stored baseline with PERF_BASELINE=DIR" >&2
    exit 2
  fi
  echo "perf-ci: base $base_ref ($(git rev-parse --short "$base_commit"))"
  "$wt/snapring-base" ci run "$suite" -o "$out/base"
  baseline=$out/base
fi
echo "perf-ci: new (working tree)"
./bin/snapring ci run "$suite" -o "$out/new"
status=0
./bin/snapring ci compare --baseline-ref "$baseline" "$out/new" \
  --markdown "$out/summary.md" --junit "$out/junit.xml" --json "$out/report.json" \
  --benchmark-action "$out/benchmark-smaller.json" --benchmark-action-bigger "$out/benchmark-bigger.json" \
  --html "$out/html" --png || status=$?
echo "perf-ci: report in $out (exit $status)"
exit $status
