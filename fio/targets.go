package fio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/ublk"
)

// Kind names a target fio runs against.
type Kind string

// The targets. All share one backing file (or the loop device over it) of
// the same size; every target that has a snapshot gets a fresh one for each
// fio run, so each run pays the first-write copies again.
const (
	// Raw is the backing itself: a loop device over the backing file when
	// loop devices can be made (root, /dev/loop-control, losetup), else
	// the file. Every other target's ratios are against it.
	Raw Kind = "raw"
	// Passthrough is snapring's ublk passthrough device over the raw
	// backing.
	Passthrough Kind = "passthrough"
	// Null is snapring's ublk device with no backing (ublk.Null): every
	// request completes at once, reads return no data. Not storage: the
	// floor of the ublk crossing, beside passthrough and raw, under which
	// no ublk target (ours or anyone's) can go on this kernel.
	Null Kind = "null"
	// Origin is snapring's ublk origin device with an active snapshot.
	Origin Kind = "origin"
	// Image is the ublk image of that snapshot.
	Image Kind = "image"
	// DMSnapshot is device-mapper's snapshot-origin with an active
	// snapshot over the raw loop device, the copy-on-write store on a
	// second loop device, the same chunk size as ours.
	DMSnapshot Kind = "dm-snapshot"
)

// Kinds lists every target in the default order.
var Kinds = []Kind{Raw, Passthrough, Null, Origin, Image, DMSnapshot}

// ParseKind checks a --target value.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("%w: target %q: want one of %s", ErrConfig, s, strings.Join(names, ", "))
}

func (k Kind) needsUblk() bool {
	return k == Passthrough || k == Null || k == Origin || k == Image
}

// hostSupport says what this host can set up; a missing feature is
// described in one line.
type hostSupport struct {
	loop, ublk, dm string // "" when available, else what is missing
}

func probeHost() hostSupport {
	var hs hostSupport
	if os.Geteuid() != 0 {
		hs.loop = "root (loop devices)"
	} else if _, err := os.Stat("/dev/loop-control"); err != nil {
		hs.loop = "/dev/loop-control (modprobe loop)"
	} else if _, err := exec.LookPath("losetup"); err != nil {
		hs.loop = "losetup (apt-get install util-linux)"
	}
	if _, err := os.Stat("/dev/ublk-control"); err != nil {
		hs.ublk = "ublk: /dev/ublk-control is missing (modprobe ublk_drv; Linux 6.0 or later)"
	}
	switch {
	case hs.loop != "":
		hs.dm = "loop devices: " + hs.loop
	default:
		if _, err := exec.LookPath("dmsetup"); err != nil {
			hs.dm = "dmsetup (apt-get install dmsetup)"
		} else if _, err := os.Stat("/dev/mapper/control"); err != nil {
			hs.dm = "device-mapper: /dev/mapper/control is missing (modprobe dm_mod)"
		} else if out, err := exec.Command("dmsetup", "targets").Output(); err != nil || !bytes.Contains(out, []byte("snapshot-origin")) {
			hs.dm = "device-mapper's snapshot target (modprobe dm_snapshot)"
		}
	}
	return hs
}

// missing returns why k cannot run here, or "".
func (hs hostSupport) missing(k Kind) string {
	switch {
	case k.needsUblk():
		return hs.ublk
	case k == DMSnapshot:
		return hs.dm
	}
	return ""
}

// backing is the shared backing of one run: a file, and the loop device
// over it when loop devices work.
type backing struct {
	dir      string
	file     string
	loop     string
	size     int64
	chunkKiB int
	// base is what the targets stack on: the loop device, or the file.
	base string
}

// setup makes the backing file (filled with pseudo-random data, so that
// reads move real bytes) and the loop device.
func (b *backing) setup(useLoop bool) error {
	f, err := os.CreateTemp(b.dir, "snapring-fio-backing-*")
	if err != nil {
		return fmt.Errorf("%w: backing file in %s: %v", ErrSetup, b.dir, err)
	}
	b.file = f.Name()
	err = fillPseudoRandom(f, b.size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: backing file %s: %v", ErrSetup, b.file, err)
	}
	b.base = b.file
	if useLoop {
		if b.loop, err = losetup(b.file); err != nil {
			return err
		}
		b.base = b.loop
	}
	return nil
}

func (b *backing) teardown() error {
	var errs []error
	if b.loop != "" {
		errs = append(errs, loDetach(b.loop))
		b.loop = ""
	}
	if b.file != "" {
		errs = append(errs, os.Remove(b.file))
		b.file = ""
	}
	return errors.Join(errs...)
}

func fillPseudoRandom(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	// xorshift: fast, and the data need not be random, only not zero.
	x := uint64(0x9e3779b97f4a7c15)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(x >> (8 * j))
			}
		}
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// commandTimeout bounds every losetup and dmsetup call.
const commandTimeout = 30 * time.Second

