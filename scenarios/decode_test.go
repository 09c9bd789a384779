package scenarios_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/scenarios"
)

// minimal is the smallest valid scenario; the workload mapping is last so that
// cases can append keys to it. Line numbers:
//
//	1 name  2 devices  3 - name  4 size  5 phases  6 run  7 workloads
//	8 - name  9 kind  10… appended workload keys
const minimal = `name: t
devices:
  - name: d0
    size: 64MiB
phases:
  run: 1s
workloads:
  - name: w
    kind: origin-write
`

// parseGoodTests are valid files and checks of what Parse makes of them.
// FuzzParse starts from them too.
var parseGoodTests = []struct {
	name  string
	yaml  string
	check func(t *testing.T, s *scenarios.Scenario)
}{
	{"defaults", minimal, func(t *testing.T, s *scenarios.Scenario) {
		d := s.Devices[0]
		eq(t, "device backing", d.Backing, scenarios.Backing{Kind: scenarios.BackingTempfile, FS: scenarios.FSTmpfs})
		eq(t, "diff storage", s.DiffStorage, scenarios.DiffStorage{
			Kind: scenarios.DiffStorageTempfile, FS: scenarios.FSTmpfs, Limit: 64 * scenarios.MiB, Portion: 64 * scenarios.MiB,
		})
		eq(t, "engine", s.Engine, scenarios.EngineOptions{
			ChunkMinimumShift: 18, ChunkMaximumShift: 26, ChunkMaximumCount: 1 << 40, ChunkMaximumInQueue: 16,
			FreeDiffBufferPoolSize: 128, DiffStorageMinimum: scenarios.GiB, StoreWorkers: 1, BackupNice: 5,
		})
		eq(t, "prefill", s.Phases.PrefillEnabled(), true)
		eq(t, "destroy", s.Phases.DestroyEnabled(), true)
		eq(t, "warmup", s.Phases.Warmup, scenarios.Duration(0))
		eq(t, "take_after", s.Phases.TakeAfter, scenarios.Duration(0))
		eq(t, "run", s.Phases.Run, scenarios.Duration(time.Second))
		eq(t, "workload", s.Workloads[0], scenarios.Workload{
			Name: "w", Kind: scenarios.OriginWrite, Device: "d0", Pattern: scenarios.PatternRandom,
			BlockSize: 4 * scenarios.KiB, QueueDepth: 1, Workers: 1, Rate: scenarios.Unlimited,
			Distribution: scenarios.DistributionUniform,
		})
	}},
	{"name from file, device and workload names made up", `
devices: [{size: 1g}, {size: 1g}]
phases: {run: 1m30s}
workloads: [{kind: image-read}, {kind: image-read, device: dev1}, {kind: origin-write}]
`, func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "name", s.Name, "x")
		eq(t, "device names", s.Devices[0].Name+","+s.Devices[1].Name, "dev0,dev1")
		eq(t, "limit: sum of sizes", s.DiffStorage.Limit, 2*scenarios.GiB)
		eq(t, "portion: diff_storage_minimum", s.DiffStorage.Portion, scenarios.GiB)
		var names, devices []string
		for _, w := range s.Workloads {
			names, devices = append(names, w.Name), append(devices, w.Device)
		}
		eq(t, "workload names", strings.Join(names, ","), "image-read,image-read-2,origin-write")
		eq(t, "workload devices", strings.Join(devices, ","), "dev0,dev1,dev0")
		eq(t, "run", s.Phases.Run, scenarios.Duration(90*time.Second))
	}},
	{"every key", `
name: all-keys
description: every key set
devices:
  - name: a
    size: 4096
    backing: {kind: path, path: /var/tmp/a.img}
  - name: b
    backing: {kind: blockdev, path: /dev/vdb}
  - name: c
    size: 1T
    backing: {kind: tempfile, fs: disk}
diff_storage: {kind: dir, path: /var/tmp, limit: 8g, portion: 512MiB}
engine:
  chunk_minimum_shift: 12
  chunk_maximum_shift: 30
  chunk_maximum_count: 2097152
  chunk_maximum_in_queue: 256
  free_diff_buffer_pool_size: 64
  diff_storage_minimum: 256m
  store_workers: 4
  backup_nice: 12
phases: {prefill: false, warmup: 500ms, take_after: 2s, run: 10s, destroy: false}
workloads:
  - {name: w, kind: origin-write, device: c, pattern: random, block_size: 64k, queue_depth: 512,
     workers: 16, rate: 5000, distribution: zipf, zipf_theta: 1.5, discard_share: 0.25}
  - {name: r, kind: image-read, device: a, pattern: sequential, block_size: 4KiB, rate: unlimited, loops: 3}
  - {name: h, kind: image-write, device: b, distribution: hotspot, hotspot: {fraction_of_space: 0.01}}
`, func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "device a", s.Devices[0], scenarios.Device{Name: "a", Size: 4 * scenarios.KiB,
			Backing: scenarios.Backing{Kind: scenarios.BackingPath, Path: "/var/tmp/a.img"}})
		eq(t, "device b", s.Devices[1], scenarios.Device{Name: "b",
			Backing: scenarios.Backing{Kind: scenarios.BackingBlockdev, Path: "/dev/vdb"}})
		eq(t, "device c", s.Devices[2].Backing.FS, scenarios.FSDisk)
		eq(t, "device c size", s.Devices[2].Size, scenarios.TiB)
		eq(t, "diff storage", s.DiffStorage, scenarios.DiffStorage{
			Kind: scenarios.DiffStorageDir, Path: "/var/tmp", Limit: 8 * scenarios.GiB, Portion: 512 * scenarios.MiB,
		})
		eq(t, "engine", s.Engine, scenarios.EngineOptions{
			ChunkMinimumShift: 12, ChunkMaximumShift: 30, ChunkMaximumCount: 2097152, ChunkMaximumInQueue: 256,
			FreeDiffBufferPoolSize: 64, DiffStorageMinimum: 256 * scenarios.MiB, StoreWorkers: 4, BackupNice: 12,
		})
		eq(t, "phases", [5]any{s.Phases.PrefillEnabled(), s.Phases.Warmup, s.Phases.TakeAfter, s.Phases.Run, s.Phases.DestroyEnabled()},
			[5]any{false, scenarios.Duration(500 * time.Millisecond), scenarios.Duration(2 * time.Second), scenarios.Duration(10 * time.Second), false})
		eq(t, "w", s.Workloads[0], scenarios.Workload{
			Name: "w", Kind: scenarios.OriginWrite, Device: "c", Pattern: scenarios.PatternRandom,
			BlockSize: 64 * scenarios.KiB, QueueDepth: 512, Workers: 16, Rate: 5000,
			Distribution: scenarios.DistributionZipf, ZipfTheta: 1.5, DiscardShare: 0.25,
		})
		eq(t, "r", s.Workloads[1], scenarios.Workload{
			Name: "r", Kind: scenarios.ImageRead, Device: "a", Pattern: scenarios.PatternSequential,
			BlockSize: 4 * scenarios.KiB, QueueDepth: 1, Workers: 1, Loops: 3,
		})
		eq(t, "h hotspot", *s.Workloads[2].Hotspot, scenarios.Hotspot{FractionOfSpace: 0.01, FractionOfOps: 0.9})
	}},
	{"limit unknown with a blockdev device", `
devices: [{backing: {kind: blockdev, path: /dev/vdb}}]
phases: {run: 1s}
workloads: [{kind: origin-write}]
`, func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "limit", s.DiffStorage.Limit, scenarios.Size(0))
		eq(t, "portion", s.DiffStorage.Portion, scenarios.GiB)
	}},
	{"portion defaults to a smaller limit", minimal + "diff_storage: {limit: 8MiB}\n", func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "portion", s.DiffStorage.Portion, 8*scenarios.MiB)
	}},
	{"zipf default theta", minimal + "    distribution: zipf\n", func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "theta", s.Workloads[0].ZipfTheta, 1.2)
	}},
	{"hotspot default", minimal + "    distribution: hotspot\n", func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "hotspot", *s.Workloads[0].Hotspot, scenarios.DefaultHotspot)
	}},
	{"aliases are followed", `
devices: [&dev {name: a, size: 1MiB}]
phases: {run: &t 5s, warmup: *t}
workloads: [{kind: origin-write, block_size: &bs 8k}, {kind: image-read, block_size: *bs}]
`, func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "warmup", s.Phases.Warmup, scenarios.Duration(5*time.Second))
		eq(t, "block size", s.Workloads[1].BlockSize, 8*scenarios.KiB)
	}},
	{"comments, quoting and document marker", `---
# a comment
name: "quoted"  # trailing comment
description: |

  two lines,
  	trimmed

devices:
  - {name: 'd', size: "64k"}
phases:
  run: "1s"
workloads:
  - kind: "origin-write"
...
`, func(t *testing.T, s *scenarios.Scenario) {
		eq(t, "name", s.Name, "quoted")
		eq(t, "size", s.Devices[0].Size, 64*scenarios.KiB)
	}},
}

