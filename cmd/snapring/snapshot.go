package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/ublk"
)

// snapshotCmd groups the snapshot commands: run (the one-shot foreground
// server) and the daemon's clients (daemon.go).
func snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Snapshots: run one in the foreground (run), or drive the daemon's (create, take, info, list, destroy, watch, append)",
	}
	cmd.AddCommand(snapshotRunCmd())
	addSnapshotClientCmds(cmd)
	return cmd
}

// snapshotRunCmd exposes original devices through ublk, takes a snapshot of
// them and exposes the images, in the foreground until SIGINT or SIGTERM.
func snapshotRunCmd() *cobra.Command {
	var (
		origins    []string
		storage    string
		limit      string
		portion    string
		take       string
		chunkShift uint
		inMemory   int
		userCopy   string
		cfg        ublk.DeviceConfig
	)
	cmd := &cobra.Command{
		Use:   "run --origin FILE... --storage PATH --limit SIZE",
		Short: "One-shot, no daemon: expose files or block devices as ublk origin devices, take a snapshot (now, or on SIGUSR1) and expose its images, until SIGINT or SIGTERM",
		Long: `Prints one line per device as it appears:
  origin FILE /dev/ublkbN
  taken
  image FILE /dev/ublkbM
and events (low-free-space, no-space, overflow, corrupted) on stderr. Writes to the
origin devices are copied-on-write once the snapshot is taken; the images are readable
and writable. SIGINT or SIGTERM removes the images, destroys the snapshot and removes
the origin devices.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(origins) == 0 || storage == "" || limit == "" {
				return &exitError{2, errors.New("--origin, --storage and --limit are required")}
			}
			if take != "now" && take != "signal" {
				return &exitError{2, fmt.Errorf("--take %q: want now or signal", take)}
			}
			switch userCopy {
			case "auto":
				cfg.UserCopy = ublk.UserCopyAuto
			case "on":
				cfg.UserCopy = ublk.UserCopyOn
			case "off":
				cfg.UserCopy = ublk.UserCopyOff
			default:
				return &exitError{2, fmt.Errorf("--user-copy %q: want auto, on or off", userCopy)}
			}
			limitBytes, err := scenarios.ParseSize(limit)
			if err != nil {
				return &exitError{2, fmt.Errorf("--limit: %v", err)}
			}
			opts := engine.Options{ChunkMinimumShift: chunkShift, ChunkMaximumInQueue: inMemory}
			if portion != "" {
				p, err := scenarios.ParseSize(portion)
				if err != nil {
					return &exitError{2, fmt.Errorf("--portion: %v", err)}
				}
				opts.DiffStorageMinimum = p
			} else {
				opts.DiffStorageMinimum = min(int64(engine.DefaultDiffStorageMinimum), limitBytes/4/4096*4096)
			}
			return runSnapshot(cmd, origins, engine.StorageConfig{Path: storage, Limit: limitBytes}, opts, take == "signal", cfg)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&origins, "origin", nil, "original file or block device (repeat for several)")
	f.StringVar(&storage, "storage", "", "difference storage: a file, a directory (O_TMPFILE) or a block device")
	f.StringVar(&limit, "limit", "", "difference storage limit (e.g. 1GiB)")
	f.StringVar(&portion, "portion", "", "growth portion (default: a quarter of the limit, at most 1GiB)")
	f.StringVar(&take, "take", "now", "when to take the snapshot: now, or signal (on SIGUSR1)")
	f.UintVar(&chunkShift, "chunk-shift", engine.DefaultChunkMinimumShift, "chunk_minimum_shift (chunk size 1<<N)")
	f.IntVar(&inMemory, "chunks-in-memory", engine.DefaultChunkMaximumInQueue, "chunk_maximum_in_queue: chunks held in memory per device before writers wait")
	f.StringVar(&userCopy, "user-copy", "auto", "data path: auto (the buffer address, measured faster), on (UBLK_F_USER_COPY) or off (the buffer address)")
	f.IntVar(&cfg.Queues, "queues", ublk.DefaultQueues, "hardware queues per device")
	f.IntVar(&cfg.Depth, "depth", ublk.DefaultDepth, "requests in flight per queue")
	f.IntVar(&cfg.MaxIOBytes, "max-io", ublk.DefaultMaxIOBytes, "largest request in bytes (each tag's buffer; larger requests are split by the kernel)")
	return cmd
}

func runSnapshot(cmd *cobra.Command, paths []string, storage engine.StorageConfig, opts engine.Options, onSignal bool, cfg ublk.DeviceConfig) (err error) {
	out := cmd.OutOrStdout()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sig)

	// The set tears down images, then the snapshot, then the origins
	// (ublk.Teardown), whatever happens below.
	set := ublk.NewSnapshotSet()
	defer func() {
		if e := set.Close(); e != nil && err == nil {
			err = e
		}
	}()
	var devs []*engine.Device
	for _, p := range paths {
		d, err := engine.OpenDevice(p)
		if err != nil {
			return &exitError{2, err}
		}
		set.AddDevice(d)
		devs = append(devs, d)
	}
	snap, err := engine.NewSnapshot(devs, storage, opts)
	if err != nil {
		return &exitError{2, err}
	}
	set.SetSnapshot(snap)
	for _, d := range devs {
		u, err := ublk.Create(cfg, ublk.NewOriginTarget(d))
		if err != nil {
			return err
		}
		set.AddOrigin(u)
		fmt.Fprintf(out, "origin %s %s\n", d.Path(), u.Name())
	}
	go func() {
		for e := range snap.Events() {
			fmt.Fprintf(cmd.ErrOrStderr(), "event %s\n", e)
		}
	}()
	taken := false
	doTake := func() error {
		if err := snap.Take(); err != nil {
			return err
		}
		taken = true
		fmt.Fprintln(out, "taken")
		for _, d := range devs {
			u, err := ublk.Create(cfg, ublk.NewImageTarget(snap.Image(d)))
			if err != nil {
				return err
			}
			set.AddImage(u)
			fmt.Fprintf(out, "image %s %s\n", d.Path(), u.Name())
		}
		return nil
	}
	if !onSignal {
		if err := doTake(); err != nil {
			return err
		}
	}
	for {
		select {
		case <-set.Stopped():
			return fmt.Errorf("%s was stopped by the driver: removing the devices", set.StoppedDevice())
		case s := <-sig:
			if s == syscall.SIGUSR1 {
				if !taken {
					if err := doTake(); err != nil {
						return err
					}
				}
				continue
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "snapring: %v: removing the devices\n", s)
			return nil
		}
	}
}
