package ublk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapring/snapring/engine"
)

// TestTeardownOrderWithoutDevices: on any host, Teardown destroys the
// snapshot and waits for it before closing the engine devices (which
// refuse to close while a live snapshot covers them), and SnapshotSet's
// Close does it once.
func TestTeardownOrderWithoutDevices(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "origin.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := engine.OpenDevice(p)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := engine.NewSnapshot([]*engine.Device{dev}, engine.StorageConfig{Path: dir, Limit: 4 << 20}, engine.Options{ChunkMinimumShift: 16, DiffStorageMinimum: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("closing a covered device: %v; the test's premise is gone", err)
	}
	set := NewSnapshotSet()
	set.AddDevice(dev)
	set.SetSnapshot(snap)
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-snap.Done():
	default:
		t.Fatal("snapshot not released after Close")
	}
	if err := snap.Take(); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("take after teardown: %v", err)
	}
	if err := set.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := dev.ReadAt(make([]byte, 512), 0); err == nil {
		t.Fatal("engine device still open after teardown")
	}
	if err := Teardown(nil, []*engine.Snapshot{nil}, []*Device{nil}, nil, 0); err != nil {
		t.Fatalf("nil entries: %v", err)
	}
}