func TestParseGood(t *testing.T) {
	for _, tt := range parseGoodTests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("x.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// parseBadTests are files with one problem each and the exact message, file
// and line Parse must give. FuzzParse starts from them too.
var parseBadTests = []struct {
	name string
	yaml string
	want string
}{
	// Keys.
	{"typo in workload key", minimal + "    queu_depth: 4\n",
		`x.yaml:10: unknown key "queu_depth" in workload (did you mean "queue_depth"?)`},
	{"unknown top-level key", "foo: 1\n" + minimal,
		`x.yaml:1: unknown key "foo" at top level (want one of name, description, devices, diff_storage, engine, phases, workloads, sweep)`},
	{"typo in engine key", minimal + "engine:\n  chunk_minimum_shfit: 20\n",
		`x.yaml:11: unknown key "chunk_minimum_shfit" in engine (did you mean "chunk_minimum_shift"?)`},
	{"unknown hotspot key", minimal + "    distribution: hotspot\n    hotspot: {space: 0.1}\n",
		`x.yaml:11: unknown key "space" in hotspot (want one of fraction_of_space, fraction_of_ops)`},
	{"duplicate key", minimal + "    kind: image-read\n",
		`x.yaml:10: duplicate key "kind" in workload (first on line 9)`},
	{"missing run", strings.Replace(minimal, "  run: 1s\n", "  warmup: 1s\n", 1),
		`x.yaml:6: missing key "run" in phases`},
	{"missing workloads", "devices: [{size: 1MiB}]\nphases: {run: 1s}\n",
		`x.yaml:1: missing key "workloads" at top level`},
	{"missing kind", minimal + "  - name: w2\n    device: d0\n",
		`x.yaml:10: missing key "kind" in workload`},
	{"key that is a mapping", minimal + "    ? {a: 1}\n    : 2\n",
		`x.yaml:10: bad key in workload: want a name, got a mapping`},

	// Units and types.
	{"bad size unit", "devices:\n  - name: d0\n    size: 4kb\n",
		`x.yaml:3: bad size "4kb": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
	{"decimal size", minimal + "    block_size: 1.5KiB\n",
		`x.yaml:10: bad block_size "1.5KiB": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
	{"size too large", minimal + "    block_size: 99999999T\n",
		`x.yaml:10: bad block_size "99999999T": too large`},
	{"zero size", minimal + "    block_size: 0\n",
		`x.yaml:10: block_size 0 must be positive (leave the key out for the default)`},
	{"size as a list", minimal + "    block_size: [4k]\n",
		`x.yaml:10: bad block_size: want a size such as 4KiB, got a list`},
	{"integer as a string", minimal + "    queue_depth: abc\n",
		`x.yaml:10: bad queue_depth "abc": want an integer`},
	{"integer as a float", minimal + "    queue_depth: 1.5\n",
		`x.yaml:10: bad queue_depth 1.5: want an integer`},
	{"integer as a list", minimal + "    queue_depth: [1]\n",
		`x.yaml:10: bad queue_depth: want an integer, got a list`},
	{"empty value", minimal + "    queue_depth:\n",
		`x.yaml:10: bad queue_depth: want an integer, got nothing`},
	{"explicit zero queue depth", minimal + "    queue_depth: 0\n",
		`x.yaml:10: queue_depth 0 out of range 1..1024`},
	{"queue depth too deep", minimal + "    queue_depth: 2000\n",
		`x.yaml:10: queue_depth 2000 out of range 1..1024`},
	{"explicit zero shift", minimal + "engine: {chunk_minimum_shift: 0}\n",
		`x.yaml:10: chunk_minimum_shift 0 out of range 12..30`},
	{"duration without unit", strings.Replace(minimal, "run: 1s", "run: 10", 1),
		`x.yaml:6: bad run 10: want a duration such as 500ms, 10s or 1m30s`},
	{"duration with space", strings.Replace(minimal, "run: 1s", "run: 10 s", 1),
		`x.yaml:6: bad run "10 s": want a duration such as 500ms, 10s or 1m30s`},
	{"zero run", strings.Replace(minimal, "run: 1s", "run: 0s", 1),
		`x.yaml:6: run 0s must be positive`},
	{"negative warmup", strings.Replace(minimal, "run: 1s", "run: 1s\n  warmup: -1s", 1),
		`x.yaml:7: warmup -1s must not be negative`},
	{"bad rate", minimal + "    rate: fast\n",
		`x.yaml:10: bad rate "fast": want operations per second (an integer) or unlimited`},
	{"negative rate", minimal + "    rate: -5\n",
		`x.yaml:10: bad rate -5: want operations per second (an integer) or unlimited`},
	{"boolean as yes", "phases:\n  prefill: yes\n",
		`x.yaml:2: bad prefill "yes": want true or false`},
	{"string as a number", "name: 123\n",
		`x.yaml:1: bad name 123: want a string`},
	{"list where a mapping goes", "devices: [{size: 1MiB}]\ndiff_storage: [tempfile]\n",
		`x.yaml:2: bad diff_storage: want a mapping, got a list`},
	{"mapping where a list goes", "devices: {name: d0}\n",
		`x.yaml:1: bad devices: want a list, got a mapping`},
	{"float as a string", minimal + "    discard_share: lots\n",
		`x.yaml:10: bad discard_share "lots": want a number`},
	{"explicit zero zipf theta", minimal + "    distribution: zipf\n    zipf_theta: 0\n",
		`x.yaml:11: zipf_theta 0 out of range: want more than 1 (Go's rand.Zipf needs s > 1) and at most 100`},

	// Values out of range, checked after defaults.
	{"bad name", strings.Replace(minimal, "name: t", "name: my run", 1),
		`x.yaml:1: bad name "my run": want letters, digits and . _ + = - (at most 128 bytes), starting with a letter or digit`},
	{"control character in a path", strings.Replace(minimal, "size: 64MiB", "size: 64MiB\n    backing: {kind: path, path: \"/a\\nb\"}", 1),
		`x.yaml:5: bad path: want at most 4096 bytes and no control characters`},
	{"control character in the description", minimal + "description: \"a\\x07b\"\n",
		`x.yaml:10: bad description: want text without control characters other than newline and tab`},
	{"bad kind", strings.Replace(minimal, "kind: origin-write", "kind: origin-read", 1),
		`x.yaml:9: bad kind "origin-read": want one of origin-write, image-read, image-write`},
	{"bad pattern", minimal + "    pattern: strided\n",
		`x.yaml:10: bad pattern "strided": want one of random, sequential`},
	{"bad distribution", minimal + "    distribution: pareto\n",
		`x.yaml:10: bad distribution "pareto": want one of uniform, zipf, hotspot`},
	{"block size not in sectors", minimal + "    block_size: 1000\n",
		`x.yaml:10: block_size 1000B is not a positive multiple of 512 bytes`},
	{"block size too large", strings.Replace(minimal, "64MiB", "1GiB", 1) + "    block_size: 128MiB\n",
		`x.yaml:10: block_size 128MiB larger than 64MiB`},
	{"in-flight budget", minimal + "    block_size: 64MiB\n    queue_depth: 32\n",
		`x.yaml:10: workers 1 × queue_depth 32 × block_size 64MiB in flight is more than 1GiB`},
	{"zipf theta of 1", minimal + "    distribution: zipf\n    zipf_theta: 1\n",
		`x.yaml:11: zipf_theta 1 out of range: want more than 1 (Go's rand.Zipf needs s > 1) and at most 100`},
	{"fraction of space of 1", minimal + "    distribution: hotspot\n    hotspot: {fraction_of_space: 1}\n",
		`x.yaml:11: fraction_of_space 1 out of range: want more than 0 and less than 1`},
	{"discard share above 1", minimal + "    discard_share: 1.5\n",
		`x.yaml:10: discard_share 1.5 out of range 0..1`},
	{"device size not in sectors", strings.Replace(minimal, "64MiB", "1000", 1),
		`x.yaml:4: size 1000B is not a multiple of 512 bytes`},
	{"chunk shift too large", minimal + "engine:\n  chunk_maximum_shift: 40\n",
		`x.yaml:11: chunk_maximum_shift 40 out of range 12..30`},
	{"too many devices", "devices: [" + strings.Repeat("{size: 1MiB}, ", 17) + "]\nphases: {run: 1s}\nworkloads: [{kind: image-read}]\n",
		`x.yaml:1: 17 devices: at most 16`},
	{"no workloads", strings.Replace(minimal, "  - name: w\n    kind: origin-write\n", "  []\n", 1),
		`x.yaml:7: no workloads: want at least one`},
	{"duplicate workload name", minimal + "  - name: w\n    kind: image-read\n",
		`x.yaml:10: duplicate workload name "w"`},
	{"duplicate device name", strings.Replace(minimal, "devices:\n", "devices:\n  - {name: d0, size: 1MiB}\n", 1),
		`x.yaml:4: duplicate device name "d0"`},

	// Impossible combinations.
	{"block size larger than device", strings.Replace(minimal, "64MiB", "4KiB", 1) + "    block_size: 8KiB\n",
		`x.yaml:10: impossible: block_size 8KiB larger than device size 4KiB`},
	{"default block size larger than device", strings.Replace(minimal, "64MiB", "2KiB", 1),
		`x.yaml:8: impossible: block_size 4KiB larger than device size 2KiB`},
	{"device not found", minimal + "    device: d9\n",
		`x.yaml:10: impossible: device "d9" not found (have "d0")`},
	{"discard share on image read", strings.Replace(minimal, "origin-write", "image-read", 1) + "    discard_share: 0.1\n",
		`x.yaml:10: impossible: discard_share with kind image-read (only origin-write discards)`},
	{"distribution on sequential", minimal + "    pattern: sequential\n    distribution: uniform\n",
		`x.yaml:11: impossible: distribution uniform with pattern sequential (only random offsets have a distribution)`},
	{"zipf theta without zipf", minimal + "    zipf_theta: 1.2\n",
		`x.yaml:10: impossible: zipf_theta without distribution zipf`},
	{"hotspot without hotspot", minimal + "    hotspot: {fraction_of_space: 0.5}\n",
		`x.yaml:10: impossible: hotspot without distribution hotspot`},
	{"hot area smaller than a block", minimal + "    distribution: hotspot\n    block_size: 1MiB\n    hotspot: {fraction_of_space: 0.01}\n",
		`x.yaml:12: impossible: hot area 0.01 of device size 64MiB is smaller than block_size 1MiB`},
	{"loops on random", minimal + "    loops: 2\n",
		`x.yaml:10: impossible: loops with pattern random (only sequential workloads make passes)`},
	{"tempfile with path", strings.Replace(minimal, "size: 64MiB", "size: 64MiB\n    backing: {kind: tempfile, path: /tmp/x}", 1),
		`x.yaml:5: impossible: path with kind tempfile (a tempfile makes its own file)`},
	{"path without path", strings.Replace(minimal, "size: 64MiB", "size: 64MiB\n    backing:\n      kind: path", 1),
		`x.yaml:5: missing path for kind path`},
	{"tempfile without size", strings.Replace(minimal, "size: 64MiB", "backing: {kind: tempfile}", 1),
		`x.yaml:3: missing size for a tempfile device`},
	{"blockdev with size", strings.Replace(minimal, "size: 64MiB", "size: 64MiB\n    backing: {kind: blockdev, path: /dev/vdb}", 1),
		`x.yaml:4: impossible: size with backing kind blockdev (the size comes from the device)`},
	{"fs on a path device", strings.Replace(minimal, "size: 64MiB", "size: 64MiB\n    backing: {kind: path, path: /a, fs: disk}", 1),
		`x.yaml:5: impossible: fs with kind path (fs is only for tempfile)`},
	{"bad fs", minimal + "diff_storage:\n  fs: ext4\n",
		`x.yaml:11: bad fs "ext4": want one of tmpfs, disk`},
	{"diff storage file without path", minimal + "diff_storage:\n  kind: file\n",
		`x.yaml:10: missing path for kind file`},
	{"portion larger than limit", minimal + "diff_storage:\n  limit: 8MiB\n  portion: 16MiB\n",
		`x.yaml:12: impossible: portion 16MiB larger than limit 8MiB`},
	{"minimum shift above maximum", minimal + "engine:\n  chunk_minimum_shift: 24\n  chunk_maximum_shift: 20\n",
		`x.yaml:11: impossible: chunk_minimum_shift 24 larger than chunk_maximum_shift 20`},
	{"take after the end", strings.Replace(minimal, "run: 1s", "run: 1s\n  warmup: 1s\n  take_after: 2s", 1),
		`x.yaml:8: impossible: take_after 2s is not before the end of the workloads (warmup 1s + run 1s)`},

	// Sweeps.
	{"unknown sweep key", minimal + "sweep:\n  key: engine.chunk_size\n  values: [1]\n",
		`x.yaml:11: bad sweep key "engine.chunk_size": want engine.chunk_minimum_shift, engine.chunk_maximum_shift, engine.chunk_maximum_in_queue, engine.free_diff_buffer_pool_size, engine.store_workers, or workloads[*] or workloads[NAME] with .block_size, .queue_depth, .workers or .rate`},
	{"sweep of a missing workload", minimal + "sweep:\n  key: workloads[nope].queue_depth\n  values: [1]\n",
		`x.yaml:11: impossible: sweep key "workloads[nope].queue_depth" names no workload (have "w")`},
	{"sweep value out of range", minimal + "sweep:\n  key: engine.chunk_minimum_shift\n  values:\n    - 16\n    - 40\n",
		`x.yaml:14: with chunk_minimum_shift=40: chunk_minimum_shift 40 out of range 12..30`},
	{"sweep value impossible", strings.Replace(minimal, "64MiB", "16MiB", 1) + "sweep: {key: 'workloads[*].block_size', values: [4k, 32MiB]}\n",
		`x.yaml:10: with block_size=32MiB: impossible: block_size 32MiB larger than device size 16MiB`},
	{"sweep value of the wrong type", minimal + "sweep: {key: 'workloads[w].queue_depth', values: [deep]}\n",
		`x.yaml:10: bad queue_depth "deep": want a whole number`},
	{"duplicate sweep value", minimal + "sweep:\n  key: workloads[*].block_size\n  values: [4k, 4KiB]\n",
		`x.yaml:12: duplicate sweep value 4KiB`},
	{"empty sweep", minimal + "sweep:\n  key: workloads[*].block_size\n  values: []\n",
		`x.yaml:12: no sweep values: want at least one`},

	// The file as a whole.
	{"empty file", "", `x.yaml:1: empty file: want a mapping with at least devices, phases and workloads`},
	{"only comments", "# nothing\n", `x.yaml:1: empty file: want a mapping with at least devices, phases and workloads`},
	{"lone document marker", "---", `x.yaml:1: bad top level: want a mapping, got nothing`},
	{"empty value at the end", minimal + "    queue_depth:", `x.yaml:10: bad queue_depth: want an integer, got nothing`},
	{"top level list", "- a\n- b\n", `x.yaml:1: bad top level: want a mapping, got a list`},
	{"top level scalar", "---\nhello\n", `x.yaml:2: bad top level: want a mapping, got a string`},
	{"two documents", minimal + "---\nname: u\n", `x.yaml:10: a second YAML document: a scenario file holds one`},
	{"syntax error on line 1", "name: a: b\n", `x.yaml:1: bad YAML: mapping values are not allowed in this context`},
	{"syntax error later", minimal + "    block_size: 4k: 8k\n", `x.yaml:10: bad YAML: mapping values are not allowed in this context`},
	{"unclosed flow mapping", minimal + "    hotspot: {fraction_of_space: 0.1\n  - kind: image-read\n", `x.yaml:10: bad YAML: did not find expected ',' or '}'`},
	{"bad indentation", minimal + "   queue_depth: 2\n", `x.yaml:10: bad YAML: did not find expected '-' indicator`},
	{"tab indentation", minimal + "\tqueue_depth: 2\n", `x.yaml:10: bad YAML: found a tab character that violates indentation`},
	{"invalid UTF-8", minimal + "    name: \xff\n", `x.yaml:10: bad YAML: invalid leading UTF-8 octet`},
	{"control character", minimal + "    name: \"a\x01\"\n", `x.yaml:10: bad YAML: control characters are not allowed`},
	{"unknown alias", minimal + "    queue_depth: *qd\n", `x.yaml:10: bad YAML: unknown anchor 'qd' referenced`},
	{"file too large", "# " + strings.Repeat("x", 1<<20) + "\n", `x.yaml:1: file too large: 1048579 bytes (at most 1048576)`},
}

// TestParseBad checks the exact message, file and line of each kind of
// problem.
func TestParseBad(t *testing.T) {
	for _, tt := range parseBadTests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("x.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q; got scenario %+v", tt.want, s)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse error\n got: %s\nwant: %s", got, tt.want)
			}
			if !errors.Is(err, scenarios.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
		})
	}
}

