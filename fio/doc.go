// Package fio runs fio against snapring's devices and device-mapper's
// snapshot and records fio's figures as results in snapring's schema
// (package results), so that `snapring compare` and `snapring report` read
// them unchanged. It is `snapring fio`.
//
// # Runs
//
// Run sets up each target over one shared backing (a pseudo-random file of
// Config.Size, on a loop device when it can make one), runs fio with
// --output-format=json+ and a histogram log (write_hist_log,
// log_hist_msec=1000), tears the target down, and does so for every target
// in every round, the order rotating from round to round. Targets: raw (the
// backing), passthrough (our ublk passthrough), null (our ublk with no
// backing: the floor of the ublk crossing), origin (our ublk origin with
// an active snapshot), image (its image) and dm-snapshot (snapshot-origin
// and snapshot over loop devices, the same chunk size, the origin suspended
// around creating the snapshot). Every snapshot is fresh for its run.
// Passthrough and origin run ublk zero copy where the driver has
// UBLK_F_AUTO_BUF_REG (DeviceOptions.Ublk.ZeroCopy, --zero-copy); null and
// the image always copy; each result says which in its data_path.
//
// Job files name the device under test as ${TARGET} (and may use ${ORIGIN},
// ${IMAGE}, ${SIZE} in bytes, ${RUNTIME} in seconds); Run substitutes them
// and puts a [global] section with the histogram log in front. fio checks
// the job (--parse-only) before anything is set up. Presets lists the
// built-in jobs, after blksnap's fio tests.
//
// With Config.Hosts the job runs through fio's client/server (fio
// --client=host,port job, one job copy per host with its own histogram log
// prefix, since fio names client logs by host address only); each host's
// jobs are told apart by the host and port fio reports in client_stats.
//
// # Results
//
// One result per target and round: Engine is the target, Baseline the raw
// target of the same round (none for raw itself), Ratios between them. fio's
// reads are the class image-read, its writes origin-write (image-write on
// the image target). IOPS and MB/s are fio's (bw_bytes, 10^6 bytes per
// MB), summed over jobs and hosts; min, max and mean are fio's exact
// figures; Series comes from the histogram logs, one point per second, the
// window fio never logs (the last, partial one) filled in from fio's totals
// so that the series adds up to them. The "scenario" field holds a Meta:
// fio's version, the target, the preset or job file and the job text as
// run, the round and order, and in a multi-host run each host's classes
// with their histograms (HostResult).
//
// # The conversion and its error
//
// fio's latency histogram has 1856 bins: one per nanosecond below 128 ns,
// then 64 per power of two, so a sample lies within 1/128 of its bin's
// midpoint (BinRelativeError). json+ gives each non-empty bin as midpoint
// -> count. We record every count at its midpoint in an HdrHistogram of
// the results geometry (3 significant digits: values kept within 1/1024,
// rounded up), so the stored histogram's values are within 1/128 + 1/1024
// of the true latencies. The result's p50..p99.99 are computed as fio does
// (the midpoint of the first bin where the running count reaches p/100*N),
// so they equal fio's printed percentiles; over several hosts they are the
// percentiles of all hosts' samples together (the bins add exactly, and so
// do the HdrHistograms). Percentiles that compare and report compute from
// the stored histogram use HdrHistogram's rank rule (round(p*N) where fio
// uses ceil(p*N)): within 1/1024 of fio's when both ranks fall in the same
// bin, and otherwise the neighbouring sample's bin, which in a sparse tail
// can be far away.
//
// # Errors
//
// Everything is checked before the first device is set up: the job (fio
// --parse-only), fio being installed, targets this host cannot make
// (ErrUnsupported names the missing module or tool), every host answering.
// fio exiting non-zero, a job error, truncated or non-JSON output: one
// line, and no result: results are written to temporary names and renamed
// only when every run succeeded.
package fio
