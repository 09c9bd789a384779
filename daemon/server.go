package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/ublk"
)

// DecodeRequest decodes one JSON request body strictly: unknown fields,
// trailing data and a body over maxBytes are errors.
func DecodeRequest(data []byte, v any, maxBytes int) error {
	if len(data) > maxBytes {
		return errf(413, api.CodeRequestTooLarge, "request body over %d bytes", maxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errf(400, api.CodeInvalidRequest, "empty request body: want a JSON object")
		}
		return errf(400, api.CodeInvalidRequest, "request body: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errf(400, api.CodeInvalidRequest, "request body: data after the JSON object")
	}
	return nil
}

func (d *Daemon) decode(w http.ResponseWriter, r *http.Request, v any) error {
	max := int(d.config().API.MaxRequestBytes)
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errf(413, api.CodeRequestTooLarge, "request body over %d bytes", max)
		}
		return errf(400, api.CodeInvalidRequest, "reading the request body: %v", err)
	}
	return DecodeRequest(data, v, max)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	ae := fromEngine(err)
	writeJSON(w, ae.status, api.Error{Code: ae.code, Message: ae.msg})
}

// statusWriter records the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(c int)           { s.status = c; s.ResponseWriter.WriteHeader(c) }
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type peerKey struct{}

// handle wraps an API handler: panics become 500s, every request is
// counted and logged at debug level.
func (d *Daemon) handle(route string, h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				d.log.Error("handler panic", "route", route, "panic", p, "stack", string(buf))
				writeErr(sw, errf(500, api.CodeInternal, "internal error"))
			}
			if d.metrics != nil {
				d.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
				d.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
			d.log.Debug("request", "route", route, "path", r.URL.Path, "status", sw.status, "seconds", time.Since(start).Seconds(), "peer", r.Context().Value(peerKey{}))
		}()
		if err := h(sw, r); err != nil {
			writeErr(sw, err)
		}
	}
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	reg := func(pattern, route string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, d.handle(route, h))
	}
	reg("GET /v1/health", "health", func(w http.ResponseWriter, r *http.Request) error {
		d.mu.Lock()
		h := api.Health{Status: "ok", Devices: len(d.mu.devices), Snapshots: len(d.mu.snaps)}
		if d.mu.stopping {
			h.Status = "stopping"
		}
		d.mu.Unlock()
		h.Subscribers = d.events.subscribers()
		h.UptimeSeconds = time.Since(d.started).Seconds()
		h.Goroutines, h.OpenFDs, h.RSSBytes = processResources()
		writeJSON(w, 200, h)
		return nil
	})
	reg("GET /v1/version", "version", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, 200, api.VersionInfo{Version: version(), API: api.Version, GoVersion: runtime.Version()})
		return nil
	})
	reg("POST /v1/devices", "device_add", func(w http.ResponseWriter, r *http.Request) error {
		var req api.DeviceAddRequest
		if err := d.decode(w, r, &req); err != nil {
			return err
		}
		dev, err := d.addDevice(req)
		if err != nil {
			return err
		}
		writeJSON(w, 201, dev)
		return nil
	})
	reg("GET /v1/devices", "device_list", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, 200, d.listDevices())
		return nil
	})
	reg("GET /v1/devices/{id}", "device_info", func(w http.ResponseWriter, r *http.Request) error {
		dev, err := d.deviceInfo(r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, 200, dev)
		return nil
	})
	reg("DELETE /v1/devices/{id}", "device_remove", func(w http.ResponseWriter, r *http.Request) error {
		if err := d.removeDevice(r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(204)
		return nil
	})
	reg("POST /v1/snapshots", "snapshot_create", func(w http.ResponseWriter, r *http.Request) error {
		var req api.SnapshotCreateRequest
		if err := d.decode(w, r, &req); err != nil {
			return err
		}
		s, err := d.createSnapshot(req)
		if err != nil {
			return err
		}
		writeJSON(w, 201, s)
		return nil
	})
	reg("GET /v1/snapshots", "snapshot_list", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, 200, d.listSnapshots())
		return nil
	})
	reg("GET /v1/snapshots/{id}", "snapshot_info", func(w http.ResponseWriter, r *http.Request) error {
		s, err := d.info(r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, 200, s)
		return nil
	})
	reg("POST /v1/snapshots/{id}/take", "snapshot_take", func(w http.ResponseWriter, r *http.Request) error {
		var req api.TakeRequest
		if err := d.decode(w, r, &req); err != nil {
			return err
		}
		s, err := d.take(r.PathValue("id"), req)
		if err != nil {
			return err
		}
		writeJSON(w, 200, s)
		return nil
	})
	reg("POST /v1/snapshots/{id}/append", "snapshot_append", func(w http.ResponseWriter, r *http.Request) error {
		var req api.AppendRequest
		if err := d.decode(w, r, &req); err != nil {
			return err
		}
		s, err := d.appendStorage(r.PathValue("id"), req)
		if err != nil {
			return err
		}
		writeJSON(w, 200, s)
		return nil
	})
	reg("DELETE /v1/snapshots/{id}", "snapshot_destroy", func(w http.ResponseWriter, r *http.Request) error {
		if err := d.destroySnapshot(r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(204)
		return nil
	})
	reg("GET /v1/events", "events", d.streamEvents)
	reg("GET /v1/events/wait", "events_wait", d.waitEvent)
	reg("/", "not_found", func(w http.ResponseWriter, r *http.Request) error {
		return errf(404, api.CodeNotFound, "no route %s %s (the API is under /%s/; see docs/api.md)", r.Method, r.URL.Path, api.Version)
	})
	return mux
}

