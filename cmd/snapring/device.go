package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/ublk"
)

// deviceCmd groups the commands that expose targets as ublk block devices.
func deviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "ublk devices: the daemon's (add, list, info, remove), a one-shot passthrough in the foreground, remove-stale",
	}
	cmd.AddCommand(devicePassthroughCmd(), deviceRemoveStaleCmd())
	addDeviceClientCmds(cmd)
	return cmd
}

// deviceRemoveStaleCmd deletes devices a dead server left behind (kill -9):
// the driver has failed their I/O; removing them frees the names.
func deviceRemoveStaleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove-stale ID|/dev/ublkbN...",
		Short: "Stop and delete ublk devices whose server died",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				id, err := strconv.ParseUint(strings.TrimPrefix(a, "/dev/ublkb"), 10, 32)
				if err != nil {
					return &exitError{2, fmt.Errorf("%q: want a device id or /dev/ublkbN", a)}
				}
				if err := ublk.Remove(uint32(id), 10*time.Second); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed /dev/ublkb%d\n", id)
			}
			return nil
		},
	}
}

func devicePassthroughCmd() *cobra.Command {
	var (
		cfg      ublk.DeviceConfig
		file     string
		userCopy string
		zeroCopy string
	)
	cmd := &cobra.Command{
		Use:   "passthrough --file PATH",
		Short: "Expose a file or block device unchanged (the baseline target)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return &exitError{2, errors.New("--file is required")}
			}
			if err := checkDeviceConfig(&cfg, userCopy, zeroCopy); err != nil {
				return &exitError{2, err}
			}
			if err := checkBacking("--file", file); err != nil {
				return &exitError{2, err}
			}
			if _, err := ublk.ProbeFeatures(); err != nil {
				return &exitError{2, err}
			}
			pt, err := ublk.OpenPassthrough(file)
			if err != nil {
				return err
			}
			defer pt.Close()
			return runDevice(cmd, cfg, pt)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "file or block device to expose")
	f.IntVar(&cfg.Queues, "queues", ublk.DefaultQueues, "hardware queues (one goroutine and io_uring ring each)")
	f.IntVar(&cfg.Depth, "depth", ublk.DefaultDepth, "requests in flight per queue")
	f.IntVar(&cfg.MaxIOBytes, "max-io", ublk.DefaultMaxIOBytes, "largest request in bytes")
	f.IntVar(&cfg.LogicalBlockBytes, "block-size", 512, "logical block size in bytes")
	f.StringVar(&userCopy, "user-copy", "auto", "data path: auto (the buffer address, measured faster), on (UBLK_F_USER_COPY) or off (the buffer address)")
	f.StringVar(&zeroCopy, "zero-copy", "auto", zeroCopyUsage)
	return cmd
}

// runDevice creates the device, prints its name and serves it until SIGINT
// or SIGTERM (or until the driver aborts it), then shuts it down cleanly.
func runDevice(cmd *cobra.Command, cfg ublk.DeviceConfig, target ublk.Target) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	dev, err := ublk.Create(cfg, target)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), dev.Name())
	select {
	case s := <-sig:
		fmt.Fprintf(cmd.ErrOrStderr(), "snapring: %v: stopping %s\n", s, dev.Name())
	case <-dev.Done():
		fmt.Fprintf(cmd.ErrOrStderr(), "snapring: %s stopped by the driver\n", dev.Name())
	}
	return dev.Close()
}

// checkDeviceConfig validates the ublk flags before anything is created:
// an explicit 0 is refused (EnsureDefaults would silently replace it), then
// the user-copy and zero-copy modes, then the whole configuration; the
// driver last.
func checkDeviceConfig(cfg *ublk.DeviceConfig, userCopy, zeroCopy string) error {
	switch {
	case cfg.Queues < 1:
		return fmt.Errorf("--queues %d: want at least 1", cfg.Queues)
	case cfg.Depth < 1:
		return fmt.Errorf("--depth %d: want at least 1", cfg.Depth)
	case cfg.MaxIOBytes < 1:
		return fmt.Errorf("--max-io %d: want a positive size in bytes", cfg.MaxIOBytes)
	}
	switch userCopy {
	case "auto":
		cfg.UserCopy = ublk.UserCopyAuto
	case "on":
		cfg.UserCopy = ublk.UserCopyOn
	case "off":
		cfg.UserCopy = ublk.UserCopyOff
	default:
		return fmt.Errorf("--user-copy %q: want auto, on or off", userCopy)
	}
	zc, err := parseZeroCopy(zeroCopy)
	if err != nil {
		return err
	}
	cfg.ZeroCopy = zc
	if zc == ublk.ZeroCopyOn && cfg.UserCopy != ublk.UserCopyAuto {
		return fmt.Errorf("--zero-copy on with --user-copy %s: zero copy moves no data, pick one", userCopy)
	}
	c := *cfg
	c.EnsureDefaults()
	return c.Validate()
}

// zeroCopyUsage is the --zero-copy flag's help.
const zeroCopyUsage = "ublk zero copy (UBLK_F_AUTO_BUF_REG, Linux 6.16): auto (where the driver has it and --user-copy is auto), on (required), off"

// parseZeroCopy parses --zero-copy.
func parseZeroCopy(s string) (ublk.ZeroCopyMode, error) {
	switch s {
	case "auto":
		return ublk.ZeroCopyAuto, nil
	case "on":
		return ublk.ZeroCopyOn, nil
	case "off":
		return ublk.ZeroCopyOff, nil
	}
	return 0, fmt.Errorf("--zero-copy %q: want auto, on or off", s)
}

// checkBacking refuses a path that is neither a regular file nor a block
// device, by stat alone.
func checkBacking(flag, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s %s does not exist", flag, path)
		}
		return fmt.Errorf("%s %s: %v", flag, path, err)
	}
	isBlock := fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	if !isBlock && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is neither a regular file nor a block device", flag, path)
	}
	if !isBlock && fi.Size() == 0 {
		return fmt.Errorf("%s %s is empty", flag, path)
	}
	return nil
}