func runTool(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(firstLine(stderr.String()))
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("%w: %s %s: %s", ErrSetup, name, strings.Join(args, " "), msg)
	}
	return strings.TrimSpace(string(out)), nil
}

func losetup(file string) (string, error) { return runTool("losetup", "--find", "--show", file) }

func loDetach(dev string) error {
	_, err := runTool("losetup", "-d", dev)
	return err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// devices is one target's set-up devices: the paths fio gets and how to
// take them down.
type devices struct {
	// target is the device under test (${TARGET}); origin and image are
	// ${ORIGIN} and ${IMAGE} (both the target itself where there is no
	// snapshot).
	target, origin, image string
	// dataPath is how the ublk device under test moves data
	// (ublk.Device.DataPath); empty for raw and dm-snapshot.
	dataPath string
	// original is how our engine opened the original ("buffered",
	// "O_DIRECT"); empty for targets without our engine.
	original string
	teardown func() error
	// events are our snapshot's events during the run (overflow, low
	// free space, ...), collected at teardown.
	events []results.Event
}

// maxEvents bounds the events kept per run.
const maxEvents = 64

// drainEvents appends the snapshot's queued events to into, each under the
// results schema's kind (the engine's own name, as bench's runner records
// them), and how many the engine dropped under CounterEventsDropped.
func drainEvents(snap *engine.Snapshot, into []results.Event) []results.Event {
	for {
		select {
		case e, ok := <-snap.Events():
			if !ok { // closed once the snapshot is finalized
				return into
			}
			if len(into) < maxEvents {
				into = append(into, results.Event{Kind: e.Kind.String(), Device: e.Device, Detail: e.String()})
			}
		default:
			if n := snap.DroppedEvents(); n > 0 && len(into) < maxEvents {
				into = append(into, results.Event{Kind: results.CounterEventsDropped, Detail: fmt.Sprintf("%d events dropped", n)})
			}
			return into
		}
	}
}

// DeviceOptions configures the ublk devices and the snapshots.
type DeviceOptions struct {
	// Ublk is the configuration of every ublk device (queues, depth,
	// max I/O, user copy, zero copy). Zero copy applies to the devices
	// that can take it (passthrough, origin); null and the image always
	// copy.
	Ublk ublk.DeviceConfig
	// ChunkShift is the chunk size of both snapshots (ours and
	// dm-snapshot's), 1<<ChunkShift bytes, 12..20.
	ChunkShift uint
	// ChunksInMemory is our engine's chunk_maximum_in_queue (0: default).
	ChunksInMemory int
	// DirectOriginal opens our engine's original with O_DIRECT
	// (engine.DeviceOptions.Direct), as dm-snapshot's bios bypass the page
	// cache; by default it is opened buffered.
	DirectOriginal bool
}

// setupTarget makes the devices of target k over b. The run's name is used
// for device-mapper names.
func setupTarget(k Kind, b *backing, opts DeviceOptions, name string) (*devices, error) {
	switch k {
	case Raw:
		return &devices{target: b.base, origin: b.base, image: b.base, teardown: func() error { return nil }}, nil
	case Passthrough:
		pt, err := ublk.OpenPassthrough(b.base)
		if err != nil {
			return nil, fmt.Errorf("%w: passthrough over %s: %v", ErrSetup, b.base, err)
		}
		u, err := ublk.Create(opts.Ublk, pt)
		if err != nil {
			pt.Close()
			return nil, fmt.Errorf("%w: passthrough ublk device: %v", ErrSetup, err)
		}
		return &devices{target: u.Name(), origin: u.Name(), image: u.Name(), dataPath: u.DataPath(), teardown: func() error {
			return errors.Join(u.Close(), pt.Close())
		}}, nil
	case Null:
		u, err := ublk.Create(opts.Ublk.ForCopying(), ublk.NewNull(uint64(b.size)))
		if err != nil {
			return nil, fmt.Errorf("%w: null ublk device: %v", ErrSetup, err)
		}
		return &devices{target: u.Name(), origin: u.Name(), image: u.Name(), dataPath: u.DataPath(), teardown: u.Close}, nil
	case Origin, Image:
		return setupSnapring(k, b, opts)
	case DMSnapshot:
		return setupDM(b, opts, name)
	}
	return nil, fmt.Errorf("%w: unknown target %q", ErrConfig, k)
}

// runUndo runs a setup's undo steps, last first, and joins their errors.
func runUndo(undo []func() error) error {
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		errs = append(errs, undo[i]())
	}
	return errors.Join(errs...)
}

