package engine

import (
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// concDev is a device under concurrent load, with what its image must hold
// (as of take, plus the image writer's writes) and the origin zones' last
// writes.
type concDev struct {
	d      *Device
	img    *Image
	atTake []byte
	origin []byte // updated by each zone's owner only
	image  []byte // updated by the image writer only (its range)
}

// zone is a byte range of one device owned by one goroutine.
type concZone struct {
	dev      *concDev
	off, len int64
}

// TestConcurrentOriginWritesImageReads runs writer goroutines (each with its
// own Queue and several writes in flight, on zones that straddle chunk
// boundaries so that neighbours contend for the same chunks) beside image
// readers (own queues, and the synchronous API) and an image writer, on two
// devices of one snapshot. Every image read must return the data as of take
// (or the image writer's data, in its range); at the end the images and the
// origins are verified whole. Run with -race.
func TestConcurrentOriginWritesImageReads(t *testing.T) {
	const (
		shift, chunk = 14, 1 << 14
		zoneBytes    = 24 << 10 // 1.5 chunks
		writers      = 4
		readers      = 3
		depth        = 4
		maxIO        = 3 * chunk
		writesEach   = 150
	)
	dir := t.TempDir()
	var devs []*concDev
	var ds []*Device
	for i, size := range []int64{3 << 20, 2<<20 + 1536} {
		d, data := tuOrigin(t, dir, size, int64(i+1))
		devs = append(devs, &concDev{d: d, atTake: data, origin: append([]byte(nil), data...)})
		ds = append(ds, d)
	}
	opts := tuOpts(shift, 4)
	opts.StoreWorkers = 2
	s := tuSnap(t, ds, StorageConfig{}, opts)
	// The image writer owns the first 16 chunks of device 1's image.
	imgW, zones := concTake(t, s, devs, 16*chunk, zoneBytes)

	var wg sync.WaitGroup
	var writersLeft atomic.Int32
	writersLeft.Store(writers)
	errc := make(chan error, writers+readers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer writersLeft.Add(-1)
			var mine []concZone
			for i := w; i < len(zones); i += writers {
				mine = append(mine, zones[i])
			}
			errc <- concWriter(t, mine, depth, maxIO, writesEach, int64(w))
		}()
	}
	for rd := 0; rd < readers; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- concReader(t, devs, imgW, depth, maxIO, int64(rd), rd == 0, &writersLeft)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- concImageWriter(t, imgW, maxIO, &writersLeft)
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitStored(t, s)
	for i, cd := range devs {
		tuMustEqual(t, fmt.Sprintf("image %d", i), tuRead(t, cd.img, 0, int(cd.d.Size())), cd.image, 0)
		tuMustEqual(t, fmt.Sprintf("origin %d", i), tuRead(t, cd.d, 0, int(cd.d.Size())), cd.origin, 0)
	}
	if st := s.Stats(); st.Corrupted || st.ChunksCopied == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// concWriter writes random extents of its zones, at most one write in
// flight per zone, recording each completed write in the device's origin.
func concWriter(t testing.TB, zones []concZone, depth, maxIO, writes int, seed int64) error {
	aq := newAsyncQ(t, depth, maxIO)
	rng := rand.New(rand.NewSource(seed))
	busy := make([]bool, len(zones))
	zoneOf := make([]int, depth)
	data := make([][]byte, depth)
	free := []int{}
	for i := 0; i < depth; i++ {
		free = append(free, i)
	}
	submitted := 0
	for submitted < writes || aq.q.InFlight() > 0 {
		for submitted < writes && len(free) > 0 {
			zi := rng.Intn(len(zones))
			if busy[zi] {
				break
			}
			z := zones[zi]
			n := (1 + rng.Int63n(min(int64(maxIO), z.len)/512)) * 512
			off := z.off + rng.Int63n((z.len-n)/512+1)*512
			slot := free[len(free)-1]
			free = free[:len(free)-1]
			r := &aq.reqs[slot]
			*r = Request{Device: z.dev.d, Off: off, UserData: uint64(slot)}
			switch rng.Intn(8) {
			case 0:
				r.Op, r.Len = OpOriginDiscard, n
				data[slot] = make([]byte, n)
			default:
				r.Op, r.Buf = OpOriginWrite, aq.buf(slot, int(n))
				rng.Read(r.Buf)
				data[slot] = append(data[slot][:0], r.Buf...)
			}
			if err := aq.q.Submit(r); err != nil {
				return err
			}
			busy[zi], zoneOf[slot] = true, zi
			submitted++
		}
		n, err := aq.q.Poll(aq.out, 1)
		if err != nil {
			return err
		}
		for _, r := range aq.out[:n] {
			slot := int(r.UserData)
			if r.Err != nil {
				return fmt.Errorf("%s at %d+%d: %w", r.Op, r.Off, r.length(), r.Err)
			}
			copy(zones[zoneOf[slot]].dev.origin[r.Off:], data[slot])
			busy[zoneOf[slot]] = false
			free = append(free, slot)
		}
	}
	return nil
}

// concReader reads random image extents (outside the image writer's range)
// until the writers are done, checking each against the data as of take.
func concReader(t testing.TB, devs []*concDev, imgW concZone, depth, maxIO int, seed int64, useSync bool, writersLeft *atomic.Int32) error {
	rng := rand.New(rand.NewSource(seed + 1000))
	pick := func() (*concDev, int64, int64) {
		for {
			cd := devs[rng.Intn(len(devs))]
			n := (1 + rng.Int63n(int64(maxIO)/512)) * 512
			if n > cd.d.Size() {
				continue
			}
			off := rng.Int63n((cd.d.Size()-n)/512+1) * 512
			if cd == imgW.dev && off < imgW.off+imgW.len && imgW.off < off+n {
				continue
			}
			return cd, off, n
		}
	}
	reads := 0
	if useSync {
		buf := make([]byte, maxIO)
		for writersLeft.Load() > 0 || reads < 20 {
			cd, off, n := pick()
			if _, err := cd.img.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("image ReadAt %d+%d: %w", off, n, err)
			}
			if err := concSame(cd.atTake[off:off+n], buf[:n], off); err != nil {
				return err
			}
			reads++
		}
		return nil
	}
	aq := newAsyncQ(t, depth, maxIO)
	devOf := make([]*concDev, depth)
	for writersLeft.Load() > 0 || reads < 20 {
		reqs := make([]*Request, 0, depth)
		for slot := 0; slot < 1+rng.Intn(depth); slot++ {
			cd, off, n := pick()
			r := &aq.reqs[slot]
			*r = Request{Op: OpImageRead, Image: cd.img, Off: off, Buf: aq.buf(slot, int(n))}
			devOf[slot] = cd
			reqs = append(reqs, r)
		}
		if err := aq.run(reqs...); err != nil {
			return err
		}
		for slot, r := range reqs {
			if r.Err != nil {
				return fmt.Errorf("image read %d+%d: %w", r.Off, len(r.Buf), r.Err)
			}
			if err := concSame(devOf[slot].atTake[r.Off:r.Off+int64(len(r.Buf))], r.Buf, r.Off); err != nil {
				return err
			}
			reads++
		}
	}
	return nil
}

