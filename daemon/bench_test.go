package daemon

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// reportQuantiles reports p50 and p99 of the timed round trips.
func reportQuantiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAPIInfo: the round trip of GET /v1/snapshots/{id} through the
// client over the real socket (in process: engine devices on files).
func BenchmarkAPIInfo(b *testing.B) {
	r := start(b, true, func(c *Config) { c.Log.Level = "warn" })
	dev := addFileDevice(b, r, 64<<20)
	s, err := r.c.CreateSnapshot(context.Background(), api.SnapshotCreateRequest{Devices: []uint64{dev.ID},
		Storage: api.Storage{Path: b.TempDir(), LimitBytes: 64 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	id := strconv.FormatUint(s.ID, 10)
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := r.c.Snapshot(context.Background(), id); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	reportQuantiles(b, d)
}

// BenchmarkAPITake: the round trip of a take (without freeze; create and
// destroy are outside the timing).
func BenchmarkAPITake(b *testing.B) {
	r := start(b, true, func(c *Config) { c.Log.Level = "warn" })
	dev := addFileDevice(b, r, 64<<20)
	dir := b.TempDir()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := r.c.CreateSnapshot(context.Background(), api.SnapshotCreateRequest{Devices: []uint64{dev.ID},
			Storage: api.Storage{Path: dir, LimitBytes: 64 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		id := strconv.FormatUint(s.ID, 10)
		b.StartTimer()
		t0 := time.Now()
		if _, err := r.c.Take(context.Background(), id, false); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t0))
		b.StopTimer()
		if err := r.c.DestroySnapshot(context.Background(), id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportQuantiles(b, d)
}
