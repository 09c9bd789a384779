package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/ublk"
)

const (
	maxSnapshotDevices = 64
	maxNameBytes       = 64
	lastEventsShown    = 10
)

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameBytes {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err != nil // a number would be taken for an ID
}

// createSnapshot prepares a snapshot of devices over one difference storage.
func (d *Daemon) createSnapshot(req api.SnapshotCreateRequest) (api.Snapshot, error) {
	cfg := d.config()
	if len(req.Devices) == 0 || len(req.Devices) > maxSnapshotDevices {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "devices: want 1..%d device IDs", maxSnapshotDevices)
	}
	if req.Name != "" && !validName(req.Name) {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "name %q: want 1..%d of [A-Za-z0-9._-], not a number", req.Name, maxNameBytes)
	}
	path, limit, portion := cfg.storageDefaults()
	st := req.Storage
	if st.Path != "" {
		path = st.Path
	}
	if st.LimitBytes != 0 {
		limit = st.LimitBytes
	}
	if st.PortionBytes != 0 {
		portion = st.PortionBytes
	}
	if path == "" || !filepath.IsAbs(path) {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "storage.path %q: want an absolute path (no default is configured)", path)
	}
	if limit < 0 || portion < 0 || limit%4096 != 0 || portion%4096 != 0 {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "storage limit_bytes %d and portion_bytes %d: want non-negative multiples of 4096", limit, portion)
	}
	policy := cfg.Defaults.Policy.api()
	if req.Policy != nil {
		policy = *req.Policy
		if policy.WarnPercents == nil {
			policy.WarnPercents = slices.Clone(DefaultWarnPercents)
		}
	}
	if err := validatePolicy(policy); err != nil {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "policy: %v", err)
	}
	opts := engineOptions(limit, portion, req.ChunkMinimumShift, req.ChunkMaximumInQueue)
	opts.BackupNice = req.BackupNice
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return api.Snapshot{}, fromEngine(err)
	}

	d.mu.Lock()
	if d.mu.stopping {
		d.mu.Unlock()
		return api.Snapshot{}, errf(503, api.CodeShuttingDown, "the daemon is stopping")
	}
	var devs []*device
	for _, id := range req.Devices {
		dev, ok := d.mu.devices[id]
		if !ok {
			d.mu.Unlock()
			return api.Snapshot{}, errf(404, api.CodeNotFound, "no device %d", id)
		}
		if dev.snap != 0 {
			d.mu.Unlock()
			return api.Snapshot{}, errf(409, api.CodeConflict, "device %d is already covered by snapshot %d", id, dev.snap)
		}
		if slices.Contains(devs, dev) {
			d.mu.Unlock()
			return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "device %d given twice", id)
		}
		devs = append(devs, dev)
	}
	for _, s := range d.mu.snaps {
		if req.Name != "" && s.name == req.Name {
			d.mu.Unlock()
			return api.Snapshot{}, errf(409, api.CodeConflict, "a snapshot is already named %q", req.Name)
		}
	}
	d.mu.nextSnap++
	id := d.mu.nextSnap
	for _, dev := range devs {
		dev.snap = id // reserved while the engine prepares it
	}
	d.mu.Unlock()
	release := func() {
		d.mu.Lock()
		for _, dev := range devs {
			dev.snap = 0
		}
		d.mu.Unlock()
	}
	var engDevs []*engine.Device
	for _, dev := range devs {
		engDevs = append(engDevs, dev.eng)
	}
	snap, err := engine.NewSnapshot(engDevs, engine.StorageConfig{Path: path, Limit: limit}, opts)
	if err != nil {
		release()
		return api.Snapshot{}, fromEngine(err)
	}
	s := &snapshot{id: id, name: req.Name, snap: snap, devs: devs, createdAt: time.Now().UTC(), policy: policy,
		storage: path, pumpQuit: make(chan struct{}), pumpDone: make(chan struct{})}
	if s.name == "" {
		s.name = fmt.Sprintf("snap-%d", id)
	}
	d.mu.Lock()
	d.mu.snaps[id] = s
	d.mu.Unlock()
	go d.pump(s)
	d.log.Info("snapshot created", "snapshot", id, "name", s.name, "devices", req.Devices, "storage", path, "limit", limit)
	d.events.publish(api.Event{Kind: api.EventSnapshotCreated, Snapshot: id, Message: s.name})
	return d.snapshotInfo(s), nil
}

