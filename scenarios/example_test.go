package scenarios_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/snapring/snapring/scenarios"
)

func ExampleParse() {
	src := `
name: quick
devices:
  - name: disk0
    size: 256MiB
phases:
  warmup: 1s
  run: 10s
workloads:
  - kind: origin-write
    queue_depth: 16
  - kind: image-read
    pattern: sequential
    block_size: 1m
`
	s, err := scenarios.Parse("quick.yaml", []byte(src))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %v warmup, %v measured\n", s.Name, time.Duration(s.Phases.Warmup), time.Duration(s.Phases.Run))
	d := s.Devices[0]
	fmt.Printf("device %s: %v %s on %s\n", d.Name, d.Size, d.Backing.Kind, d.Backing.FS)
	fmt.Printf("diff storage: %s on %s, up to %v in %v portions\n",
		s.DiffStorage.Kind, s.DiffStorage.FS, s.DiffStorage.Limit, s.DiffStorage.Portion)
	fmt.Printf("chunks of at least %v\n", scenarios.Size(1)<<s.Engine.ChunkMinimumShift)
	for _, w := range s.Workloads {
		fmt.Printf("%s on %s: %s %v blocks, queue depth %d, rate %v\n",
			w.Name, w.Device, w.Pattern, w.BlockSize, w.QueueDepth, w.Rate)
	}
	// Output:
	// quick: 1s warmup, 10s measured
	// device disk0: 256MiB tempfile on tmpfs
	// diff storage: tempfile on tmpfs, up to 256MiB in 256MiB portions
	// chunks of at least 256KiB
	// origin-write on disk0: random 4KiB blocks, queue depth 16, rate unlimited
	// image-read on disk0: sequential 1MiB blocks, queue depth 1, rate unlimited
}

func ExampleParse_error() {
	src := `
devices: [{name: disk0, size: 4KiB}]
phases: {run: 10s}
workloads:
  - kind: origin-write
    block_size: 8KiB
`
	_, err := scenarios.Parse("small.yaml", []byte(src))
	fmt.Println(err)
	fmt.Println(errors.Is(err, scenarios.ErrInvalid))
	// Output:
	// small.yaml:6: impossible: block_size 8KiB larger than device size 4KiB
	// true
}

func ExampleScenario_Expand() {
	s, err := scenarios.Builtin("chunk-size-sweep")
	if err != nil {
		log.Fatal(err)
	}
	for _, run := range s.Expand() {
		fmt.Println(run.Name, run.Engine.ChunkMinimumShift)
	}
	// Output:
	// chunk-size-sweep/chunk_minimum_shift=16 16
	// chunk-size-sweep/chunk_minimum_shift=18 18
	// chunk-size-sweep/chunk_minimum_shift=20 20
	// chunk-size-sweep/chunk_minimum_shift=22 22
}
