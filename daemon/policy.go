package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// applyPolicies runs every taken snapshot's fill policy once (the main
// loop calls it every tick).
func (d *Daemon) applyPolicies() {
	d.mu.Lock()
	snaps := make([]*snapshot, 0, len(d.mu.snaps))
	for _, s := range d.mu.snaps {
		snaps = append(snaps, s)
	}
	d.mu.Unlock()
	for _, s := range snaps {
		if s.op.TryLock() { // busy with a take or destroy: next tick
			if !s.destroyed && s.taken {
				d.applyPolicy(s)
			}
			s.op.Unlock()
		}
	}
}

// applyPolicy raises the fill warnings crossed since the last tick and
// extends the storage LVM-style (s.op held).
func (d *Daemon) applyPolicy(s *snapshot) {
	st := s.snap.Stats()
	if st.DiffLimitBytes <= 0 {
		return
	}
	pct := float64(st.DiffUsedBytes) * 100 / float64(st.DiffLimitBytes)
	for _, w := range s.policy.WarnPercents {
		if w > s.warned && pct >= float64(w) {
			s.warned = w
			d.log.Warn("difference storage filling", "snapshot", s.id, "percent", pct, "level", w)
			d.events.publish(api.Event{Kind: api.EventFillWarning, Snapshot: s.id, Percent: pct,
				Message: fmt.Sprintf("difference storage %.1f%% full (level %d%%): %d of %d bytes", pct, w, st.DiffUsedBytes, st.DiffLimitBytes)})
		}
	}
	p := s.policy
	if p.AutoextendThresholdPercent >= 100 || p.AutoextendLimitBytes <= 0 || s.extendOff || pct < float64(p.AutoextendThresholdPercent) {
		return
	}
	ext := (st.DiffLimitBytes*int64(p.AutoextendPercent)/100 + 4095) / 4096 * 4096
	if room := p.AutoextendLimitBytes - st.DiffLimitBytes; ext > room {
		ext = room / 4096 * 4096
	}
	if ext <= 0 {
		s.extendOff = true
		d.log.Warn("autoextend limit reached", "snapshot", s.id, "limit", p.AutoextendLimitBytes)
		d.events.publish(api.Event{Kind: api.EventAutoextendFailed, Snapshot: s.id, Percent: pct,
			Message: fmt.Sprintf("autoextend limit %d bytes reached", p.AutoextendLimitBytes)})
		return
	}
	if err := d.extend(s, ext); err != nil {
		s.extendOff = true
		d.log.Error("autoextend", "snapshot", s.id, "err", err)
		d.events.publish(api.Event{Kind: api.EventAutoextendFailed, Snapshot: s.id, Percent: pct, Message: err.Error()})
		return
	}
	// Warnings start again from the new, lower fill.
	s.warned = 0
	st2 := s.snap.Stats()
	d.log.Info("autoextended", "snapshot", s.id, "bytes", ext, "limit", st2.DiffLimitBytes)
	d.events.publish(api.Event{Kind: api.EventAutoextend, Snapshot: s.id, RequestedBytes: ext, Percent: pct,
		Message: fmt.Sprintf("difference storage extended by %d bytes to a limit of %d", ext, st2.DiffLimitBytes)})
}

// extend appends a new file of n bytes next to the storage: the engine
// cannot raise a storage's own limit, so autoextend adds a file, which
// the daemon creates (never an existing one) and removes on destroy.
func (d *Daemon) extend(s *snapshot, n int64) error {
	dir := s.storage
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeDevice != 0:
		return fmt.Errorf("storage %s is a block device: autoextend needs a file system; append storage instead", dir)
	case !fi.IsDir():
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, fmt.Sprintf(".snapring-%d-%d-extend-%d", os.Getpid(), s.id, len(s.ownFiles)+1))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if err := s.snap.AppendStorage(path, 0, n); err != nil {
		os.Remove(path)
		return err
	}
	s.ownFiles = append(s.ownFiles, path)
	s.appended = append(s.appended, path)
	return nil
}

