package engine

import (
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestDestroyWhileIOInFlight destroys a two-device snapshot while origin
// writers, image readers and an image writer run on their own queues with
// several requests in flight. Every request completes: origin I/O always
// succeeds; image I/O succeeds with the right data or fails with ErrClosed,
// and always fails with ErrClosed once Destroy has returned. The snapshot
// then releases everything (Done), the origins hold every write, and no
// goroutine or file descriptor is left behind.
func TestDestroyWhileIOInFlight(t *testing.T) {
	const (
		shift, chunk = 14, 1 << 14
		zoneBytes    = 20 << 10
		writers      = 3
		readers      = 3
		depth        = 4
		maxIO        = 2 * chunk
	)
	dir := t.TempDir()
	// Warm the synchronous API's queue pool, so the descriptors it keeps
	// are counted in before.
	warm, _ := tuOrigin(t, dir, 4096, 99)
	tuRead(t, warm, 0, 4096)
	fdsBefore := tuFDs(t)

	var devs []*concDev
	var ds []*Device
	for i, size := range []int64{2 << 20, 1<<20 + 1024} {
		d, data := tuOrigin(t, dir, size, int64(i+1))
		devs = append(devs, &concDev{d: d, img: nil, atTake: data, origin: append([]byte(nil), data...)})
		ds = append(ds, d)
	}
	s, err := NewSnapshot(ds, StorageConfig{Path: dir, Limit: 1 << 30}, tuOpts(shift, 3))
	if err != nil {
		t.Fatal(err)
	}
	imgW, zones := concTake(t, s, devs, 8*chunk, zoneBytes)

	var destroyed atomic.Bool // set once Destroy has returned
	var ops, imageOK, imageClosed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, writers+readers+1)
	for w := 0; w < writers; w++ {
		var mine []concZone
		for i := w; i < len(zones); i += writers {
			mine = append(mine, zones[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- destroyOriginWriter(mine, depth, maxIO, int64(w), stop, &ops)
		}()
	}
	for rd := 0; rd < readers; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- destroyImageIO(devs, imgW, depth, maxIO, int64(rd), rd == 0, stop, &destroyed, &ops, &imageOK, &imageClosed)
		}()
	}

	waitOps := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for ops.Load() < n && time.Now().Before(deadline) && len(errc) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitOps(300)
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	destroyed.Store(true)
	waitOps(ops.Load() + 300)
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("snapshot not released after Destroy and every request completed")
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if imageOK.Load() == 0 || imageClosed.Load() == 0 {
		t.Fatalf("image requests: %d succeeded, %d closed: Destroy did not land amid I/O", imageOK.Load(), imageClosed.Load())
	}
	for i, cd := range devs {
		tuMustEqual(t, fmt.Sprintf("origin %d", i), tuRead(t, cd.d, 0, int(cd.d.Size())), cd.origin, 0)
		if err := cd.d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := warm.Close(); err != nil {
		t.Fatal(err)
	}
	if after := tuFDs(t); after != fdsBefore-1 { // warm was open in before
		t.Fatalf("%d file descriptors open, %d before: leaked", after, fdsBefore-1)
	}
	goleak.VerifyNone(t)
}

// destroyOriginWriter writes its zones until stop; every origin write must
// succeed, before, during and after Destroy.
func destroyOriginWriter(zones []concZone, depth, maxIO int, seed int64, stop <-chan struct{}, ops *atomic.Int64) error {
	q, err := NewQueue(depth)
	if err != nil {
		return err
	}
	defer q.Close()
	arena, err := newBounce(depth * maxIO)
	if err != nil {
		return err
	}
	defer arena.Close()
	rng := rand.New(rand.NewSource(seed))
	reqs := make([]Request, depth)
	out := make([]*Request, depth)
	busy := make([]bool, len(zones))
	zoneOf := make([]int, depth)
	var free []int
	for i := 0; i < depth; i++ {
		free = append(free, i)
	}
	stopping := false
	var first error
	for {
		select {
		case <-stop:
			stopping = true
		default:
		}
		for !stopping && len(free) > 0 {
			zi := rng.Intn(len(zones))
			if busy[zi] {
				break
			}
			z := zones[zi]
			n := (1 + rng.Int63n(min(int64(maxIO), z.len)/512)) * 512
			off := z.off + rng.Int63n((z.len-n)/512+1)*512
			slot := free[len(free)-1]
			free = free[:len(free)-1]
			r := &reqs[slot]
			*r = Request{Op: OpOriginWrite, Device: z.dev.d, Off: off, Buf: arena.Slice(slot*maxIO, int(n)), UserData: uint64(slot)}
			rng.Read(r.Buf)
			if err := q.Submit(r); err != nil {
				return err
			}
			busy[zi], zoneOf[slot] = true, zi
		}
		if q.InFlight() == 0 {
			if stopping {
				return first
			}
			continue
		}
		n, err := q.Poll(out, 1)
		if err != nil {
			return err
		}
		for _, r := range out[:n] {
			slot := int(r.UserData)
			if r.Err != nil && first == nil {
				first = fmt.Errorf("origin write at %d+%d across Destroy: %w", r.Off, len(r.Buf), r.Err)
				stopping = true
			}
			if r.Err == nil {
				copy(zones[zoneOf[slot]].dev.origin[r.Off:], r.Buf)
			}
			busy[zoneOf[slot]] = false
			free = append(free, slot)
			ops.Add(1)
		}
	}
}

// destroyImageIO reads random image ranges (and, for the first goroutine,
// writes its own range and reads it back) in batches until stop.
func destroyImageIO(devs []*concDev, imgW concZone, depth, maxIO int, seed int64, writer bool, stop <-chan struct{}, destroyed *atomic.Bool, ops, ok, closed *atomic.Int64) error {
	q, err := NewQueue(depth)
	if err != nil {
		return err
	}
	defer q.Close()
	arena, err := newBounce(depth * maxIO)
	if err != nil {
		return err
	}
	defer arena.Close()
	rng := rand.New(rand.NewSource(seed + 500))
	reqs := make([]Request, depth)
	out := make([]*Request, depth)
	devOf := make([]*concDev, depth)
	after := make([]bool, depth)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n := 1 + rng.Intn(depth)
		for i := 0; i < n; i++ {
			r := &reqs[i]
			if writer && i == 0 {
				ln := (1 + rng.Int63n(int64(maxIO)/512)) * 512
				off := imgW.off + rng.Int63n((imgW.len-ln)/512+1)*512
				*r = Request{Op: OpImageWrite, Image: imgW.dev.img, Off: off, Buf: arena.Slice(0, int(ln))}
				rng.Read(r.Buf)
				devOf[i] = imgW.dev
			} else {
				cd := devs[rng.Intn(len(devs))]
				var off, ln int64
				for {
					ln = (1 + rng.Int63n(int64(maxIO)/512)) * 512
					off = rng.Int63n((cd.d.Size()-ln)/512+1) * 512
					if cd != imgW.dev || off >= imgW.off+imgW.len {
						break
					}
				}
				*r = Request{Op: OpImageRead, Image: cd.img, Off: off, Buf: arena.Slice(i*maxIO, int(ln))}
				devOf[i] = cd
			}
			after[i] = destroyed.Load()
			if err := q.Submit(r); err != nil {
				return err
			}
		}
		for done := 0; done < n; {
			m, err := q.Poll(out, 1)
			if err != nil {
				return err
			}
			done += m
		}
		for i := 0; i < n; i++ {
			r := &reqs[i]
			ops.Add(1)
			switch {
			case errors.Is(r.Err, ErrClosed):
				closed.Add(1)
			case r.Err != nil:
				return fmt.Errorf("%s at %d+%d across Destroy: %w", r.Op, r.Off, len(r.Buf), r.Err)
			case after[i]:
				return fmt.Errorf("%s at %d submitted after Destroy returned succeeded", r.Op, r.Off)
			case r.Op == OpImageRead:
				ok.Add(1)
				if err := concSame(devOf[i].atTake[r.Off:r.Off+int64(len(r.Buf))], r.Buf, r.Off); err != nil {
					return fmt.Errorf("image read across Destroy returned wrong data: %w", err)
				}
			default:
				ok.Add(1)
			}
		}
	}
}
