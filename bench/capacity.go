package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/uring"
)

// cowCapacityBlockBytes is the size of the first writes that measure the
// copy-on-write capacity: small, so that the copy is the work.
const cowCapacityBlockBytes = 4096

// cowCapacity measures how many chunks per second the engine copies with
// nothing else running: on a snapshot of its own, first writes of 4 KiB to
// one fresh chunk after another of the first origin-write workload's device,
// closed loop at that workload's queue depth, for the given time or until
// every chunk was copied. The device's bytes at those offsets change (they
// are the run's own temp file or the device the user named to write to).
func cowCapacity(ctx context.Context, cfg RunConfig, pdevs []preparedDevice, d time.Duration) (float64, error) {
	sc := cfg.Scenario
	w := firstOriginWrite(sc)
	if w == nil {
		return 0, nil
	}
	var pd preparedDevice
	for _, p := range pdevs {
		if p.name == w.Device {
			pd = p
		}
	}
	dev, err := engine.OpenDevice(pd.path)
	if err != nil {
		return 0, fmt.Errorf("%w: copy-on-write capacity: device %s: %v", ErrRun, pd.name, err)
	}
	defer dev.Close()
	storage, path, err := storageConfig(cfg)
	if err != nil {
		return 0, err
	}
	opts := engineOptions(sc)
	snap, err := engine.NewSnapshot([]*engine.Device{dev}, storage, opts)
	if err != nil {
		return 0, fmt.Errorf("%w: copy-on-write capacity: %v", ErrRun, err)
	}
	if path != "" {
		defer os.Remove(path)
	}
	defer func() {
		snap.Destroy()
		<-snap.Done()
	}()
	if err := snap.Take(); err != nil {
		return 0, err
	}
	opts.EnsureDefaults()
	shift, err := opts.ChunkShift(pd.size, 512)
	if err != nil {
		return 0, err
	}
	return firstWriteLoop(ctx, dev, int64(1)<<shift, pd.size, w.QueueDepth, d)
}

func firstOriginWrite(sc *scenarios.Scenario) *scenarios.Workload {
	for i := range sc.Workloads {
		if sc.Workloads[i].Kind == scenarios.OriginWrite {
			return &sc.Workloads[i]
		}
	}
	return nil
}

// firstWriteLoop keeps qd first writes in flight, one per chunk in order,
// and returns the copies completed per second.
func firstWriteLoop(ctx context.Context, dev *engine.Device, chunk, size int64, qd int, d time.Duration) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := newEngineTarget(qd, dev, nil, 0)
	if err != nil {
		return 0, err
	}
	defer t.close()
	arena, err := uring.NewArena(qd * cowCapacityBlockBytes)
	if err != nil {
		return 0, err
	}
	defer arena.Close()
	out := make([]completion, qd)
	var next, copied int64
	inflight := 0
	start := time.Now()
	deadline := start.Add(d)
	free := make([]int, 0, qd)
	for i := qd - 1; i >= 0; i-- {
		free = append(free, i)
	}
	for {
		stop := ctx.Err() != nil || !time.Now().Before(deadline)
		for !stop && len(free) > 0 && next*chunk < size {
			slot := free[len(free)-1]
			free = free[:len(free)-1]
			if err := t.submit(slot, ioOriginWrite, next*chunk, arena.Slice(slot*cowCapacityBlockBytes, cowCapacityBlockBytes)); err != nil {
				return 0, err
			}
			next++
			inflight++
		}
		if inflight == 0 {
			break
		}
		n, err := t.poll(out, 1, 0)
		if err != nil {
			return 0, err
		}
		for _, c := range out[:n] {
			free = append(free, c.slot)
			inflight--
			if c.err != nil && !errors.Is(c.err, engine.ErrCorrupted) {
				return 0, fmt.Errorf("bench: copy-on-write capacity: %w", c.err)
			}
			if c.class == results.OriginWriteCoW {
				copied++
			}
		}
	}
	return float64(copied) / time.Since(start).Seconds(), nil
}

// cowUse is the measured part's copies per second (between the first and
// the last counter sample in it) against the capacity.
func cowUse(capacity float64, side *results.Side) *results.CowUse {
	u := &results.CowUse{CapacityChunksPerSecond: capacity}
	var first, last *results.CounterPoint
	for i := range side.CounterSeries {
		p := &side.CounterSeries[i]
		if p.Offset < 0 {
			continue
		}
		if first == nil {
			first = p
		}
		last = p
	}
	if first != nil && last.Offset > first.Offset {
		copied := last.Values[results.CounterChunksCopied] - first.Values[results.CounterChunksCopied]
		u.MeasuredChunksPerSecond = float64(copied) / (last.Offset - first.Offset).Seconds()
	}
	return u
}
