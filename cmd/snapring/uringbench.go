package main

import (
	"fmt"
	"os"
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
				return fmt.Errorf("--rw %q: want randread, randwrite, read or write", rw)
			}
			if cfg.Path == "" {
				f, err := os.CreateTemp("/dev/shm", "snapring-uring-bench-*")
				if err != nil {
					return fmt.Errorf("temp file in /dev/shm: %w", err)
				}
				defer os.Remove(f.Name())
				if err := fill(f, size); err != nil {
					return err
				}
				f.Close()
				cfg.Path = f.Name()
			}
			if err := cfg.Validate(); err != nil {
				return err
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
func fill(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("filling %s: %w", f.Name(), err)
		}
	}
	return nil
}