// pump turns the engine's events into the daemon's.
func (d *Daemon) pump(s *snapshot) {
	defer close(s.pumpDone)
	// The engine raises overflow once per chunk that finds no room: log the
	// first of each kind and then every 1000th, publish them all (the
	// history is bounded).
	seen := map[engine.EventKind]int{}
	for {
		select {
		case e := <-s.snap.Events():
			ev := api.Event{Snapshot: s.id, Path: e.Device, RequestedBytes: e.RequestedBytes, Time: e.Time.UTC()}
			switch e.Kind {
			case engine.EventLowFreeSpace:
				ev.Kind = api.EventLowFreeSpace
			case engine.EventNoSpace:
				ev.Kind = api.EventNoSpace
			case engine.EventOverflow:
				ev.Kind = api.EventOverflow
			case engine.EventCorrupted:
				ev.Kind = api.EventCorrupted
			default:
				ev.Kind = e.Kind.String()
			}
			for _, dev := range s.devs {
				if dev.path == e.Device {
					ev.Device = dev.id
				}
			}
			if e.Err != nil {
				ev.Message = e.Err.Error()
			}
			seen[e.Kind]++
			lvl := d.log.Warn
			if e.Kind == engine.EventCorrupted || e.Kind == engine.EventOverflow {
				lvl = d.log.Error
			}
			if n := seen[e.Kind]; n != 1 && n%1000 != 0 {
				lvl = d.log.Debug
			}
			lvl("snapshot event", "snapshot", s.id, "kind", ev.Kind, "device", e.Device, "requested", e.RequestedBytes, "err", e.Err, "count", seen[e.Kind])
			d.events.publish(ev)
		case <-s.pumpQuit:
			return
		}
	}
}

func (d *Daemon) getSnapshot(ref string) (*snapshot, error) {
	id, err := strconv.ParseUint(ref, 10, 64)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		if s, ok := d.mu.snaps[id]; ok {
			return s, nil
		}
	}
	for _, s := range d.mu.snaps {
		if s.name == ref {
			return s, nil
		}
	}
	return nil, errf(404, api.CodeNotFound, "no snapshot %q", ref)
}

// take switches copy-on-write on, optionally with the file systems on the
// origins frozen, and exposes the images.
func (d *Daemon) take(ref string, req api.TakeRequest) (api.Snapshot, error) {
	s, err := d.getSnapshot(ref)
	if err != nil {
		return api.Snapshot{}, err
	}
	s.op.Lock()
	defer s.op.Unlock()
	if s.destroyed {
		return api.Snapshot{}, errf(404, api.CodeNotFound, "no snapshot %q", ref)
	}
	if s.taken {
		return api.Snapshot{}, errf(409, api.CodeConflict, "snapshot %d is already taken", s.id)
	}
	start := time.Now()
	var fz *frozen
	if req.Freeze {
		var names []string
		for _, dev := range s.devs {
			if dev.name() != "" {
				names = append(names, dev.name())
			}
		}
		points, err := mountsOf(names)
		if err != nil {
			return api.Snapshot{}, errf(500, api.CodeFreezeFailed, "finding the file systems to freeze: %v", err)
		}
		if fz, err = freeze(points); err != nil {
			return api.Snapshot{}, errf(500, api.CodeFreezeFailed, "%v (nothing was taken; every file system is thawed)", err)
		}
		s.frozen = points
	}
	takeErr := s.snap.Take()
	thawErr := fz.thaw()
	elapsed := time.Since(start)
	if takeErr != nil {
		return api.Snapshot{}, fromEngine(errors.Join(takeErr, thawErr))
	}
	s.imgMu.Lock()
	s.taken, s.takenAt, s.takeSeconds = true, time.Now().UTC(), elapsed.Seconds()
	s.imgMu.Unlock()
	if d.metrics != nil {
		d.metrics.takeSeconds.WithLabelValues(strconv.FormatBool(req.Freeze)).Observe(elapsed.Seconds())
	}
	if thawErr != nil {
		d.log.Error("thaw after take", "snapshot", s.id, "err", thawErr)
	}
	d.log.Info("snapshot taken", "snapshot", s.id, "seconds", elapsed.Seconds(), "frozen", s.frozen)
	var imgErr error
	if !d.opts.inProcess {
		for _, dev := range s.devs {
			target := ublk.NewImageTarget(s.snap.Image(dev.eng))
			if dev.mt != nil {
				target.SetObserver(dev.mt.imageObserver())
			}
			u, err := ublk.Create(dev.cfg.ForCopying(), target)
			if err != nil {
				imgErr = err
				break
			}
			s.imgMu.Lock()
			s.images = append(s.images, u)
			s.imgMu.Unlock()
		}
		d.saveState()
	}
	d.events.publish(api.Event{Kind: api.EventSnapshotTaken, Snapshot: s.id, Message: fmt.Sprintf("%s taken in %.6fs", s.name, elapsed.Seconds())})
	if thawErr != nil {
		return api.Snapshot{}, errf(500, api.CodeFreezeFailed, "snapshot %d is taken, but thawing failed: %v", s.id, thawErr)
	}
	if imgErr != nil {
		return api.Snapshot{}, fromEngine(fmt.Errorf("snapshot %d is taken, but exposing its images failed: %w", s.id, imgErr))
	}
	return d.snapshotInfo(s), nil
}

