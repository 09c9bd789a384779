package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/ublk"
)

// Options are what the command line gives Run besides the configuration.
type Options struct {
	// ConfigPath is re-read on SIGHUP ("" : the defaults, nothing to reload).
	ConfigPath string
	// Config overrides ConfigPath at start (tests).
	Config *Config
	// MetricsAddr overrides the configured metrics address.
	MetricsAddr string
	// Log receives the log (default os.Stderr).
	Log io.Writer
	// Signals, when set, replaces the process's SIGTERM/SIGINT/SIGHUP.
	Signals <-chan os.Signal

	// inProcess serves devices through the engine only, without ublk
	// (package tests on a host without the driver: the daemon's own logic
	// over real files; it never reaches users).
	inProcess bool
	// tick is the main loop's period (default 1 s).
	tick time.Duration
}

// Daemon is one running snapring daemon.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	level   *slog.LevelVar
	events  *bus
	hooks   *hookRunner
	metrics *metrics
	state   *stateFile
	started time.Time

	cfgMu sync.Mutex
	cfg   *Config
	gid   uint32 // the allowed group; groupSet says whether there is one
	gset  bool

	mu struct {
		sync.Mutex
		devices  map[uint64]*device
		snaps    map[uint64]*snapshot
		nextDev  uint64
		nextSnap uint64
		stopping bool
	}
}

type device struct {
	id      uint64
	path    string
	eng     *engine.Device
	u       *ublk.Device // nil in process
	cfg     ublk.DeviceConfig
	addedAt time.Time
	snap    uint64 // covering snapshot, 0 if none
	quit    chan struct{}
	mt      *deviceMetrics
}

func (d *device) name() string {
	if d.u == nil {
		return ""
	}
	return d.u.Name()
}

type snapshot struct {
	id        uint64
	name      string
	snap      *engine.Snapshot
	devs      []*device
	createdAt time.Time
	policy    api.Policy
	storage   string

	op          sync.Mutex // serializes take, append, destroy and the policy
	imgMu       sync.Mutex // guards images for readers without op (the state file)
	images      []*ublk.Device
	taken       bool
	destroyed   bool
	takenAt     time.Time
	takeSeconds float64
	frozen      []string
	appended    []string
	ownFiles    []string // autoextend files the daemon created (removed on destroy)
	warned      int      // the highest warning level raised
	extendOff   bool     // autoextend gave up (said once)
	pumpQuit    chan struct{}
	pumpDone    chan struct{}
}

// version is the build's module version.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s))
	return l
}

// apiErr is an error with its HTTP status and stable code.
type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func errf(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// fromEngine classifies an error of the engine or ublk.
func fromEngine(err error) *apiErr {
	var ae *apiErr
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ublk.ErrNoDriver), errors.Is(err, ublk.ErrPermission), errors.Is(err, ublk.ErrNotSupported):
		return errf(http.StatusServiceUnavailable, api.CodeUblkUnavailable, "%v", err)
	case errors.Is(err, engine.ErrInvalid):
		return errf(http.StatusBadRequest, api.CodeInvalidRequest, "%v", err)
	case errors.Is(err, engine.ErrClosed):
		return errf(http.StatusConflict, api.CodeConflict, "%v", err)
	}
	return errf(http.StatusInternalServerError, api.CodeInternal, "%v", err)
}

// addDevice exposes a backing file or block device as a ublk origin.
func (d *Daemon) addDevice(req api.DeviceAddRequest) (api.Device, error) {
	cfg := d.config()
	dd := cfg.Defaults.Device
	if !filepath.IsAbs(req.Path) {
		return api.Device{}, errf(400, api.CodeInvalidRequest, "path %q: want an absolute path", req.Path)
	}
	q, dp, m := orDefault(req.Queues, dd.Queues), orDefault(req.Depth, dd.Depth), orDefault(req.MaxIOBytes, int(dd.MaxIO))
	uc := req.UserCopy
	if uc == "" {
		uc = dd.UserCopy
	}
	if err := validateUblk(q, dp, m, uc); err != nil {
		return api.Device{}, errf(400, api.CodeInvalidRequest, "%v", err)
	}
	mode, _ := parseUserCopy(uc)
	ucfg := ublk.DeviceConfig{Queues: q, Depth: dp, MaxIOBytes: m, UserCopy: mode}
	fi, err := os.Stat(req.Path)
	if err != nil {
		return api.Device{}, errf(400, api.CodeInvalidRequest, "device %s: %v", req.Path, errors.Unwrap(err))
	}
	d.mu.Lock()
	if d.mu.stopping {
		d.mu.Unlock()
		return api.Device{}, errf(503, api.CodeShuttingDown, "the daemon is stopping")
	}
	for _, o := range d.mu.devices {
		for _, p := range []string{o.path, o.name()} {
			if ofi, err := os.Stat(p); p != "" && err == nil && os.SameFile(fi, ofi) {
				d.mu.Unlock()
				return api.Device{}, errf(409, api.CodeConflict, "%s is already served as device %d (%s)", req.Path, o.id, o.path)
			}
		}
	}
	d.mu.nextDev++
	id := d.mu.nextDev
	d.mu.Unlock()
	if !d.opts.inProcess {
		// Refuse before opening anything when the driver is missing.
		if _, err := ublk.ProbeFeatures(); err != nil {
			return api.Device{}, fromEngine(err)
		}
	}
	eng, err := engine.OpenDeviceWith(req.Path, engine.DeviceOptions{Direct: req.Direct})
	if err != nil {
		return api.Device{}, fromEngine(err)
	}
	dev := &device{id: id, path: req.Path, eng: eng, cfg: ucfg, addedAt: time.Now().UTC(), quit: make(chan struct{})}
	if d.metrics != nil {
		dev.mt = d.metrics.device(id, req.Path, ucfg.Queues)
	}
	if !d.opts.inProcess {
		target := ublk.NewOriginTarget(eng)
		if dev.mt != nil {
			target.SetObserver(dev.mt.originObserver())
		}
		u, err := ublk.Create(ucfg, target)
		if err != nil {
			eng.Close()
			return api.Device{}, fromEngine(err)
		}
		dev.u = u
		dev.cfg = ucfg
	}
	d.mu.Lock()
	if d.mu.stopping {
		d.mu.Unlock()
		ublk.Teardown(nil, nil, []*ublk.Device{dev.u}, []*engine.Device{eng}, 0)
		return api.Device{}, errf(503, api.CodeShuttingDown, "the daemon is stopping")
	}
	d.mu.devices[id] = dev
	out := d.deviceLocked(dev)
	d.mu.Unlock()
	d.saveState()
	if dev.u != nil {
		go d.watchDevice(dev)
	}
	d.log.Info("device added", "device", id, "path", req.Path, "name", dev.name())
	d.events.publish(api.Event{Kind: api.EventDeviceAdded, Device: id, Path: req.Path, Message: dev.name()})
	return out, nil
}

