package scenarios_test

import (
	"slices"
	"testing"

	"github.com/snapring/snapring/scenarios"
)

func TestExpandWithoutSweep(t *testing.T) {
	s := mustParse(t, minimal)
	runs := s.Expand()
	if len(runs) != 1 || runs[0] != s {
		t.Fatalf("Expand without a sweep = %v, want the scenario itself", runs)
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name      string
		sweep     string
		wantNames []string
		check     func(t *testing.T, i int, run *scenarios.Scenario)
	}{
		{"engine key", "sweep: {key: engine.chunk_minimum_shift, values: [16, 18, 20]}\n",
			[]string{"t/chunk_minimum_shift=16", "t/chunk_minimum_shift=18", "t/chunk_minimum_shift=20"},
			func(t *testing.T, i int, run *scenarios.Scenario) {
				eq(t, "chunk_minimum_shift", run.Engine.ChunkMinimumShift, []int{16, 18, 20}[i])
			}},
		{"every workload's block size", "sweep: {key: 'workloads[*].block_size', values: [4k, 64KiB, 1m]}\n",
			[]string{"t/block_size=4KiB", "t/block_size=64KiB", "t/block_size=1MiB"},
			func(t *testing.T, i int, run *scenarios.Scenario) {
				want := []scenarios.Size{4 * scenarios.KiB, 64 * scenarios.KiB, scenarios.MiB}[i]
				eq(t, "w block_size", run.Workloads[0].BlockSize, want)
				eq(t, "r block_size", run.Workloads[1].BlockSize, want)
			}},
		{"one workload's queue depth", "sweep: {key: 'workloads[r].queue_depth', values: [1, 32]}\n",
			[]string{"t/r.queue_depth=1", "t/r.queue_depth=32"},
			func(t *testing.T, i int, run *scenarios.Scenario) {
				eq(t, "w queue_depth", run.Workloads[0].QueueDepth, 1)
				eq(t, "r queue_depth", run.Workloads[1].QueueDepth, []int{1, 32}[i])
			}},
		{"rate", "sweep: {key: 'workloads[w].rate', values: [unlimited, 1000]}\n",
			[]string{"t/w.rate=unlimited", "t/w.rate=1000"},
			func(t *testing.T, i int, run *scenarios.Scenario) {
				eq(t, "w rate", run.Workloads[0].Rate, []scenarios.Rate{scenarios.Unlimited, 1000}[i])
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, minimal+"  - {name: r, kind: image-read, pattern: sequential}\n"+tt.sweep)
			before, err := s.YAML()
			if err != nil {
				t.Fatal(err)
			}
			runs := s.Expand()
			var names []string
			for i, run := range runs {
				names = append(names, run.Name)
				if run.Sweep != nil {
					t.Errorf("%s still has a sweep", run.Name)
				}
				if err := run.Validate(); err != nil {
					t.Errorf("%s: Validate: %v", run.Name, err)
				}
				tt.check(t, i, run)
				// The copies are deep: changing one touches nothing else.
				run.Workloads[0].QueueDepth = 999
				run.Devices[0].Size = 1
				*run.Phases.Prefill = false
			}
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("names = %q, want %q", names, tt.wantNames)
			}
			after, err := s.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if string(before) != string(after) {
				t.Errorf("changing the expanded runs changed the original:\n%s\nbecame\n%s", before, after)
			}
		})
	}
}

func mustParse(t *testing.T, src string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}