// hookRunner runs the configured hook commands, a bounded number at once
// from a bounded queue; a hook that finds the queue full is logged and
// skipped, never blocking the event's publisher.
type hookRunner struct {
	log     func(msg string, args ...any)
	warn    func(msg string, args ...any)
	fail    func(e api.Event, h HookConfig, err error)
	mu      sync.Mutex
	hooks   []HookConfig
	queue   chan hookJob
	skipped atomic.Int64
	wg      sync.WaitGroup
	ctx     context.Context
	stop    context.CancelFunc
}

type hookJob struct {
	h HookConfig
	e api.Event
}

const (
	hookWorkers     = 2
	hookQueue       = 64
	hookOutputBytes = 16 << 10
)

func newHookRunner(hooks []HookConfig) *hookRunner {
	r := &hookRunner{hooks: hooks, queue: make(chan hookJob, hookQueue)}
	r.ctx, r.stop = context.WithCancel(context.Background())
	for i := 0; i < hookWorkers; i++ {
		r.wg.Add(1)
		go r.worker()
	}
	return r
}

func (r *hookRunner) set(hooks []HookConfig) {
	r.mu.Lock()
	r.hooks = hooks
	r.mu.Unlock()
}

// dispatch queues the hooks that want e. A hook-failed event runs no
// hooks (a failing hook on it would loop).
func (r *hookRunner) dispatch(e api.Event) {
	if e.Kind == api.EventHookFailed || e.Kind == api.EventDropped {
		return
	}
	r.mu.Lock()
	hooks := r.hooks
	r.mu.Unlock()
	for _, h := range hooks {
		if !slices.Contains(h.Events, e.Kind) {
			continue
		}
		select {
		case r.queue <- hookJob{h, e}:
		case <-r.ctx.Done():
			return
		default:
			// Logged at 1, 2, 4, 8... skips: an event flood is not a log flood.
			if n := r.skipped.Add(1); n&(n-1) == 0 {
				r.warn("hook queue full: skipped", "argv", h.Argv, "event", e.Seq, "skipped_total", n)
			}
		}
	}
}

func (r *hookRunner) worker() {
	defer r.wg.Done()
	for {
		select {
		case j := <-r.queue:
			r.run(j)
		case <-r.ctx.Done():
			return
		}
	}
}

// limitedBuffer keeps the first n bytes written.
type limitedBuffer struct {
	bytes.Buffer
	n int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.n - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func hookEnv(h HookConfig, e api.Event) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SNAPRING_EVENT_KIND=" + e.Kind,
		"SNAPRING_EVENT_SEQ=" + strconv.FormatUint(e.Seq, 10),
		"SNAPRING_EVENT_TIME=" + e.Time.Format(time.RFC3339Nano),
		"SNAPRING_EVENT_SNAPSHOT=" + strconv.FormatUint(e.Snapshot, 10),
		"SNAPRING_EVENT_DEVICE=" + strconv.FormatUint(e.Device, 10),
		"SNAPRING_EVENT_PATH=" + e.Path,
		"SNAPRING_EVENT_MESSAGE=" + e.Message,
		"SNAPRING_EVENT_PERCENT=" + strconv.FormatFloat(e.Percent, 'f', 1, 64),
		"SNAPRING_EVENT_REQUESTED_BYTES=" + strconv.FormatInt(e.RequestedBytes, 10),
	}
	keys := make([]string, 0, len(h.Env))
	for k := range h.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+h.Env[k])
	}
	return env
}

func (r *hookRunner) run(j hookJob) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Duration(j.h.Timeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, j.h.Argv[0], j.h.Argv[1:]...)
	cmd.Env = hookEnv(j.h, j.e)
	cmd.Dir = "/"
	out := &limitedBuffer{n: hookOutputBytes}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("killed after the timeout of %v: %w", time.Duration(j.h.Timeout), err)
		}
		r.warn("hook failed", "argv", j.h.Argv, "event", j.e.Seq, "kind", j.e.Kind, "err", err, "output", text)
		r.fail(j.e, j.h, err)
		return
	}
	r.log("hook ran", "argv", j.h.Argv, "event", j.e.Seq, "kind", j.e.Kind, "seconds", time.Since(start).Seconds(), "output", text)
}

func (r *hookRunner) close() {
	r.stop()
	r.wg.Wait()
}