// watchDevice reports a device the driver stopped (its queue failed or
// someone deleted it) while the daemon still serves it.
func (d *Daemon) watchDevice(dev *device) {
	select {
	case <-dev.u.Done():
		select {
		case <-dev.quit:
			return
		default:
		}
		d.log.Error("device stopped by the driver", "device", dev.id, "name", dev.name(), "err", dev.u.Err())
		d.events.publish(api.Event{Kind: api.EventDeviceStopped, Device: dev.id, Path: dev.path, Message: fmt.Sprintf("%s stopped: %v", dev.name(), dev.u.Err())})
	case <-dev.quit:
	}
}

func (d *Daemon) deviceLocked(dev *device) api.Device {
	out := api.Device{ID: dev.id, Path: dev.path, Name: dev.name(), UblkID: -1, SizeBytes: dev.eng.Size(),
		Queues: dev.cfg.Queues, Depth: dev.cfg.Depth, MaxIOBytes: dev.cfg.MaxIOBytes, Direct: dev.eng.Direct(), Snapshot: dev.snap, AddedAt: dev.addedAt}
	if dev.u != nil {
		out.UblkID = int64(dev.u.ID())
		out.DataPath = dev.u.DataPath()
	}
	return out
}

func (d *Daemon) listDevices() api.DeviceList {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := api.DeviceList{Devices: []api.Device{}}
	for _, dev := range d.mu.devices {
		out.Devices = append(out.Devices, d.deviceLocked(dev))
	}
	slices.SortFunc(out.Devices, func(a, b api.Device) int { return int(a.ID) - int(b.ID) })
	return out
}

func (d *Daemon) getDevice(ref string) (*device, error) {
	id, err := strconv.ParseUint(ref, 10, 64)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		if dev, ok := d.mu.devices[id]; ok {
			return dev, nil
		}
	}
	for _, dev := range d.mu.devices {
		if ref == dev.path || (ref == dev.name() && ref != "") {
			return dev, nil
		}
	}
	return nil, errf(404, api.CodeNotFound, "no device %q", ref)
}

func (d *Daemon) deviceInfo(ref string) (api.Device, error) {
	dev, err := d.getDevice(ref)
	if err != nil {
		return api.Device{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deviceLocked(dev), nil
}

// removeDevice stops serving a device no snapshot covers.
func (d *Daemon) removeDevice(ref string) error {
	dev, err := d.getDevice(ref)
	if err != nil {
		return err
	}
	d.mu.Lock()
	if dev.snap != 0 {
		d.mu.Unlock()
		return errf(409, api.CodeConflict, "device %d is covered by snapshot %d: destroy it first", dev.id, dev.snap)
	}
	if _, ok := d.mu.devices[dev.id]; !ok {
		d.mu.Unlock()
		return errf(404, api.CodeNotFound, "no device %q", ref)
	}
	delete(d.mu.devices, dev.id)
	d.mu.Unlock()
	close(dev.quit)
	err = ublk.Teardown(nil, nil, []*ublk.Device{dev.u}, []*engine.Device{dev.eng}, 0)
	d.saveState()
	if d.metrics != nil {
		d.metrics.dropDevice(dev.id)
	}
	d.log.Info("device removed", "device", dev.id, "path", dev.path, "err", err)
	d.events.publish(api.Event{Kind: api.EventDeviceRemoved, Device: dev.id, Path: dev.path, Message: dev.name()})
	if err != nil {
		return fromEngine(err)
	}
	return nil
}
