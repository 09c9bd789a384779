// Package scenarios reads the scenario files that describe a benchmark run of
// snapring: which original devices to snapshot, where the difference storage
// lives, the engine's options, the phases of the run, and the workloads that
// run at once. It also holds the built-in scenarios (see BuiltinNames).
//
// Parse and Load decode a file strictly, apply the defaults (EnsureDefaults)
// and validate it (Validate). Unknown keys, bad units, wrong types and
// impossible combinations are all errors. Every error is one line, names the
// file and line like a compiler ("run.yaml:12: unknown key "queu_depth" in
// workload (did you mean "queue_depth"?)") and wraps ErrInvalid, so a CLI can
// tell a bad scenario (exit 2) from a failed run. A Scenario built in Go has
// no lines, and its Validate errors read "scenarios: workloads[0]: …".
// Existence of paths and the sizes of block devices are not checked here; the
// runner checks them when it opens them.
//
// # Units
//
// Sizes are bytes with an optional binary unit: 4096, 512B, 4k, 4K, 4KiB,
// 256KiB, 1m, 1M, 1MiB, 1g, 1G, 1GiB, 1t, 1T, 1TiB (k = 1024). Whole numbers
// only; "kB" and "KB" are refused rather than guessed. Durations are Go
// durations: 500ms, 10s, 2m, 1m30s. Rates are operations per second, an
// integer, or unlimited (the same as 0). Size, Duration and Rate marshal back
// to these forms ("4KiB", "30s"), so a resolved scenario reads well as YAML
// (Scenario.YAML) and in JSON results; JSON input may also give plain
// numbers (bytes, nanoseconds, operations per second).
//
// # File format
//
// A file holds one YAML mapping. Every key, with its default:
//
//	name: default             # letters, digits, . _ + = -; default: the file name
//	description: text         # optional, at most 4096 bytes
//
//	devices:                  # required, 1..16; all belong to the one snapshot
//	  - name: disk0           # unique; default dev0, dev1, …
//	    size: 1GiB            # multiple of 512; required for tempfile, optional
//	                          # for path (0: the file's size), forbidden for blockdev
//	    backing:
//	      kind: tempfile      # tempfile (default) | path | blockdev
//	      fs: tmpfs           # tempfile only: tmpfs (default, /dev/shm) | disk
//	                          # (os.TempDir or the runner's configured directory)
//	      path: /dev/vdb      # required for path and blockdev; forbidden for tempfile
//
//	diff_storage:             # optional; one for the whole snapshot
//	  kind: tempfile          # tempfile (default) | file | dir (an O_TMPFILE made
//	                          # in the directory) | blockdev
//	  fs: tmpfs               # tempfile only, as for devices
//	  path: /var/tmp          # required for file, dir and blockdev; forbidden for tempfile
//	  limit: 2GiB             # the most it may grow to; default the sum of the
//	                          # device sizes (left 0 for the runner when a size
//	                          # is only known at run time); past it: overflow
//	  portion: 256MiB         # the step it grows by; at most limit; default
//	                          # engine.diff_storage_minimum, or limit if smaller;
//	                          # limit and portion: multiples of 4KiB, at least 1MiB
//	  overwrite: false        # file only: replace an existing file (default: refuse it);
//	                          # a file the run creates is removed when it ends
//
//	engine:                   # optional; blksnap's module parameters and defaults
//	  chunk_minimum_shift: 18         # 12..30; chunks of at least 1<<18 = 256KiB
//	  chunk_maximum_shift: 26         # 12..30, >= the minimum; at most 64MiB
//	  chunk_maximum_count: 1099511627776  # 1<<40 as in blksnap v4+ (v1–v3: 2097152);
//	                                  # chunks double while a device has more
//	  chunk_maximum_in_queue: 16      # 1..4096; chunks in memory awaiting store
//	  free_diff_buffer_pool_size: 128 # 1..65536; recycled chunk buffers
//	  diff_storage_minimum: 1GiB      # default portion; low-space event at half of it
//	  store_workers: 1                # 1..64
//	  image_read_bytes_per_second: 0  # backup throttle for image reads; 0: none
//	  writer_priority: true           # image reads wait while an origin write
//	                                  # waits for a chunk buffer (false: they don't)
//	  backup_nice: 5                  # 1..19; CPU priority of the threads serving
//	                                  # image reads (with writer_priority)
//
//	phases:                   # required
//	  prefill: true           # fill every device with random bytes first
//	  warmup: 0s              # workloads run but are not measured
//	  take_after: 0s          # take the snapshot this long after the workloads
//	                          # start; 0: before they start. Before it, origin
//	                          # workloads run without a snapshot (a baseline);
//	                          # image workloads start when it is taken. Must be
//	                          # before the end (warmup + run).
//	  run: 25s                # required, at least 100ms; warmup + run at most 24h
//	  destroy: true           # destroy the snapshot at the end, timed
//	  cow_capacity: 0s        # first measure, this long (0..1m), the chunks per
//	                          # second the engine copies with nothing else
//	                          # running; the result then says how much of that
//	                          # capacity the measured part used
//
//	workloads:                # required, 1..64; all run at once
//	  - name: writer          # unique; default the kind (origin-write, origin-write-2, …)
//	    kind: origin-write    # required: origin-write | image-read | image-write
//	    device: disk0         # default the first device
//	    pattern: random       # random (default) | sequential
//	    block_size: 4KiB      # multiple of 512, at most 64MiB and the device size
//	    queue_depth: 1        # 1..1024, per worker
//	    workers: 1            # 1..64; workers × queue_depth × block_size <= 1GiB
//	    rate: unlimited       # ops/s for the workload; unlimited/0: closed loop,
//	                          # otherwise open loop, at most 10000000
//	    distribution: uniform # random only: uniform (default) | zipf | hotspot
//	    zipf_theta: 1.2       # zipf only; > 1 (Go's rand.Zipf needs s > 1), <= 100
//	    hotspot:              # hotspot only; these are the defaults
//	      fraction_of_space: 0.1  # (0,1): the first 10% of the device…
//	      fraction_of_ops: 0.9    # (0,1]: …gets 90% of the operations
//	    discard_share: 0      # 0..1, origin-write only: share of discards
//	    loops: 0              # sequential only: passes before stopping; 0 = until the end
//
//	sweep:                    # optional: one run per value, see Scenario.Expand
//	  key: engine.chunk_minimum_shift
//	  values: [16, 18, 20, 22]
//
// Zero is the "unset" value in Go, so a file may not set to 0 a key whose
// default is not 0 (queue_depth: 0, block_size: 0, chunk_minimum_shift: 0):
// leave the key out instead.
//
// Impossible combinations include a path on a tempfile, a size on a blockdev,
// a block_size larger than its device, a workload on a device that does not
// exist, a distribution on a sequential workload, zipf_theta or hotspot
// without that distribution, discard_share on an image workload, loops on a
// random one, portion larger than limit, chunk_minimum_shift larger than
// chunk_maximum_shift and take_after at or past the end of the run.
//
// # Sweeps
//
// A sweep makes one file a family of runs that differ in one key: one of
// engine.chunk_minimum_shift, engine.chunk_maximum_shift,
// engine.chunk_maximum_in_queue, engine.free_diff_buffer_pool_size,
// engine.store_workers, or workloads[SEL].block_size, .queue_depth, .workers
// or .rate, where SEL is * (every workload) or a workload's name. Validate
// checks every run the sweep makes, and reports a bad one at its value.
// Expand returns the runs, named like "chunk-size-sweep/chunk_minimum_shift=16"
// or "name/writer.queue_depth=32".
package scenarios
