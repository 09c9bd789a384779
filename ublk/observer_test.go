package ublk

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/snapring/snapring/engine"
)

// observed is what the test's observer records of one request.
type observed struct {
	queue   int
	op      engine.Op
	bytes   int64
	source  engine.Source
	copied  bool
	err     error
	elapsed time.Duration
}

// recorder keeps the requests an Observer saw, in a slice with room for
// all of them (the observer must not allocate).
type recorder struct{ seen []observed }

func (r *recorder) observe(q *Queue, req *engine.Request, elapsed time.Duration) {
	n := int64(len(req.Buf))
	if req.Op == engine.OpOriginDiscard || req.Op == engine.OpOriginWriteZeroes {
		n = req.Len
	}
	r.seen = append(r.seen, observed{queue: q.ID(), op: req.Op, bytes: n, source: req.Source, copied: req.Copied, err: req.Err, elapsed: elapsed})
}

// snapTargetQueue runs target on a hand-built queue (hostQueue: this host's
// io_uring, no driver), with its per-queue state set up as Create would.
func snapTargetQueue(t *testing.T, target interface {
	Target
	Deiniter
}) *Queue {
	t.Helper()
	q := hostQueue(t, target, false)
	if err := target.Init(q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Deinit(q) })
	return q
}

// TestSnapshotTargetObserver: the observer sees every request the origin and
// image targets complete, with its operation, size, error, copy-on-write
// flag, the image read's source and a positive duration; requests served
// with it cost no allocation; a target without one reads no clock.
func TestSnapshotTargetObserver(t *testing.T) {
	const chunk = 16 << 10
	path, data := backingFile(t, 1<<20, 5)
	dev, err := engine.OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	snap, err := engine.NewSnapshot([]*engine.Device{dev}, engine.StorageConfig{Path: t.TempDir(), Limit: 16 << 20},
		engine.Options{ChunkMinimumShift: 14, DiffStorageMinimum: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		snap.Destroy()
		<-snap.Done()
	}()
	if err := snap.Take(); err != nil {
		t.Fatal(err)
	}

	var orec, irec recorder
	orec.seen = make([]observed, 0, 8)
	irec.seen = make([]observed, 0, 8)
	origin := NewOriginTarget(dev)
	origin.SetObserver(orec.observe)
	oq := snapTargetQueue(t, origin)
	newData := bytes.Repeat([]byte{0xa5}, 8192)
	copy(oq.Buffer(0), newData)
	serveOne(t, oq, 0, ioDesc{opFlags: uint32(OpWrite), nrSectors: 16, startSector: chunk / 512}) // copies chunk 1
	serveOne(t, oq, 1, ioDesc{opFlags: uint32(OpRead), nrSectors: 8, startSector: 0})
	serveOne(t, oq, 2, ioDesc{opFlags: uint32(OpFlush)})
	serveOne(t, oq, 3, ioDesc{opFlags: uint32(OpRead), nrSectors: 8, startSector: 1 << 20 / 512}) // beyond the end
	wantSeen(t, "origin", orec.seen, []observed{
		{op: engine.OpOriginWrite, bytes: 8192, copied: true},
		{op: engine.OpOriginRead, bytes: 4096},
		{op: engine.OpOriginFlush},
		{op: engine.OpOriginRead, bytes: 4096, err: engine.ErrInvalid},
	})

	image := NewImageTarget(snap.Image(dev))
	image.SetObserver(irec.observe)
	iq := snapTargetQueue(t, image)
	deadline := time.Now().Add(30 * time.Second)
	for snap.Stats().ChunksStored < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	serveOne(t, iq, 0, ioDesc{opFlags: uint32(OpRead), nrSectors: 16, startSector: chunk / 512}) // the stored copy
	if got := iq.Buffer(0)[:8192]; !bytes.Equal(got, data[chunk:chunk+8192]) {
		t.Error("image read of the copied chunk did not return the data as of Take")
	}
	serveOne(t, iq, 1, ioDesc{opFlags: uint32(OpRead), nrSectors: 8, startSector: 4 * chunk / 512}) // never written
	wantSeen(t, "image", irec.seen, []observed{
		{op: engine.OpImageRead, bytes: 8192, source: engine.SourceDiff},
		{op: engine.OpImageRead, bytes: 4096, source: engine.SourceOriginal},
	})

	// Served with the observer, a request allocates nothing.
	var count int
	quiet := NewOriginTarget(dev)
	quiet.SetObserver(func(q *Queue, r *engine.Request, elapsed time.Duration) { count++ })
	qq := snapTargetQueue(t, quiet)
	read := ioDesc{opFlags: uint32(OpRead), nrSectors: 8, startSector: 8 * chunk / 512}
	if allocs := testing.AllocsPerRun(100, func() { serveOne(t, qq, 1, read) }); allocs != 0 {
		t.Errorf("%.1f allocations per observed request, want 0", allocs)
	}
	if count != 101 {
		t.Errorf("observer called %d times for 101 requests", count)
	}

	// Without an observer there is no per-tag clock.
	plain := NewOriginTarget(dev)
	pq := snapTargetQueue(t, plain)
	if sq := pq.TargetData().(*snapQueue); sq.start != nil {
		t.Error("a target without an observer keeps per-tag start times")
	}
	serveOne(t, pq, 0, read)
}

func wantSeen(t *testing.T, what string, got, want []observed) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: observed %d requests, want %d: %+v", what, len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.queue != 0 || g.op != w.op || g.bytes != w.bytes || g.source != w.source || g.copied != w.copied ||
			(w.err == nil) != (g.err == nil) || (w.err != nil && !errors.Is(g.err, w.err)) || g.elapsed <= 0 {
			t.Errorf("%s: request %d observed %+v, want %+v (a positive duration)", what, i, g, w)
		}
	}
}