// TestValidateInGo checks the messages for scenarios built in Go, which have
// no file and line to name.
func TestValidateInGo(t *testing.T) {
	valid := func() *scenarios.Scenario {
		return (&scenarios.Scenario{
			Name:      "go",
			Devices:   []scenarios.Device{{Name: "d", Size: 64 * scenarios.MiB}},
			Phases:    scenarios.Phases{Run: scenarios.Duration(time.Second)},
			Workloads: []scenarios.Workload{{Kind: scenarios.OriginWrite}},
		}).EnsureDefaults()
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("Validate of a valid scenario: %v", err)
	}
	tests := []struct {
		name   string
		modify func(s *scenarios.Scenario)
		want   string
	}{
		{"queue depth", func(s *scenarios.Scenario) { s.Workloads[0].QueueDepth = 0 },
			"scenarios: workloads[0]: queue_depth 0 out of range 1..1024"},
		{"run", func(s *scenarios.Scenario) { s.Phases.Run = 0 },
			"scenarios: phases: run 0s must be positive"},
		{"name", func(s *scenarios.Scenario) { s.Name = "" },
			"scenarios: missing name"},
		{"negative device size", func(s *scenarios.Scenario) { s.Devices[0].Size = -4096 },
			"scenarios: devices[0]: size -4KiB must not be negative"},
		{"missing path", func(s *scenarios.Scenario) { s.Devices[0].Backing = scenarios.Backing{Kind: scenarios.BackingPath} },
			"scenarios: devices[0].backing: missing path for kind path"},
		{"engine", func(s *scenarios.Scenario) { s.Engine.StoreWorkers = 100 },
			"scenarios: engine: store_workers 100 out of range 1..64"},
		{"hotspot", func(s *scenarios.Scenario) {
			s.Workloads[0].Distribution = scenarios.DistributionHotspot
			s.Workloads[0].Hotspot = &scenarios.Hotspot{FractionOfSpace: 0.5, FractionOfOps: 0}
		}, "scenarios: workloads[0].hotspot: fraction_of_ops 0 out of range: want more than 0 and at most 1"},
		{"missing kind", func(s *scenarios.Scenario) { s.Workloads[0].Kind = "" },
			"scenarios: workloads[0]: missing kind: want one of origin-write, image-read, image-write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.modify(s)
			err := s.Validate()
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Validate error\n got: %s\nwant: %s", err, tt.want)
			}
			if !errors.Is(err, scenarios.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "my run.yaml")
	if err := os.WriteFile(good, []byte(strings.Replace(minimal, "name: t\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := scenarios.Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if s.Name != "my-run" {
		t.Errorf("name from file = %q, want %q", s.Name, "my-run")
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"    queue_depth: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = scenarios.Load(bad)
	if want := bad + ":10: queue_depth 0 out of range 1..1024"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) error = %v, want %s", err, want)
	}

	_, err = scenarios.Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || errors.Is(err, scenarios.ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want a not-exist error that is not ErrInvalid", err)
	}
}

func TestNameFromFile(t *testing.T) {
	noName := strings.Replace(minimal, "name: t\n", "", 1)
	tests := []struct{ file, want string }{
		{"x.yaml", "x"},
		{"dir/My run.yaml", "My-run"},
		{"", "scenario"},
		{".yaml", "scenario"},
		{"-x.yml", "scenario-x"},
		{strings.Repeat("a", 300) + ".yaml", strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		s, err := scenarios.Parse(tt.file, []byte(noName))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.file, err)
			continue
		}
		if s.Name != tt.want {
			t.Errorf("Parse(%q) name = %q, want %q", tt.file, s.Name, tt.want)
		}
	}
	_, err := scenarios.Parse("", []byte("foo: 1\n"))
	if want := `<input>:1: unknown key "foo" at top level (want one of name, description, devices, diff_storage, engine, phases, workloads, sweep)`; err == nil || err.Error() != want {
		t.Errorf("Parse without a file name: error = %v, want %s", err, want)
	}
}
