package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/fio"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/ublk"
)

// fioCmd runs fio against snapring's devices and dm-snapshot and records
// the results in snapring's schema.
func fioCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fio",
		Short: "Run fio (presets or a job file) against raw, passthrough, null, origin, image and dm-snapshot targets; results in snapring's schema",
	}
	cmd.AddCommand(fioRunCmd(), fioPresetsCmd(), fioShowCmd())
	return cmd
}

func fioRunCmd() *cobra.Command {
	var (
		cfg      fio.Config
		targets  []string
		hosts    string
		size     string
		userCopy string
		zeroCopy string
		html     bool
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "run [JOBFILE | --preset NAME] [--target KIND]... --out DIR",
		Short: "Set up each target, run fio with json+ and histogram logs, tear down, write one result per target (and round)",
		Long: `A job file names the device under test as filename=${TARGET} (and may use ${ORIGIN},
${IMAGE}, ${SIZE}, ${RUNTIME}). Targets: raw (the backing: a loop device over a file, or the
file), passthrough (snapring's ublk passthrough), null (snapring's ublk with no backing:
every request completes at once, reads return no data; the floor of the ublk crossing), origin (snapring's origin with an active
snapshot), image (its snapshot image), dm-snapshot (device-mapper's origin with an active
snapshot). raw always runs; every other result's ratios are against raw of the same round.
With --hosts the job runs on fio servers (fio --server) and the result merges their
histograms exactly, keeping each host's own. Exit 0 done, 2 any error (no result written).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				cfg.JobFile = args[0]
			}
			for _, t := range targets {
				for _, s := range strings.Split(t, ",") {
					k, err := fio.ParseKind(strings.TrimSpace(s))
					if err != nil {
						return &exitError{2, err}
					}
					cfg.Targets = append(cfg.Targets, k)
				}
			}
			if hosts != "" {
				cfg.Hosts = strings.Split(hosts, ",")
			}
			n, err := scenarios.ParseSize(size)
			if err != nil {
				return &exitError{2, fmt.Errorf("--size: %v", err)}
			}
			cfg.Size = n
			switch userCopy {
			case "auto":
				cfg.Devices.Ublk.UserCopy = ublk.UserCopyAuto
			case "on":
				cfg.Devices.Ublk.UserCopy = ublk.UserCopyOn
			case "off":
				cfg.Devices.Ublk.UserCopy = ublk.UserCopyOff
			default:
				return &exitError{2, fmt.Errorf("--user-copy %q: want auto, on or off", userCopy)}
			}
			zc, err := parseZeroCopy(zeroCopy)
			if err != nil {
				return &exitError{2, err}
			}
			cfg.Devices.Ublk.ZeroCopy = zc
			if zeroCopy == "on" && userCopy != "auto" {
				return &exitError{2, fmt.Errorf("--zero-copy on with --user-copy %s: zero copy moves no data, pick one", userCopy)}
			}
			if !quiet && isTerminal(os.Stderr) {
				cfg.Progress = os.Stderr
			}
			cfg.Commit = gitCommit()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			written, err := fio.Run(ctx, cfg)
			if err != nil {
				return &exitError{2, err}
			}
			out := cmd.OutOrStdout()
			for _, w := range written {
				fmt.Fprintln(out, "result:", w.Path)
			}
			if html {
				files, err := fio.WriteReports(written)
				if err != nil {
					return &exitError{2, err}
				}
				for _, f := range files {
					fmt.Fprintln(out, "report:", f)
				}
			}
			if err := fio.WriteSummary(out, written); err != nil {
				return &exitError{2, err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Preset, "preset", "", "run a preset (snapring fio presets) instead of a job file")
	f.StringArrayVar(&targets, "target", nil, "target to run (repeat or comma-separate): raw, passthrough, null, origin, image, dm-snapshot (default: the preset's)")
	f.StringVar(&hosts, "hosts", "", "run through fio's client/server on these fio servers: h1,h2:8765,... (target raw only)")
	f.StringVar(&cfg.OutDir, "out", "", "directory for the results (must exist)")
	f.StringVar(&cfg.Dir, "dir", "", "directory for the backing file and the difference stores (default $TMPDIR)")
	f.StringVar(&cfg.RemoteDir, "remote-dir", "/tmp", "with --hosts: directory on the servers for their files")
	f.StringVar(&size, "size", "256MiB", "size of the backing and of every device")
	f.DurationVar(&cfg.Runtime, "runtime", 10*time.Second, "runtime of the time-based presets (${RUNTIME})")
	f.IntVar(&cfg.Rounds, "rounds", 1, "rounds; every target runs once per round, the order rotating")
	f.StringVar(&cfg.Loop, "loop", "auto", "raw backing on a loop device: auto, on, off")
	f.UintVar(&cfg.Devices.ChunkShift, "chunk-shift", 12, "chunk size 1<<N of both snapshots (ours and dm-snapshot's)")
	f.IntVar(&cfg.Devices.ChunksInMemory, "chunks-in-memory", 0, "our engine's chunk_maximum_in_queue (0: default)")
	f.IntVar(&cfg.Devices.Ublk.Queues, "queues", 1, "ublk hardware queues per device")
	f.IntVar(&cfg.Devices.Ublk.Depth, "depth", 64, "ublk requests in flight per queue")
	f.IntVar(&cfg.Devices.Ublk.MaxIOBytes, "max-io", 1<<20, "ublk largest request in bytes (1 MiB: fio's 1 MiB reads arrive whole)")
	f.StringVar(&userCopy, "user-copy", "auto", "ublk data path: auto, on, off")
	f.BoolVar(&cfg.Devices.DirectOriginal, "direct-original", false, "open our engine's original with O_DIRECT (as dm-snapshot's bios bypass the page cache); default buffered")
	f.StringVar(&zeroCopy, "zero-copy", "auto", zeroCopyUsage+" (passthrough and origin; null and the image always copy)")
	f.StringVar(&cfg.Fio, "fio", "fio", "the fio binary")
	f.DurationVar(&cfg.Timeout, "timeout", 0, "limit for each fio invocation (default 10x the runtime + 5m)")
	f.BoolVar(&html, "html", false, "also write one HTML report per target (fio-NAME-TARGET.html) next to the results")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress display")
	return cmd
}

func fioPresetsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "presets",
		Short: "List the presets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fio.WritePresets(cmd.OutOrStdout())
		},
	}
}

func fioShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Print a preset's job file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := fio.FindPreset(args[0])
			if err != nil {
				return &exitError{2, err}
			}
			_, err = io.WriteString(cmd.OutOrStdout(), p.Job)
			return err
		},
	}
}