func parseSince(r *http.Request) (uint64, error) {
	s := r.URL.Query().Get("since")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errf(400, api.CodeInvalidRequest, "since %q: want a sequence number", s)
	}
	return n, nil
}

// streamEvents is GET /v1/events?since=N[&kinds=a,b][&snapshot=ID]: JSON
// lines, one event each, until the client goes or the daemon stops.
func (d *Daemon) streamEvents(w http.ResponseWriter, r *http.Request) error {
	since, err := parseSince(r)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("since") == "" {
		since = d.events.lastSeq()
	}
	match, err := d.matchFilter(r.URL.Query().Get("kinds"), r.URL.Query().Get("snapshot"))
	if err != nil {
		return err
	}
	sub, ok := d.events.subscribe(since, match)
	if !ok {
		return errf(503, api.CodeTooManyRequests, "too many event subscribers (%d)", d.config().Events.MaxSubscribers)
	}
	defer d.events.unsubscribe(sub)
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	writeTimeout := time.Duration(d.config().API.WriteTimeout)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(200)
	rc.Flush()
	enc := json.NewEncoder(w)
	var batch []api.Event
	for {
		var dropped uint64
		batch, dropped = sub.take(batch[:0])
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if dropped > 0 {
			if err := enc.Encode(api.Event{Kind: api.EventDropped, Time: time.Now().UTC(), Dropped: dropped,
				Message: fmt.Sprintf("%d events dropped: the subscriber fell behind or resumed before the history", dropped)}); err != nil {
				return nil
			}
		}
		for _, e := range batch {
			if err := enc.Encode(e); err != nil {
				return nil // the client went away or stopped reading
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-sub.notify:
		case <-r.Context().Done():
			return nil
		case <-d.events.closed:
			return nil
		}
	}
}

// testDaemon is the running in-process daemon, for package tests.
var testDaemon atomic.Pointer[Daemon]

// maxWait bounds one wait-event.
const maxWait = 10 * time.Minute

// waitEvent is GET /v1/events/wait?since=N&timeout=30s[&kinds=..][&snapshot=ID]
// (blksnap's snapshot_waitevent).
func (d *Daemon) waitEvent(w http.ResponseWriter, r *http.Request) error {
	since, err := parseSince(r)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		if timeout, err = time.ParseDuration(s); err != nil || timeout < 0 || timeout > maxWait {
			return errf(400, api.CodeInvalidRequest, "timeout %q: want a duration up to %v", s, maxWait)
		}
	}
	match, err := d.matchFilter(r.URL.Query().Get("kinds"), r.URL.Query().Get("snapshot"))
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Now().Add(timeout + time.Duration(d.config().API.WriteTimeout)))
	e := d.events.wait(r.Context(), since, match, timeout)
	writeJSON(w, 200, api.WaitResult{Event: e, TimedOut: e == nil})
	return nil
}

