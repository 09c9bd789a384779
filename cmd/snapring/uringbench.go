package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/bench"
)

func uringBenchCmd() *cobra.Command {
	var (
		cfg     bench.RawConfig
		rw      string
		size    int64
		withFio bool
	)
	cmd := &cobra.Command{
		Use:   "uring-bench",
		Short: "Raw io_uring load on a file; with --fio, fio on the same load first and the ratio",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch rw {
			case "randread":
				cfg.Random = true
			case "randwrite":
				cfg.Random, cfg.Write = true, true
			case "read":
			case "write":
				cfg.Write = true
			default:
				return &exitError{2, fmt.Errorf("--rw %q: want randread, randwrite, read or write", rw)}
			}
			// Everything is checked before the temp file is made.
			check := cfg
			if check.Path == "" {
				check.Path = "(temp file)"
				if size < int64(cfg.BlockSize) {
					return &exitError{2, fmt.Errorf("--size %d: smaller than --bs %d", size, cfg.BlockSize)}
				}
			} else if err := checkBacking("--file", cfg.Path); err != nil {
				return &exitError{2, err}
			}
			if err := check.Validate(); err != nil {
				return &exitError{2, err}
			}
			if cfg.Path == "" {
				f, path, err := bench.TempFile(size)
				if err != nil {
					return &exitError{2, err}
				}
				defer f.Close()
				cfg.Path = path
			}
			out := cmd.OutOrStdout()
			var fioIOPS float64
			if withFio {
				fr, err := bench.RunFio(cfg)
				if err != nil {
					return err
				}
				fioIOPS = fr.IOPS()
				fmt.Fprintf(out, "fio %-10s %s bs=%d qd=%d %v: %10.0f IOPS\n", fr.FioVersion, rw, cfg.BlockSize, cfg.QueueDepth, cfg.Duration, fioIOPS)
			}
			res, err := bench.RunRaw(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "snapring uring  %s bs=%d qd=%d %v: %10.0f IOPS\n", rw, cfg.BlockSize, cfg.QueueDepth, cfg.Duration, res.IOPS())
			if withFio {
				fmt.Fprintf(out, "ratio snapring/fio: %.3f\n", res.IOPS()/fioIOPS)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Path, "file", "", "file or block device (default: a temp file in /dev/shm of --size)")
	fl.Int64Var(&size, "size", 1<<30, "size of the temp file in bytes")
	fl.StringVar(&rw, "rw", "randread", "randread, randwrite, read or write")
	fl.IntVar(&cfg.BlockSize, "bs", 4096, "block size in bytes")
	fl.IntVar(&cfg.QueueDepth, "qd", 32, "queue depth")
	fl.DurationVar(&cfg.Duration, "runtime", 10*time.Second, "duration")
	fl.BoolVar(&withFio, "fio", false, "run fio (ioengine=io_uring) on the same load first and print the ratio")
	return cmd
}

// fill writes size bytes so that reads hit real pages.
