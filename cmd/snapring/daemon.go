package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/client"
	"github.com/snapring/snapring/daemon"
	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/scenarios"
)

// daemonCmd runs the long-lived service (package daemon).
func daemonCmd() *cobra.Command {
	var opts daemon.Options
	cmd := &cobra.Command{
		Use:   "daemon [--config FILE]",
		Short: "Run the snapring daemon: ublk devices and snapshots driven over the control API (docs/api.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := daemon.Run(opts)
			if errors.Is(err, daemon.ErrInvalidConfig) {
				return &exitError{2, err}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.ConfigPath, "config", "", "YAML configuration (dist/snapring.yaml documents every key); reloaded on SIGHUP")
	cmd.Flags().StringVar(&opts.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on host:port (e.g. 127.0.0.1:9477; default off)")
	var fh clientFlags
	cmd.AddCommand(clientCmd("health", "Ask a running daemon how it is: status, devices, snapshots, and its goroutines, open fds and RSS", cobra.NoArgs, &fh,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			h, err := c.Health(cmd.Context())
			if err != nil {
				return err
			}
			if fh.output == "json" {
				return printJSON(cmd.OutOrStdout(), h)
			}
			table(cmd.OutOrStdout(), "STATUS\tDEVICES\tSNAPSHOTS\tSUBSCRIBERS\tUPTIME\tGOROUTINES\tFDS\tRSS", [][]string{{h.Status,
				strconv.Itoa(h.Devices), strconv.Itoa(h.Snapshots), strconv.Itoa(h.Subscribers), fmt.Sprintf("%.0fs", h.UptimeSeconds),
				strconv.Itoa(h.Goroutines), strconv.Itoa(h.OpenFDs), strconv.FormatInt(h.RSSBytes, 10)}})
			return nil
		}))
	return cmd
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	socket string
	output string
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", "", "daemon socket (default $SNAPRING_SOCKET or "+api.DefaultSocket+")")
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output: table or json")
}

func (f *clientFlags) client() (*client.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, &exitError{2, fmt.Errorf("-o %q: want table or json", f.output)}
	}
	return client.New(client.Socket(f.socket)), nil
}

// apiExit maps API errors to exit codes: bad input 2, the rest 1.
func apiExit(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Code == api.CodeInvalidRequest || ae.Code == api.CodeNotFound || ae.Code == api.CodeRequestTooLarge) {
		return &exitError{2, err}
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func clientCmd(use, short string, args cobra.PositionalArgs, f *clientFlags, run func(cmd *cobra.Command, c *client.Client, args []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			defer c.Close()
			return apiExit(run(cmd, c, args))
		}}
	f.bind(cmd)
	return cmd
}

func deviceRows(ds []api.Device) [][]string {
	var rows [][]string
	for _, d := range ds {
		snap := "-"
		if d.Snapshot != 0 {
			snap = strconv.FormatUint(d.Snapshot, 10)
		}
		rows = append(rows, []string{strconv.FormatUint(d.ID, 10), d.Name, d.Path, strconv.FormatInt(d.SizeBytes, 10), snap})
	}
	return rows
}

const deviceHeader = "ID\tDEVICE\tPATH\tSIZE\tSNAPSHOT"