func (b *bus) lastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// peerListener admits only root and the configured group (SO_PEERCRED),
// and bounds the connections open at once.
type peerListener struct {
	net.Listener
	d         *Daemon
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

// Close also ends an Accept that waits for a free slot.
func (l *peerListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
	cred    *unix.Ucred
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && !l.d.allowed(cred) {
			err = fmt.Errorf("uid %d gid %d is neither root nor in the socket group", cred.Uid, cred.Gid)
		}
		if err != nil {
			l.d.log.Warn("connection refused", "pid", credPid(cred), "err", err)
			go refuse(c, err)
			<-l.slots
			continue
		}
		return &limitedConn{Conn: c, release: func() { <-l.slots }, cred: cred}, nil
	}
}

func credPid(c *unix.Ucred) int32 {
	if c == nil {
		return 0
	}
	return c.Pid
}

// refuse answers a refused peer with a 403 and closes. It then reads (and
// drops) what the peer sends for a moment: closing with its request unread
// would fail the peer's write with EPIPE before it could read the answer.
func refuse(c net.Conn, why error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	body, _ := json.Marshal(api.Error{Code: api.CodePermissionDenied, Message: "permission denied: " + why.Error()})
	fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if uc, ok := c.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a Unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// allowed: root, or the socket group as the peer's gid or one of its
// supplementary groups (from /proc/PID/status).
func (d *Daemon) allowed(c *unix.Ucred) bool {
	if c.Uid == 0 {
		return true
	}
	d.cfgMu.Lock()
	gid, set := d.gid, d.gset
	d.cfgMu.Unlock()
	if !set {
		return false
	}
	if c.Gid == gid {
		return true
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.Pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if g, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			for _, s := range strings.Fields(g) {
				if n, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(n) == gid {
					return true
				}
			}
		}
	}
	return false
}

func (d *Daemon) config() *Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