// appendStorage adds a file or a block device range to the storage.
func (d *Daemon) appendStorage(ref string, req api.AppendRequest) (api.Snapshot, error) {
	s, err := d.getSnapshot(ref)
	if err != nil {
		return api.Snapshot{}, err
	}
	if !filepath.IsAbs(req.Path) {
		return api.Snapshot{}, errf(400, api.CodeInvalidRequest, "path %q: want an absolute path", req.Path)
	}
	s.op.Lock()
	defer s.op.Unlock()
	if s.destroyed {
		return api.Snapshot{}, errf(404, api.CodeNotFound, "no snapshot %q", ref)
	}
	if err := s.snap.AppendStorage(req.Path, req.OffsetBytes, req.LengthBytes); err != nil {
		return api.Snapshot{}, fromEngine(err)
	}
	s.appended = append(s.appended, req.Path)
	d.log.Info("storage appended", "snapshot", s.id, "path", req.Path, "offset", req.OffsetBytes, "length", req.LengthBytes)
	d.events.publish(api.Event{Kind: api.EventStorageAppended, Snapshot: s.id, Path: req.Path, RequestedBytes: req.LengthBytes})
	return d.snapshotInfo(s), nil
}

// snapshotInfo reports a snapshot (s.op held or not: it reads only what
// the engine and a consistent copy give).
func (d *Daemon) snapshotInfo(s *snapshot) api.Snapshot {
	st := s.snap.Stats()
	out := api.Snapshot{ID: s.id, Name: s.name, State: api.StateCreated, CreatedAt: s.createdAt, Policy: s.policy,
		Frozen: s.frozen, EventsDropped: st.EventsDropped, StoreQueued: st.StoreQueued,
		Storage: api.StorageStatus{Path: s.storage, UsedBytes: st.DiffUsedBytes, CapacityBytes: st.DiffCapacityBytes,
			LimitBytes: st.DiffLimitBytes, Appended: slices.Clone(s.appended)}}
	if st.DiffLimitBytes > 0 {
		out.Storage.UsedPercent = float64(st.DiffUsedBytes) * 100 / float64(st.DiffLimitBytes)
	}
	if s.taken {
		t := s.takenAt
		out.TakenAt, out.TakeSeconds, out.State = &t, s.takeSeconds, api.StateTaken
	}
	if st.Corrupted {
		out.State = api.StateCorrupted
	}
	if s.destroyed {
		out.State = api.StateDestroyed
	}
	devStats := s.snap.DeviceStats()
	for i, dev := range s.devs {
		sd := api.SnapshotDevice{Device: dev.id, Path: dev.path, Origin: dev.name()}
		if img := s.snap.Image(dev.eng); img != nil {
			sd.ChunkSizeBytes = img.ChunkSize()
		}
		for _, ds := range devStats {
			if ds.Device == dev.eng {
				sd.Chunks = api.Chunks{Copied: ds.ChunksCopied, Stored: ds.ChunksStored, InMemory: ds.ChunksInMemory, Failed: ds.ChunksFailed}
				sd.Corrupted = ds.Corrupted
			}
		}
		// The sums from the same reading, so that they add up.
		out.Chunks.Copied += sd.Chunks.Copied
		out.Chunks.Stored += sd.Chunks.Stored
		out.Chunks.InMemory += sd.Chunks.InMemory
		out.Chunks.Failed += sd.Chunks.Failed
		if i < len(s.images) {
			sd.Image = s.images[i].Name()
		}
		out.Devices = append(out.Devices, sd)
	}
	out.LastEvents = d.events.last(lastEventsShown, func(e api.Event) bool { return e.Snapshot == s.id })
	if out.LastEvents == nil {
		out.LastEvents = []api.Event{}
	}
	return out
}

