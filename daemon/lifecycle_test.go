package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// TestSnapshotLifecycleInProcess drives a snapshot through the API over
// regular files, with the devices served by the engine only (no ublk
// here): the writes go through the daemon's engine device, as a ublk
// origin's would.
func TestSnapshotLifecycleInProcess(t *testing.T) {
	r := start(t, true, nil)
	ctx := context.Background()
	dev := addFileDevice(t, r, 16<<20)
	d := testDaemon.Load()
	eng := d.mu.devices[dev.ID].eng
	before := bytes.Repeat([]byte{0xaa}, 1<<20)
	if _, err := eng.WriteAt(before, 0); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	s, err := r.c.CreateSnapshot(ctx, api.SnapshotCreateRequest{Name: "nightly", Devices: []uint64{dev.ID},
		Storage: api.Storage{Path: storeDir, LimitBytes: 4 << 20, PortionBytes: 1 << 20}, ChunkMinimumShift: 16,
		Policy: &api.Policy{AutoextendThresholdPercent: 60, AutoextendPercent: 50, AutoextendLimitBytes: 16 << 20, WarnPercents: []int{50, 90}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "nightly" || s.State != api.StateCreated || s.ID == 0 {
		t.Fatalf("created %+v", s)
	}
	if _, err := r.c.CreateSnapshot(ctx, api.SnapshotCreateRequest{Devices: []uint64{dev.ID}, Storage: api.Storage{Path: storeDir, LimitBytes: 4 << 20}}); !isCode(err, api.CodeConflict) {
		t.Fatalf("second snapshot of a covered device: %v", err)
	}
	if err := r.c.RemoveDevice(ctx, "1"); !isCode(err, api.CodeConflict) {
		t.Fatalf("removing a covered device: %v", err)
	}
	s, err = r.c.Take(ctx, "nightly", true)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != api.StateTaken || s.TakenAt == nil {
		t.Fatalf("taken %+v", s)
	}
	if _, err := r.c.Take(ctx, "nightly", false); !isCode(err, api.CodeConflict) {
		t.Fatalf("second take: %v", err)
	}
	// 3 MiB of new data: 48 chunks of 64 KiB copied, storage over 60% of
	// 4 MiB -> warnings at 50% and an autoextend.
	after := bytes.Repeat([]byte{0x55}, 3<<20)
	if _, err := eng.WriteAt(after, 0); err != nil {
		t.Fatal(err)
	}
	img := d.mu.snaps[s.ID].snap.Image(eng)
	got := make([]byte, 1<<20)
	if _, err := img.ReadAt(got, 0); err != nil || !bytes.Equal(got, before) {
		t.Fatalf("image changed under origin writes (%v)", err)
	}
	r1, err := r.c.WaitEvent(ctx, 0, clientFilter(api.EventAutoextend, s.ID), 10*time.Second)
	if err != nil || r1.TimedOut {
		t.Fatalf("no autoextend event: %+v %v\n%s", r1, err, r.log)
	}
	info, err := r.c.Snapshot(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Chunks.Copied < 48 || info.Storage.LimitBytes <= 4<<20 || len(info.Storage.Appended) != 1 {
		t.Fatalf("info after writes: chunks %+v storage %+v", info.Chunks, info.Storage)
	}
	var kinds []string
	for _, e := range info.LastEvents {
		kinds = append(kinds, e.Kind)
	}
	for _, want := range []string{api.EventSnapshotTaken, api.EventFillWarning, api.EventAutoextend} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("last events %v lack %s", kinds, want)
		}
	}
	ext := info.Storage.Appended[0]
	if _, err := os.Stat(ext); err != nil {
		t.Fatalf("autoextend file: %v", err)
	}
	list, err := r.c.Snapshots(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list %v %v", list, err)
	}
	if err := r.c.DestroySnapshot(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ext); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("autoextend file left after destroy: %v", err)
	}
	if _, err := r.c.Snapshot(ctx, "1"); !isCode(err, api.CodeNotFound) {
		t.Fatalf("destroyed snapshot still there: %v", err)
	}
	if err := r.c.RemoveDevice(ctx, dev.Path); err != nil {
		t.Fatal(err)
	}
	ev, _ := r.c.WaitEvent(ctx, 0, clientFilter(api.EventDeviceRemoved, 0), time.Second)
	if ev.TimedOut {
		t.Fatal("no device-removed event")
	}
	// The origin holds what was written last.
	data, _ := os.ReadFile(dev.Path)
	if !bytes.Equal(data[:3<<20], after) {
		t.Fatal("origin lost writes")
	}
	entries, _ := os.ReadDir(storeDir)
	if len(entries) != 0 {
		t.Fatalf("storage directory not empty after destroy: %v", entries)
	}
}

func TestWaitEventTimesOut(t *testing.T) {
	r := start(t, true, nil)
	start := time.Now()
	res, err := r.c.WaitEvent(context.Background(), 1000, clientFilter(api.EventCorrupted, 0), 200*time.Millisecond)
	if err != nil || !res.TimedOut || res.Event != nil {
		t.Fatalf("%+v %v", res, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("returned after %v", el)
	}
}

func TestStaleDevicesReported(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o755)
	os.WriteFile(filepath.Join(state, stateName), []byte(`{"pid": 999999, "devices": [{"ublk_id": 4242, "role": "origin", "path": "/x.img"}]}`), 0o600)
	r := start(t, true, func(c *Config) { c.StateDir = state })
	res, err := r.c.WaitEvent(context.Background(), 0, clientFilter(api.EventStaleDevice, 0), 2*time.Second)
	if err != nil || res.TimedOut || !strings.Contains(res.Event.Message, "/dev/ublkb4242") {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	r := start(t, true, nil)
	cfg := &Config{Socket: r.socket + "2", StateDir: r.state}
	cfg.EnsureDefaults()
	err := Run(Options{Config: cfg, Signals: make(chan os.Signal), Log: &syncBuf{}, inProcess: true})
	if err == nil || !strings.Contains(err.Error(), "another snapring daemon") {
		t.Fatalf("second daemon on one state dir: %v", err)
	}
}

func TestHookRuns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hook.out")
	r := start(t, true, func(c *Config) {
		c.Hooks = []HookConfig{{Events: []string{api.EventDeviceAdded}, Argv: []string{"/bin/sh", "-c", `echo "$SNAPRING_EVENT_KIND $X" > "$OUT"`}, Env: map[string]string{"X": "y", "OUT": out}}}
	})
	addFileDevice(t, r, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(out)
		if string(data) == "device-added y\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook output %q\n%s", data, r.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}