func setupSnapring(k Kind, b *backing, opts DeviceOptions) (_ *devices, err error) {
	var undo []func() error
	teardown := func() error { return runUndo(undo) }
	defer func() {
		if err != nil {
			teardown()
		}
	}()
	dev, err := engine.OpenDeviceWith(b.base, engine.DeviceOptions{Direct: opts.DirectOriginal})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	undo = append(undo, dev.Close)
	store, err := os.CreateTemp(b.dir, "snapring-fio-diff-*")
	if err != nil {
		return nil, fmt.Errorf("%w: difference storage in %s: %v", ErrSetup, b.dir, err)
	}
	store.Close()
	storePath := store.Name()
	undo = append(undo, func() error { return os.Remove(storePath) })
	eopts := engine.Options{ChunkMinimumShift: opts.ChunkShift, ChunkMaximumInQueue: opts.ChunksInMemory}
	eopts.DiffStorageMinimum = min(int64(engine.DefaultDiffStorageMinimum), b.size/2/4096*4096)
	snap, err := engine.NewSnapshot([]*engine.Device{dev}, engine.StorageConfig{Path: storePath, Limit: 2 * b.size, Overwrite: true /* our own temp file */}, eopts)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrSetup, err)
	}
	// The event queue is bounded and drops what finds it full; the
	// events of the run are collected at teardown (before Destroy) and
	// kept in the result. The channel is never closed: no goroutine
	// ranges over it.
	d := &devices{}
	undo = append(undo, func() error {
		d.events = drainEvents(snap, d.events)
		err := snap.Destroy()
		<-snap.Done()
		return err
	})
	o, err := ublk.Create(opts.Ublk, ublk.NewOriginTarget(dev))
	if err != nil {
		return nil, fmt.Errorf("%w: origin ublk device: %v", ErrSetup, err)
	}
	undo = append(undo, o.Close)
	if err := snap.Take(); err != nil {
		return nil, fmt.Errorf("%w: take: %v", ErrSetup, err)
	}
	im, err := ublk.Create(opts.Ublk.ForCopying(), ublk.NewImageTarget(snap.Image(dev)))
	if err != nil {
		return nil, fmt.Errorf("%w: image ublk device: %v", ErrSetup, err)
	}
	undo = append(undo, im.Close)
	d.target, d.origin, d.image, d.teardown = o.Name(), o.Name(), im.Name(), teardown
	d.dataPath = o.DataPath()
	if k == Image {
		d.target, d.dataPath = im.Name(), im.DataPath()
	}
	d.original = "buffered"
	if dev.Direct() {
		d.original = "O_DIRECT"
	}
	return d, nil
}

func setupDM(b *backing, opts DeviceOptions, name string) (_ *devices, err error) {
	var undo []func() error
	teardown := func() error { return runUndo(undo) }
	defer func() {
		if err != nil {
			teardown()
		}
	}()
	if b.loop == "" {
		return nil, fmt.Errorf("%w: dm-snapshot needs the backing on a loop device", ErrSetup)
	}
	cow, err := os.CreateTemp(b.dir, "snapring-fio-dmcow-*")
	if err != nil {
		return nil, fmt.Errorf("%w: copy-on-write store in %s: %v", ErrSetup, b.dir, err)
	}
	cowPath := cow.Name()
	undo = append(undo, func() error { return os.Remove(cowPath) })
	err = cow.Truncate(2 * b.size)
	if cerr := cow.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: copy-on-write store: %v", ErrSetup, err)
	}
	cowLoop, err := losetup(cowPath)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return loDetach(cowLoop) })
	sectors := b.size / 512
	originName, snapName := name+"-origin", name+"-snap"
	if _, err := runTool("dmsetup", "create", originName, "--table", fmt.Sprintf("0 %d snapshot-origin %s", sectors, b.loop)); err != nil {
		return nil, err
	}
	undo = append(undo, func() error { _, err := runTool("dmsetup", "remove", originName); return err })
	// Suspend the origin around creating the snapshot (as LVM does): the
	// origin computes its split size on resume; without it, writes that
	// straddle chunk boundaries leak into the snapshot.
	if _, err := runTool("dmsetup", "suspend", originName); err != nil {
		return nil, err
	}
	_, err = runTool("dmsetup", "create", snapName, "--table", fmt.Sprintf("0 %d snapshot %s %s P %d", sectors, b.loop, cowLoop, (1<<opts.ChunkShift)/512))
	if _, rerr := runTool("dmsetup", "resume", originName); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	// Removed before the origin (undo runs backwards).
	undo = append(undo, func() error { _, err := runTool("dmsetup", "remove", snapName); return err })
	origin, image := filepath.Join("/dev/mapper", originName), filepath.Join("/dev/mapper", snapName)
	return &devices{target: origin, origin: origin, image: image, teardown: teardown}, nil
}
