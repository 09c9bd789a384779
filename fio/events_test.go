package fio

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
)

// TestDrainEventsKinds: the snapshot's events land under the results
// schema's kinds (not the first word of their text), with the engine's
// text as the detail.
func TestDrainEventsKinds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "origin")
	if err := os.WriteFile(path, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := engine.OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A 1 MiB limit and 256 KiB chunks: the fifth copy overflows it.
	s, err := engine.NewSnapshot([]*engine.Device{d}, engine.StorageConfig{Path: dir, Limit: 1 << 20}, engine.Options{DiffStorageMinimum: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < 8<<20; off += 256 << 10 {
		d.WriteAt(make([]byte, 4096), off) //nolint:errcheck // the origin keeps working; only the events matter
	}
	var evs []results.Event
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// the store workers raise the overflow as they run out
		if evs = drainEvents(s, evs); hasKind(evs, results.EventOverflow) {
			break
		}
	}
	s.Destroy()
	<-s.Done()
	if !hasKind(evs, results.EventOverflow) {
		t.Fatalf("no %q event in %+v", results.EventOverflow, evs)
	}
	known := map[string]bool{results.EventLowFreeSpace: true, results.EventNoSpace: true, results.EventOverflow: true,
		results.EventCorrupted: true, results.CounterEventsDropped: true}
	for _, e := range evs {
		if !known[e.Kind] || e.Detail == "" {
			t.Errorf("event %+v: kind not one of the schema's, or no detail", e)
		}
	}
}

func hasKind(evs []results.Event, kind string) bool {
	for _, e := range evs {
		if e.Kind == kind {
			return true
		}
	}
	return false
}