// listen makes the API socket: a stale socket file (nothing listening) is
// replaced, a live one refused; mode 0660, group set.
func (d *Daemon) listen(cfg *Config) (*net.UnixListener, error) {
	path := cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("daemon: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("daemon: %s exists and is not a socket: not touching it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("daemon: another daemon is listening on %s", path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o117)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("daemon: listen: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("daemon: socket mode: %w", err)
	}
	if d.gset {
		if err := os.Chown(path, 0, int(d.gid)); err != nil {
			l.Close()
			return nil, fmt.Errorf("daemon: socket group: %w", err)
		}
	}
	return l, nil
}

func notify(state string) { sddaemon.SdNotify(false, state) }

// Run starts the daemon and serves until SIGTERM or SIGINT (nil: a clean
// stop), or until it cannot go on. SIGHUP reloads the configuration.
func Run(opts Options) error {
	cfg := opts.Config
	if cfg == nil {
		var err error
		if cfg, err = LoadConfig(opts.ConfigPath); err != nil {
			return err
		}
	}
	if opts.MetricsAddr != "" {
		cfg.Metrics.Address = opts.MetricsAddr
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.tick == 0 {
		opts.tick = time.Second
	}
	d := &Daemon{opts: opts, cfg: cfg, level: new(slog.LevelVar), started: time.Now().UTC()}
	if opts.inProcess {
		testDaemon.Store(d)
		defer testDaemon.CompareAndSwap(d, nil)
	}
	d.level.Set(parseLevel(cfg.Log.Level))
	d.log = newLogger(opts.Log, cfg.Log.Format, d.level)
	d.mu.devices, d.mu.snaps = map[uint64]*device{}, map[uint64]*snapshot{}
	if cfg.SocketGroup != "" {
		d.gid, _ = lookupGroup(cfg.SocketGroup)
		d.gset = true
	}
	d.events = newBus(cfg.Events.History, cfg.Events.SubscriberBacklog, cfg.Events.MaxSubscribers)
	d.hooks = newHookRunner(cfg.Hooks)
	defer d.hooks.close()
	d.hooks.log, d.hooks.warn = d.log.Info, d.log.Warn
	d.hooks.fail = func(e api.Event, h HookConfig, err error) {
		d.events.publish(api.Event{Kind: api.EventHookFailed, Snapshot: e.Snapshot, Device: e.Device,
			Message: fmt.Sprintf("hook %s on event %d (%s): %v", h.Argv[0], e.Seq, e.Kind, err)})
	}
	d.events.after = append(d.events.after, d.hooks.dispatch)
	if cfg.Metrics.Address != "" {
		d.metrics = newMetrics(d)
		d.events.after = append(d.events.after, func(e api.Event) { d.metrics.eventsTotal.WithLabelValues(e.Kind).Inc() })
	}

	sig := opts.Signals
	if sig == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(ch)
		sig = ch
	}

	state, prev, err := openState(cfg.StateDir)
	if err != nil {
		return err
	}
	d.state = state
	cleanExit := false
	defer func() { state.close(cleanExit) }()
	d.cleanStale(prev)
	d.saveState()

	l, err := d.listen(cfg)
	if err != nil {
		return err
	}
	pl := &peerListener{Listener: l, d: d, slots: make(chan struct{}, cfg.API.MaxConnections), closed: make(chan struct{})}
	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: time.Duration(cfg.API.ReadTimeout),
		ReadTimeout: time.Duration(cfg.API.ReadTimeout), WriteTimeout: time.Duration(cfg.API.WriteTimeout),
		IdleTimeout: time.Duration(cfg.API.IdleTimeout), MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitedConn); ok && lc.cred != nil {
				return context.WithValue(ctx, peerKey{}, fmt.Sprintf("pid=%d uid=%d", lc.cred.Pid, lc.cred.Uid))
			}
			return ctx
		}}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(pl) }()

	var msrv *http.Server
	if cfg.Metrics.Address != "" {
		ml, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			srv.Close()
			return fmt.Errorf("daemon: metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
		go func() { serveErr <- msrv.Serve(ml) }()
		d.log.Info("metrics listening", "address", ml.Addr().String())
	}

	// Configured devices, before READY.
	for _, dc := range cfg.Devices {
		if _, err := d.addDevice(api.DeviceAddRequest{Path: dc.Path, Queues: dc.Queues, Depth: dc.Depth, MaxIOBytes: int(dc.MaxIO), UserCopy: dc.UserCopy, Direct: dc.Direct}); err != nil {
			d.log.Error("configured device", "path", dc.Path, "err", err)
			d.shutdown(srv, msrv)
			return fmt.Errorf("daemon: device %s: %w", dc.Path, err)
		}
	}
	d.log.Info("listening", "socket", cfg.Socket, "version", version(), "pid", os.Getpid())
	notify(sddaemon.SdNotifyReady)
	d.status()

	tick := opts.tick
	wd, _ := sddaemon.SdWatchdogEnabled(false)
	if wd > 0 && wd/2 < tick {
		tick = wd / 2
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.log.Info("stopping", "signal", s.String())
			err := d.shutdown(srv, msrv)
			cleanExit = err == nil
			return err
		case err := <-serveErr:
			d.log.Error("server failed", "err", err)
			d.shutdown(srv, msrv)
			return fmt.Errorf("daemon: serve: %w", err)
		case <-t.C:
			d.applyPolicies()
			if wd > 0 {
				notify(sddaemon.SdNotifyWatchdog)
			}
			d.status()
		}
	}
}

func (d *Daemon) status() {
	d.mu.Lock()
	nd, ns := len(d.mu.devices), len(d.mu.snaps)
	d.mu.Unlock()
	notify(fmt.Sprintf("STATUS=serving %d devices, %d snapshots", nd, ns))
}

// shutdown stops accepting, lets requests in flight finish, ends the event
// streams, tears every device and snapshot down (ublk.Teardown: images,
// snapshots, origins) and removes the socket, all within ShutdownTimeout.
func (d *Daemon) shutdown(srv, msrv *http.Server) error {
	notify(sddaemon.SdNotifyStopping)
	cfg := d.config()
	deadline := time.Now().Add(time.Duration(cfg.API.ShutdownTimeout))
	d.mu.Lock()
	d.mu.stopping = true
	d.mu.Unlock()
	d.events.close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("finishing requests: %w", err))
		srv.Close()
	}
	done := make(chan error, 1)
	go func() { done <- d.teardownAll() }()
	select {
	case err := <-done:
		if err != nil {
			errs = append(errs, err)
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("teardown did not finish within %v", time.Duration(cfg.API.ShutdownTimeout)))
	}
	if msrv != nil {
		msrv.Shutdown(ctx)
		msrv.Close()
	}
	os.Remove(cfg.Socket) // the listener unlinks it; a leftover would only mislead
	err := errors.Join(errs...)
	if err != nil {
		d.log.Error("stopped with errors", "err", err)
	} else {
		d.log.Info("stopped")
	}
	return err
}

