package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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
		backupNice int
		userCopy   string
		zeroCopy   string
		force      bool
		readLimit  string
		direct     bool
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
			if err := checkDeviceConfig(&cfg, userCopy, zeroCopy); err != nil {
				return &exitError{2, err}
			}
			limitBytes, err := scenarios.ParseSize(limit)
			if err != nil {
				return &exitError{2, fmt.Errorf("--limit: %v", err)}
			}
			if limitBytes < 1<<20 || limitBytes%4096 != 0 {
				return &exitError{2, fmt.Errorf("--limit %s: want a multiple of 4KiB, at least 1MiB", limit)}
			}
			opts := engine.Options{ChunkMinimumShift: chunkShift, ChunkMaximumInQueue: inMemory, BackupNice: backupNice}
			if portion != "" {
				p, err := scenarios.ParseSize(portion)
				if err != nil {
					return &exitError{2, fmt.Errorf("--portion: %v", err)}
				}
				if p < 1<<20 || p%4096 != 0 || p > limitBytes {
					return &exitError{2, fmt.Errorf("--portion %s: want a multiple of 4KiB, at least 1MiB and at most --limit", portion)}
				}
				opts.DiffStorageMinimum = p
			} else {
				opts.DiffStorageMinimum = min(int64(engine.DefaultDiffStorageMinimum), limitBytes/4/4096*4096)
			}
			if readLimit != "" {
				r, err := scenarios.ParseSize(readLimit)
				if err != nil {
					return &exitError{2, fmt.Errorf("--image-read-limit: %v", err)}
				}
				opts.ImageReadBytesPerSecond = int64(r)
			}
			opts.EnsureDefaults()
			if err := opts.Validate(); err != nil {
				return &exitError{2, err}
			}
			for _, o := range origins {
				if err := checkBacking("--origin", o); err != nil {
					return &exitError{2, err}
				}
			}
			if err := checkStorage(storage, force); err != nil {
				return &exitError{2, err}
			}
			return runSnapshot(cmd, origins, engine.StorageConfig{Path: storage, Limit: limitBytes, Overwrite: force}, opts, take == "signal", cfg, engine.DeviceOptions{Direct: direct})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&origins, "origin", nil, "original file or block device (repeat for several)")
	f.StringVar(&storage, "storage", "", "difference storage: a file, a directory (O_TMPFILE) or a block device")
	f.StringVar(&limit, "limit", "", "difference storage limit (e.g. 1GiB)")
	f.StringVar(&portion, "portion", "", "growth portion (default: a quarter of the limit, at most 1GiB)")
	f.StringVar(&readLimit, "image-read-limit", "", "throttle the images' reads to this much per second, e.g. 200MiB (default: none; reads always wait while copy-on-write falls behind)")
	f.BoolVar(&direct, "direct", false, "open the originals with O_DIRECT: no second copy of their data in the page cache (requests then follow the device's logical block size); default buffered")
	f.BoolVar(&force, "force", false, "let --storage name an existing regular file, whose contents are replaced (without it such a file is refused)")
	f.StringVar(&take, "take", "now", "when to take the snapshot: now, or signal (on SIGUSR1)")
	f.UintVar(&chunkShift, "chunk-shift", engine.DefaultChunkMinimumShift, "chunk_minimum_shift (chunk size 1<<N)")
	f.IntVar(&backupNice, "backup-nice", engine.DefaultBackupNice, "backup_nice: CPU priority (nice 1..19) of the threads serving the images, so that the origins' writers and copy-on-write run first")
	f.IntVar(&inMemory, "chunks-in-memory", engine.DefaultChunkMaximumInQueue, "chunk_maximum_in_queue: chunks held in memory per device before writers wait")
	f.StringVar(&userCopy, "user-copy", "auto", "data path: auto (the buffer address, measured faster), on (UBLK_F_USER_COPY) or off (the buffer address)")
	f.StringVar(&zeroCopy, "zero-copy", "auto", zeroCopyUsage+" (origins only: images always copy)")
	f.IntVar(&cfg.Queues, "queues", ublk.DefaultQueues, "hardware queues per device")
	f.IntVar(&cfg.Depth, "depth", ublk.DefaultDepth, "requests in flight per queue")
	f.IntVar(&cfg.MaxIOBytes, "max-io", ublk.DefaultMaxIOBytes, "largest request in bytes (each tag's buffer; larger requests are split by the kernel)")
	return cmd
}

func runSnapshot(cmd *cobra.Command, paths []string, storage engine.StorageConfig, opts engine.Options, onSignal bool, cfg ublk.DeviceConfig, devOpts engine.DeviceOptions) (err error) {
	out := cmd.OutOrStdout()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sig)

	// Everything is checked before the difference storage is created: the
	// driver first, then the devices; the engine then refuses a storage
	// that exists (unless --force) or is one of the devices.
	if _, err := ublk.ProbeFeatures(); err != nil {
		return &exitError{2, err}
	}
	// A storage file this command makes is of no use once the snapshot is
	// destroyed (deferred first: runs after the teardown). Only a file the
	// engine did make (O_EXCL) is removed.
	_, statErr := os.Stat(storage.Path)
	madeStorage := false
	defer func() {
		if madeStorage {
			os.Remove(storage.Path)
		}
	}()
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
		d, err := engine.OpenDeviceWith(p, devOpts)
		if err != nil {
			return &exitError{2, err}
		}
		if _, err := opts.ChunkShift(d.Size(), d.Alignment()); err != nil {
			d.Close()
			return &exitError{2, fmt.Errorf("--origin %s: %w", p, err)}
		}
		set.AddDevice(d)
		devs = append(devs, d)
	}
	snap, err := engine.NewSnapshot(devs, storage, opts)
	if err != nil {
		return &exitError{2, err}
	}
	set.SetSnapshot(snap)
	madeStorage = errors.Is(statErr, os.ErrNotExist)
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
			u, err := ublk.Create(cfg.ForCopying(), ublk.NewImageTarget(snap.Image(d)))
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

// checkStorage is what can be said of --storage by stat alone: an existing
// regular file needs --force, a new file needs its directory.
func checkStorage(path string, force bool) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		dir := filepath.Dir(path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("--storage %s: directory %s does not exist", path, dir)
		}
		return nil
	case err != nil:
		return fmt.Errorf("--storage %s: %v", path, err)
	case fi.Mode().IsRegular() && !force:
		return fmt.Errorf("--storage %s exists: refusing to overwrite it (--force replaces its contents; or name a directory or a new file)", path)
	case fi.IsDir(), fi.Mode().IsRegular(), fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		return nil
	}
	return fmt.Errorf("--storage %s is neither a file, a directory nor a block device", path)
}