// concImageWriter writes and reads back its own range of one image.
func concImageWriter(t testing.TB, z concZone, maxIO int, writersLeft *atomic.Int32) error {
	rng := rand.New(rand.NewSource(77))
	aq := newAsyncQ(t, 2, maxIO)
	for i := 0; writersLeft.Load() > 0 || i < 20; i++ {
		n := (1 + rng.Int63n(int64(maxIO)/512)) * 512
		off := z.off + rng.Int63n((z.len-n)/512+1)*512
		w := &aq.reqs[0]
		*w = Request{Op: OpImageWrite, Image: z.dev.img, Off: off, Buf: aq.buf(0, int(n))}
		rng.Read(w.Buf)
		if err := aq.run(w); err != nil {
			return err
		}
		if w.Err != nil {
			return fmt.Errorf("image write %d+%d: %w", off, n, w.Err)
		}
		copy(z.dev.image[off:], w.Buf)
		r := &aq.reqs[1]
		*r = Request{Op: OpImageRead, Image: z.dev.img, Off: z.off, Buf: aq.buf(1, int(min(z.len, int64(maxIO))))}
		if err := aq.run(r); err != nil {
			return err
		}
		if r.Err != nil {
			return fmt.Errorf("image read back: %w", r.Err)
		}
		if err := concSame(z.dev.image[z.off:z.off+int64(len(r.Buf))], r.Buf, z.off); err != nil {
			return fmt.Errorf("image writer's range: %w", err)
		}
	}
	return nil
}