// teardownAll destroys every snapshot and removes every device in one
// ublk.Teardown: all images, all snapshots, all origins.
func (d *Daemon) teardownAll() error {
	d.mu.Lock()
	var snaps []*snapshot
	for _, s := range d.mu.snaps {
		snaps = append(snaps, s)
	}
	var devs []*device
	for _, dev := range d.mu.devices {
		devs = append(devs, dev)
	}
	d.mu.snaps, d.mu.devices = map[uint64]*snapshot{}, map[uint64]*device{}
	d.mu.Unlock()
	var images []*ublk.Device
	var engSnaps []*engine.Snapshot
	for _, s := range snaps {
		s.op.Lock()
		s.destroyed = true
		images = append(images, s.images...)
		engSnaps = append(engSnaps, s.snap)
	}
	var origins []*ublk.Device
	var engDevs []*engine.Device
	for _, dev := range devs {
		close(dev.quit)
		origins = append(origins, dev.u)
		engDevs = append(engDevs, dev.eng)
	}
	err := ublk.Teardown(images, engSnaps, origins, engDevs, 0)
	for _, s := range snaps {
		close(s.pumpQuit)
		<-s.pumpDone
		for _, f := range s.ownFiles {
			os.Remove(f)
		}
		s.op.Unlock()
		d.log.Info("snapshot destroyed", "snapshot", s.id, "name", s.name)
	}
	for _, dev := range devs {
		d.log.Info("device removed", "device", dev.id, "path", dev.path)
	}
	d.saveState()
	return err
}

// reload re-reads the configuration file: hooks, defaults, the log level,
// the socket group and the policy defaults take effect; the rest needs a
// restart, and the log and a config-reloaded event say which.
func (d *Daemon) reload() {
	if d.opts.ConfigPath == "" {
		d.log.Warn("SIGHUP: no configuration file to reload")
		return
	}
	nc, err := LoadConfig(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("SIGHUP: configuration not reloaded", "err", err)
		d.events.publish(api.Event{Kind: api.EventConfigReloaded, Message: "not reloaded: " + err.Error()})
		return
	}
	old := d.config()
	var notReloaded []string
	same := func(key string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			notReloaded = append(notReloaded, key)
		}
	}
	same("socket", old.Socket, nc.Socket)
	same("state_dir", old.StateDir, nc.StateDir)
	same("log.format", old.Log.Format, nc.Log.Format)
	if d.opts.MetricsAddr == "" {
		same("metrics.address", old.Metrics.Address, nc.Metrics.Address)
	}
	same("api", old.API, nc.API)
	same("events", old.Events, nc.Events)
	same("devices", old.Devices, nc.Devices)
	nc.Socket, nc.StateDir, nc.Log.Format, nc.API, nc.Events, nc.Devices = old.Socket, old.StateDir, old.Log.Format, old.API, old.Events, old.Devices
	nc.Metrics = old.Metrics
	var gid uint32
	if nc.SocketGroup != "" {
		gid, _ = lookupGroup(nc.SocketGroup)
	}
	d.cfgMu.Lock()
	d.cfg = nc
	d.gid, d.gset = gid, nc.SocketGroup != ""
	d.cfgMu.Unlock()
	d.level.Set(parseLevel(nc.Log.Level))
	d.hooks.set(nc.Hooks)
	msg := "reloaded: socket_group, log.level, defaults, hooks"
	if len(notReloaded) > 0 {
		msg += "; changed but needing a restart (kept as they were): " + strings.Join(notReloaded, ", ")
		d.log.Warn("SIGHUP: configuration reloaded in part", "not_reloaded", notReloaded)
	} else {
		d.log.Info("SIGHUP: configuration reloaded")
	}
	d.events.publish(api.Event{Kind: api.EventConfigReloaded, Message: msg})
}

// processResources reads the daemon's goroutines, open file descriptors and
// resident memory (VmRSS), for /v1/health (-1 for what /proc cannot say).
func processResources() (goroutines, fds int, rssBytes int64) {
	goroutines, fds, rssBytes = runtime.NumGoroutine(), -1, -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents) - 1 // less the directory ReadDir itself had open
	}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						rssBytes = kb << 10
					}
				}
			}
		}
	}
	return goroutines, fds, rssBytes
}
