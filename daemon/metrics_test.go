package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/uring"
)

func TestLatencyBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {1, 0}, {1024, 0}, {1025, 1}, {2048, 1}, {2049, 2},
		{time.Millisecond, 10}, // 2^19 < 1e6 <= 2^20
		{1 << 30, latencyBuckets - 1}, {1<<30 + 1, latencyBuckets}, {time.Hour, latencyBuckets},
	} {
		if got := latencyBucket(uint64(c.d)); got != c.want {
			t.Errorf("latencyBucket(%d ns) = %d, want %d", c.d, got, c.want)
		}
	}
	// Rendered: cumulative counts at bounds of 2^(10+i) ns, the sum in seconds.
	var h latencyHist
	for _, d := range []time.Duration{500, 3000, 3000, time.Millisecond, 2 * time.Second} {
		h.observe(d)
	}
	var s latencySum
	s.add(&h)
	var m dto.Metric
	if err := s.metric(prometheus.NewDesc("x", "x", nil, nil)).Write(&m); err != nil {
		t.Fatal(err)
	}
	hg := m.GetHistogram()
	if hg.GetSampleCount() != 5 || hg.GetSampleSum() != (500+6000+1e6+2e9)/1e9 || len(hg.Bucket) != latencyBuckets {
		t.Fatalf("histogram count %d sum %v buckets %d", hg.GetSampleCount(), hg.GetSampleSum(), len(hg.Bucket))
	}
	for _, b := range hg.Bucket {
		var want uint64
		switch ub := b.GetUpperBound(); {
		case ub < 3000e-9:
			want = 1
		case ub < 1e-3:
			want = 3
		default:
			want = 4 // 2 s is beyond the last bound
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

// TestMetricsPerDevice: snapshot info and the metrics report chunk counters
// per device; the per-I/O observers (fed real engine requests, run on an
// engine queue over the daemon's device, as the ublk targets would) count
// origin writes, image reads by source and their latencies, without
// allocating; health reports the process's goroutines, fds and RSS.
func TestMetricsPerDevice(t *testing.T) {
	addr := freeAddr(t)
	r := start(t, true, func(c *Config) { c.Metrics.Address = addr })
	defer http.DefaultClient.CloseIdleConnections()
	ctx := context.Background()
	dev1, dev2 := addFileDevice(t, r, 4<<20), addFileDevice(t, r, 4<<20)
	s, err := r.c.CreateSnapshot(ctx, api.SnapshotCreateRequest{Devices: []uint64{dev1.ID, dev2.ID},
		Storage: api.Storage{Path: t.TempDir(), LimitBytes: 16 << 20}, ChunkMinimumShift: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Take(ctx, "1", false); err != nil {
		t.Fatal(err)
	}
	d := testDaemon.Load()
	d.mu.Lock()
	eng1 := d.mu.devices[dev1.ID].eng
	snap := d.mu.snaps[s.ID].snap
	d.mu.Unlock()
	if _, err := eng1.WriteAt(bytes.Repeat([]byte{7}, 3<<16), 0); err != nil { // chunks 0..2
		t.Fatal(err)
	}
	var info api.Snapshot
	for deadline := time.Now().Add(30 * time.Second); ; {
		if info, err = r.c.Snapshot(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		if info.Chunks.InMemory == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	want3 := api.Chunks{Copied: 3, Stored: 3}
	if len(info.Devices) != 2 || info.Devices[0].Device != dev1.ID || info.Devices[0].Chunks != want3 ||
		info.Devices[1].Chunks != (api.Chunks{}) || info.Chunks != want3 || info.StoreQueued != 0 || info.Devices[0].Corrupted {
		t.Fatalf("info: chunks %+v store queued %d devices %+v", info.Chunks, info.StoreQueued, info.Devices)
	}

	// Real requests through an engine queue, shown to the observers.
	d.metrics.mu.Lock()
	dm := d.metrics.devices[dev1.ID]
	d.metrics.mu.Unlock()
	q, err := engine.NewQueue(4)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	arena, err := uring.NewArena(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer arena.Close()
	out := make([]*engine.Request, 1)
	run := func(req *engine.Request, observe func(int, *engine.Request, time.Duration)) {
		t.Helper()
		begin := time.Now()
		if err := q.Submit(req); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Poll(out, 1); err != nil || out[0] != req || req.Err != nil {
			t.Fatalf("%v: poll %v, request error %v", req.Op, err, req.Err)
		}
		observe(0, req, time.Since(begin))
	}
	img := snap.Image(eng1)
	run(&engine.Request{Op: engine.OpOriginWrite, Device: eng1, Off: 5 << 16, Buf: arena.Slice(0, 8192)}, dm.observeOrigin)
	run(&engine.Request{Op: engine.OpImageRead, Image: img, Off: 0, Buf: arena.Slice(0, 4096)}, dm.observeImage)       // stored
	run(&engine.Request{Op: engine.OpImageRead, Image: img, Off: 9 << 16, Buf: arena.Slice(0, 4096)}, dm.observeImage) // never written
	// A read across a chunk in memory and a stored one counts under both.
	dm.observeImage(0, &engine.Request{Op: engine.OpImageRead, Buf: arena.Slice(0, 4096), Source: engine.SourceMemory | engine.SourceDiff}, time.Millisecond)
	dm.observeImage(0, &engine.Request{Op: engine.OpImageRead, Buf: arena.Slice(0, 512), Err: engine.ErrCorrupted}, time.Microsecond)
	w := &engine.Request{Op: engine.OpOriginWrite, Buf: arena.Slice(0, 4096)}
	if n := testing.AllocsPerRun(100, func() { dm.observeOrigin(0, w, 50*time.Microsecond) }); n != 0 {
		t.Errorf("observeOrigin: %.1f allocations, want 0", n)
	}

	body := scrape(t, addr)
	l1, l2 := fmt.Sprint(dev1.ID), fmt.Sprint(dev2.ID)
	for _, want := range []string{
		`snapring_origin_writes_total{device="` + l1 + `"} 102`,
		`snapring_origin_write_bytes_total{device="` + l1 + `"} 421888`, // 8192 + 101 * 4096 (AllocsPerRun runs once more),
		`snapring_origin_write_duration_seconds_count{device="` + l1 + `"} 102`,
		`snapring_origin_writes_total{device="` + l2 + `"} 0`,
		`snapring_image_reads_total{device="` + l1 + `",source="diff"} 2`,
		`snapring_image_reads_total{device="` + l1 + `",source="memory"} 1`,
		`snapring_image_reads_total{device="` + l1 + `",source="original"} 1`,
		`snapring_image_read_bytes_total{device="` + l1 + `"} 12800`,
		`snapring_image_errors_total{device="` + l1 + `"} 1`,
		`snapring_image_read_duration_seconds_count{device="` + l1 + `"} 4`,
		`snapring_image_read_duration_seconds_bucket{device="` + l1 + `",le="+Inf"} 4`,
		`snapring_snapshot_chunks_copied_total{device="` + l1 + `",snapshot="1"} 4`,
		`snapring_snapshot_chunks_copied_total{device="` + l2 + `",snapshot="1"} 0`,
		`snapring_snapshot_chunks_in_memory{device="` + l2 + `",snapshot="1"} 0`,
		`snapring_snapshot_store_queue_depth{snapshot="1"}`,
		`snapring_snapshot_state{snapshot="1",state="taken"} 1`,
		`snapring_events_total{kind="snapshot-taken"} 1`,
		"go_goroutines ", "snapring_build_info{",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grepLines(body, "snapring_origin_w", "snapring_image", "snapring_snapshot_chunks"))
	}

	h, err := r.c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Goroutines < 5 || h.OpenFDs < 5 || h.RSSBytes < 1<<20 {
		t.Fatalf("health resources: %+v", h)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func grepLines(s string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}