var errConcDiff = errors.New("image differs from the snapshot")

func concSame(want, got []byte, base int64) error {
	for i := range want {
		if want[i] != got[i] {
			return fmt.Errorf("%w at offset %d: got %#x, want %#x", errConcDiff, base+int64(i), got[i], want[i])
		}
	}
	return nil
}

// An image read of a chunk that was never copied reads the original; until
// it completes, an origin write to that chunk must wait (its copy-on-write
// is held off), or the read would see the new data. The read is submitted
// (its I/O not yet reaped) before the write, which runs on another queue
// polled by another goroutine.
func TestImageReadHoldsOffCOW(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 8*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	q1, q2 := newAsyncQ(t, 1, chunk), newAsyncQ(t, 1, chunk)
	rd := &Request{Op: OpImageRead, Image: img, Off: 3 * chunk, Buf: q1.buf(0, chunk)}
	if err := q1.q.Submit(rd); err != nil {
		t.Fatal(err)
	}
	w := &Request{Op: OpOriginWrite, Device: d, Off: 3*chunk + 4096, Buf: q2.buf(0, 8192)}
	copy(w.Buf, tuPattern(8192, 2))
	done := make(chan error, 1)
	go func() { done <- q2.run(w) }()
	select {
	case err := <-done:
		t.Fatalf("the origin write completed (%v, err %v) while an image read of its chunk was in flight", err, w.Err)
	case <-time.After(20 * time.Millisecond):
	}
	for q1.q.InFlight() > 0 {
		if _, err := q1.q.Poll(q1.out, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil || w.Err != nil || !w.Copied {
		t.Fatalf("origin write: %v %v copied %v", err, w.Err, w.Copied)
	}
	if rd.Err != nil || rd.Source != SourceOriginal {
		t.Fatalf("image read: %v, source %v", rd.Err, rd.Source)
	}
	tuMustEqual(t, "image read racing an origin write", rd.Buf, data[3*chunk:4*chunk], 3*chunk)
	tuMustEqual(t, "image", tuRead(t, img, 0, len(data)), data, 0)
}

// concTake takes the snapshot, points each device at its image (expected to
// read as at take), and cuts the devices into writer zones; the image
// writer gets the first imgBytes of the second device.
func concTake(t *testing.T, s *Snapshot, devs []*concDev, imgBytes, zoneBytes int64) (concZone, []concZone) {
	t.Helper()
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	for _, cd := range devs {
		cd.img = s.Image(cd.d)
		cd.image = append([]byte(nil), cd.atTake...)
	}
	var zones []concZone
	for _, cd := range devs {
		for off := int64(0); off < cd.d.Size(); off += zoneBytes {
			zones = append(zones, concZone{dev: cd, off: off, len: min(zoneBytes, cd.d.Size()-off)})
		}
	}
	return concZone{dev: devs[1], off: 0, len: imgBytes}, zones
}