// addDeviceClientCmds adds the daemon's device commands (add, list, info,
// remove) to the device group.
func addDeviceClientCmds(parent *cobra.Command) {
	var fa, fl, fi, fr clientFlags
	var req api.DeviceAddRequest
	add := clientCmd("add PATH", "Ask the daemon to expose PATH (file or block device) as a ublk origin device", cobra.ExactArgs(1), &fa,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			req.Path = args[0]
			d, err := c.AddDevice(cmd.Context(), req)
			if err != nil {
				return err
			}
			if fa.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			table(cmd.OutOrStdout(), deviceHeader, deviceRows([]api.Device{d}))
			return nil
		})
	add.Flags().IntVar(&req.Queues, "queues", 0, "hardware queues (default: the daemon's)")
	add.Flags().IntVar(&req.Depth, "depth", 0, "requests in flight per queue (default: the daemon's)")
	add.Flags().IntVar(&req.MaxIOBytes, "max-io", 0, "largest request in bytes (default: the daemon's)")
	add.Flags().StringVar(&req.UserCopy, "user-copy", "", "auto, on or off (default: the daemon's)")
	add.Flags().BoolVar(&req.Direct, "direct", false, "open the original with O_DIRECT (no second copy of its data in the page cache)")
	list := clientCmd("list", "List the daemon's devices", cobra.NoArgs, &fl,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			ds, err := c.Devices(cmd.Context())
			if err != nil {
				return err
			}
			if fl.output == "json" {
				return printJSON(cmd.OutOrStdout(), api.DeviceList{Devices: ds})
			}
			table(cmd.OutOrStdout(), deviceHeader, deviceRows(ds))
			return nil
		})
	info := clientCmd("info ID|PATH|/dev/ublkbN", "Show one of the daemon's devices", cobra.ExactArgs(1), &fi,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			d, err := c.Device(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if fi.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			table(cmd.OutOrStdout(), deviceHeader, deviceRows([]api.Device{d}))
			return nil
		})
	remove := clientCmd("remove ID|PATH|/dev/ublkbN...", "Ask the daemon to stop serving devices (no snapshot may cover them)", cobra.MinimumNArgs(1), &fr,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, a := range args {
				if err := c.RemoveDevice(cmd.Context(), a); err != nil {
					return err
				}
				if fr.output == "table" {
					fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", a)
				}
			}
			return nil
		})
	parent.AddCommand(add, list, info, remove)
}

func snapshotRows(ss []api.Snapshot) [][]string {
	var rows [][]string
	for _, s := range ss {
		var devs, imgs []string
		for _, d := range s.Devices {
			devs = append(devs, strconv.FormatUint(d.Device, 10))
			if d.Image != "" {
				imgs = append(imgs, d.Image)
			}
		}
		img := strings.Join(imgs, ",")
		if img == "" {
			img = "-"
		}
		rows = append(rows, []string{strconv.FormatUint(s.ID, 10), s.Name, s.State, strings.Join(devs, ","), img,
			fmt.Sprintf("%d/%d", s.Storage.UsedBytes, s.Storage.LimitBytes), fmt.Sprintf("%.1f%%", s.Storage.UsedPercent),
			fmt.Sprintf("%d/%d/%d", s.Chunks.Copied, s.Chunks.Stored, s.Chunks.Failed)})
	}
	return rows
}

const snapshotHeader = "ID\tNAME\tSTATE\tDEVICES\tIMAGES\tUSED/LIMIT\tFULL\tCOPIED/STORED/FAILED"

const snapshotDeviceHeader = "DEVICE\tPATH\tORIGIN\tIMAGE\tCHUNK\tCOPIED\tSTORED\tIN-MEMORY\tFAILED\tIMAGE-STATE"

// snapshotDeviceRows are snapshot info's per-device lines: each device's
// own chunk counters.
func snapshotDeviceRows(ds []api.SnapshotDevice) [][]string {
	var rows [][]string
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, d := range ds {
		state := "ok"
		if d.Corrupted {
			state = "corrupted"
		}
		c := d.Chunks
		rows = append(rows, []string{strconv.FormatUint(d.Device, 10), d.Path, orDash(d.Origin), orDash(d.Image),
			strconv.FormatInt(d.ChunkSizeBytes, 10), strconv.FormatInt(c.Copied, 10), strconv.FormatInt(c.Stored, 10),
			strconv.FormatInt(c.InMemory, 10), strconv.FormatInt(c.Failed, 10), state})
	}
	return rows
}

func printSnapshot(w io.Writer, output string, s api.Snapshot) error {
	if output == "json" {
		return printJSON(w, s)
	}
	table(w, snapshotHeader, snapshotRows([]api.Snapshot{s}))
	return nil
}