func (d *Daemon) info(ref string) (api.Snapshot, error) {
	s, err := d.getSnapshot(ref)
	if err != nil {
		return api.Snapshot{}, err
	}
	s.op.Lock()
	defer s.op.Unlock()
	return d.snapshotInfo(s), nil
}

func (d *Daemon) listSnapshots() api.SnapshotList {
	d.mu.Lock()
	snaps := make([]*snapshot, 0, len(d.mu.snaps))
	for _, s := range d.mu.snaps {
		snaps = append(snaps, s)
	}
	d.mu.Unlock()
	slices.SortFunc(snaps, func(a, b *snapshot) int { return int(a.id) - int(b.id) })
	out := api.SnapshotList{Snapshots: []api.Snapshot{}}
	for _, s := range snaps {
		s.op.Lock()
		out.Snapshots = append(out.Snapshots, d.snapshotInfo(s))
		s.op.Unlock()
	}
	return out
}

// destroySnapshot removes the images and destroys the snapshot (through
// ublk.Teardown); the origins stay.
func (d *Daemon) destroySnapshot(ref string) error {
	s, err := d.getSnapshot(ref)
	if err != nil {
		return err
	}
	s.op.Lock()
	defer s.op.Unlock()
	if s.destroyed {
		return errf(404, api.CodeNotFound, "no snapshot %q", ref)
	}
	err = d.teardownSnapshot(s)
	d.mu.Lock()
	delete(d.mu.snaps, s.id)
	d.mu.Unlock()
	d.saveState()
	if err != nil {
		return fromEngine(err)
	}
	return nil
}

// teardownSnapshot ends s (s.op held): images, snapshot, the autoextend
// files, the devices' reservation, an event.
func (d *Daemon) teardownSnapshot(s *snapshot) error {
	s.destroyed = true
	err := ublk.Teardown(s.images, []*engine.Snapshot{s.snap}, nil, nil, 0)
	close(s.pumpQuit)
	<-s.pumpDone
	for _, f := range s.ownFiles {
		if e := os.Remove(f); e != nil && !errors.Is(e, os.ErrNotExist) {
			d.log.Warn("removing an autoextend file", "path", f, "err", e)
		}
	}
	d.mu.Lock()
	for _, dev := range s.devs {
		dev.snap = 0
	}
	d.mu.Unlock()
	if d.metrics != nil {
		d.metrics.dropSnapshot(s.id)
	}
	d.log.Info("snapshot destroyed", "snapshot", s.id, "name", s.name, "err", err)
	msg := s.name
	if err != nil {
		msg += ": " + err.Error()
	}
	d.events.publish(api.Event{Kind: api.EventSnapshotDestroyed, Snapshot: s.id, Message: msg})
	return err
}

// matchFilter builds an event filter from kinds (comma separated) and a
// snapshot reference.
func (d *Daemon) matchFilter(kinds, snap string) (func(api.Event) bool, error) {
	var ks []string
	if kinds != "" {
		for _, k := range strings.Split(kinds, ",") {
			if !slices.Contains(api.EventKinds, k) {
				return nil, errf(400, api.CodeInvalidRequest, "unknown event kind %q", k)
			}
			ks = append(ks, k)
		}
	}
	var sid uint64
	if snap != "" {
		n, err := strconv.ParseUint(snap, 10, 64)
		if err != nil {
			return nil, errf(400, api.CodeInvalidRequest, "snapshot %q: want an ID", snap)
		}
		sid = n
	}
	if ks == nil && sid == 0 {
		return nil, nil
	}
	return func(e api.Event) bool {
		return (ks == nil || slices.Contains(ks, e.Kind)) && (sid == 0 || e.Snapshot == sid)
	}, nil
}

func (s *snapshot) imagesSnapshot() []*ublk.Device {
	s.imgMu.Lock()
	defer s.imgMu.Unlock()
	return slices.Clone(s.images)
}

func (s *snapshot) isTaken() bool {
	s.imgMu.Lock()
	defer s.imgMu.Unlock()
	return s.taken
}