func printEvent(w io.Writer, output string, e api.Event) {
	if output == "json" {
		json.NewEncoder(w).Encode(e)
		return
	}
	line := fmt.Sprintf("%d %s %s", e.Seq, e.Time.Format(time.RFC3339), e.Kind)
	if e.Snapshot != 0 {
		line += fmt.Sprintf(" snapshot=%d", e.Snapshot)
	}
	if e.Device != 0 {
		line += fmt.Sprintf(" device=%d", e.Device)
	}
	if e.Path != "" {
		line += " path=" + e.Path
	}
	if e.RequestedBytes != 0 {
		line += fmt.Sprintf(" requested=%d", e.RequestedBytes)
	}
	if e.Dropped != 0 {
		line += fmt.Sprintf(" dropped=%d", e.Dropped)
	}
	if e.Message != "" {
		line += " " + e.Message
	}
	fmt.Fprintln(w, line)
}

func parseSizeFlag(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := scenarios.ParseSize(v)
	if err != nil {
		return 0, &exitError{2, fmt.Errorf("--%s: %v", name, err)}
	}
	return n, nil
}

// addSnapshotClientCmds adds the daemon's snapshot commands to the
// snapshot group.
func addSnapshotClientCmds(parent *cobra.Command) {
	var fc, ft, fi, fl, fd, fw, fa clientFlags
	var (
		req                       api.SnapshotCreateRequest
		limit, portion, autoLimit string
		threshold, percent        int
		warn                      []int
		policySet                 bool
		freeze                    bool
		since                     int64
		kinds                     []string
		waitTimeout               time.Duration
		wait                      bool
		appendOff, appendLen      string
		devIDs                    []uint
	)
	create := clientCmd("create --device ID... [--storage PATH --limit SIZE]", "Ask the daemon to prepare a snapshot of devices; prints its ID and name", cobra.NoArgs, &fc,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			var err error
			req.Devices = nil
			for _, id := range devIDs {
				req.Devices = append(req.Devices, uint64(id))
			}
			if req.Storage.LimitBytes, err = parseSizeFlag("limit", limit); err != nil {
				return err
			}
			if req.Storage.PortionBytes, err = parseSizeFlag("portion", portion); err != nil {
				return err
			}
			if cmd.Flags().Changed("autoextend-threshold") || cmd.Flags().Changed("autoextend-percent") || cmd.Flags().Changed("autoextend-limit") || cmd.Flags().Changed("warn") {
				policySet = true
			}
			if policySet {
				al, err := parseSizeFlag("autoextend-limit", autoLimit)
				if err != nil {
					return err
				}
				req.Policy = &api.Policy{AutoextendThresholdPercent: threshold, AutoextendPercent: percent, AutoextendLimitBytes: al, WarnPercents: warn}
			}
			s, err := c.CreateSnapshot(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), fc.output, s)
		})
	cf := create.Flags()
	cf.UintSliceVar(&devIDs, "device", nil, "device ID (repeat or comma-separate for several)")
	cf.StringVar(&req.Name, "name", "", "snapshot name (default snap-ID)")
	cf.StringVar(&req.Storage.Path, "storage", "", "difference storage: file, directory or block device (default: the daemon's)")
	cf.StringVar(&limit, "limit", "", "difference storage limit, e.g. 4GiB (default: the daemon's)")
	cf.StringVar(&portion, "portion", "", "growth portion (default: a quarter of the limit, at most 1GiB)")
	cf.UintVar(&req.ChunkMinimumShift, "chunk-shift", 0, "chunk_minimum_shift (default: the engine's, 18)")
	cf.IntVar(&req.ChunkMaximumInQueue, "chunks-in-memory", 0, "chunk_maximum_in_queue (default: the engine's)")
	cf.IntVar(&req.BackupNice, "backup-nice", 0, "backup_nice: CPU priority (nice 1..19) of the images' queues (default: the engine's, 5)")
	cf.IntVar(&threshold, "autoextend-threshold", 100, "autoextend when this % full (100: off)")
	cf.IntVar(&percent, "autoextend-percent", 20, "autoextend by this % of the limit")
	cf.StringVar(&autoLimit, "autoextend-limit", "0", "autoextend up to this total")
	cf.IntSliceVar(&warn, "warn", []int{80, 85, 90, 95}, "fill-warning levels in %")

	take := clientCmd("take ID|NAME", "Take the snapshot (copy-on-write on) and expose its images", cobra.ExactArgs(1), &ft,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			s, err := c.Take(cmd.Context(), args[0], freeze)
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), ft.output, s)
		})
	take.Flags().BoolVar(&freeze, "freeze", false, "freeze the file systems mounted on the devices (FIFREEZE) for the take")

	info := clientCmd("info ID|NAME", "Show a snapshot: state, chunks, storage, last events", cobra.ExactArgs(1), &fi,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			s, err := c.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := printSnapshot(cmd.OutOrStdout(), fi.output, s); err != nil || fi.output == "json" {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out)
			table(out, snapshotDeviceHeader, snapshotDeviceRows(s.Devices))
			fmt.Fprintf(out, "\nstorage %s used %d capacity %d limit %d, store queue %d\n", s.Storage.Path, s.Storage.UsedBytes, s.Storage.CapacityBytes, s.Storage.LimitBytes, s.StoreQueued)
			for _, e := range s.LastEvents {
				printEvent(out, "table", e)
			}
			return nil
		})
	list := clientCmd("list", "List the daemon's snapshots", cobra.NoArgs, &fl,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			ss, err := c.Snapshots(cmd.Context())
			if err != nil {
				return err
			}
			if fl.output == "json" {
				return printJSON(cmd.OutOrStdout(), api.SnapshotList{Snapshots: ss})
			}
			table(cmd.OutOrStdout(), snapshotHeader, snapshotRows(ss))
			return nil
		})
	destroy := clientCmd("destroy ID|NAME...", "Remove the images and destroy snapshots (the origins stay)", cobra.MinimumNArgs(1), &fd,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			for _, a := range args {
				if err := c.DestroySnapshot(cmd.Context(), a); err != nil {
					return err
				}
				if fd.output == "table" {
					fmt.Fprintf(cmd.OutOrStdout(), "destroyed %s\n", a)
				}
			}
			return nil
		})
	watch := clientCmd("watch [ID]", "Print events as they come (resumable with --since), or wait for one (--wait, blksnap's waitevent)", cobra.MaximumNArgs(1), &fw,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			f := client.EventFilter{Kinds: kinds}
			if len(args) == 1 {
				id, err := strconv.ParseUint(args[0], 10, 64)
				if err != nil {
					s, err := c.Snapshot(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					id = s.ID
				}
				f.Snapshot = id
			}
			if wait {
				r, err := c.WaitEvent(cmd.Context(), uint64(max(since, 0)), f, waitTimeout)
				if err != nil {
					return err
				}
				if r.TimedOut {
					return fmt.Errorf("no event within %v", waitTimeout)
				}
				printEvent(cmd.OutOrStdout(), fw.output, *r.Event)
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.Watch(ctx, since, f, func(e api.Event) error {
				printEvent(cmd.OutOrStdout(), fw.output, e)
				return nil
			})
		})
	watch.Flags().Int64Var(&since, "since", -1, "start after this sequence number (default: new events only; 0: the whole history)")
	watch.Flags().StringSliceVar(&kinds, "kind", nil, "only these event kinds")
	watch.Flags().BoolVar(&wait, "wait", false, "wait for one event and exit (1 on timeout)")
	watch.Flags().DurationVar(&waitTimeout, "timeout", 30*time.Second, "with --wait: how long")
	appendC := clientCmd("append ID|NAME PATH", "Add a file (which must exist) or a block device range to the difference storage", cobra.ExactArgs(2), &fa,
		func(cmd *cobra.Command, c *client.Client, args []string) error {
			off, err := parseSizeFlag("offset", appendOff)
			if err != nil {
				return err
			}
			n, err := parseSizeFlag("length", appendLen)
			if err != nil {
				return err
			}
			s, err := c.AppendStorage(cmd.Context(), args[0], api.AppendRequest{Path: args[1], OffsetBytes: off, LengthBytes: n})
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), fa.output, s)
		})
	appendC.Flags().StringVar(&appendOff, "offset", "", "offset into a block device")
	appendC.Flags().StringVar(&appendLen, "length", "", "bytes (required for a file; a block device: to its end)")
	parent.AddCommand(create, take, info, list, destroy, watch, appendC)
}
