package engine

import (
	"bytes"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Take is a barrier over in-flight origin writes: a write in flight when
// Take starts completes before copy-on-write begins (wholly in the image);
// a write arriving while Take runs waits for it (wholly out); a write
// submitted after Take returns is copied first (out).
func TestTakeBarrier(t *testing.T) {
	const shift, chunk = 14, 1 << 14
	d, data := tuOrigin(t, "", 16*chunk, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
	img := s.Image(d)
	q1, q2, q3 := newAsyncQ(t, 1, 2*chunk), newAsyncQ(t, 1, 2*chunk), newAsyncQ(t, 1, 2*chunk)
	a, b, c := tuPattern(2*chunk, 2), tuPattern(2*chunk, 3), tuPattern(2*chunk, 4)

	// w1 is in flight (submitted, not yet polled) when Take starts.
	w1 := &Request{Op: OpOriginWrite, Device: d, Off: chunk / 2, Buf: q1.buf(0, 2*chunk)}
	copy(w1.Buf, a)
	if err := q1.q.Submit(w1); err != nil {
		t.Fatal(err)
	}
	takeErr := make(chan error, 1)
	go func() { takeErr <- s.Take() }()
	deadline := time.Now().Add(10 * time.Second)
	for !d.barrier.Load() {
		if time.Now().After(deadline) {
			t.Fatal("Take did not raise its barrier")
		}
		time.Sleep(100 * time.Microsecond)
	}
	// w2 arrives while Take waits for w1: it must wait for Take.
	w2 := &Request{Op: OpOriginWrite, Device: d, Off: 5*chunk + chunk/2, Buf: q2.buf(0, 2*chunk)}
	copy(w2.Buf, b)
	if err := q2.q.Submit(w2); err != nil {
		t.Fatal(err)
	}
	if w2.state != reqParked {
		t.Fatal("a write arriving during Take was not held")
	}
	time.Sleep(2 * time.Millisecond)
	select {
	case err := <-takeErr:
		t.Fatalf("Take returned (%v) with a write still in flight", err)
	default:
	}
	// Take waits for w1's completion to be reaped: poll it.
	for q1.q.InFlight() > 0 {
		if _, err := q1.q.Poll(q1.out, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-takeErr; err != nil {
		t.Fatal(err)
	}
	if w1.Err != nil || w1.Copied {
		t.Fatalf("w1: err %v copied %v: want completed before copy-on-write", w1.Err, w1.Copied)
	}
	for w2.q.InFlight() > 0 {
		if _, err := q2.q.Poll(q2.out, 1); err != nil {
			t.Fatal(err)
		}
	}
	if w2.Err != nil || !w2.Copied {
		t.Fatalf("w2: err %v copied %v: want copied after Take", w2.Err, w2.Copied)
	}
	// w3, after Take returned, over w1's range.
	w3 := &Request{Op: OpOriginWrite, Device: d, Off: chunk / 2, Buf: q3.buf(0, 2*chunk)}
	copy(w3.Buf, c)
	if err := q3.run(w3); err != nil || w3.Err != nil || !w3.Copied {
		t.Fatalf("w3: %v %v copied %v", err, w3.Err, w3.Copied)
	}

	want := append([]byte(nil), data...)
	copy(want[chunk/2:], a)
	tuMustEqual(t, "image (w1 in, w2 and w3 out)", tuRead(t, img, 0, len(want)), want, 0)
	copy(want[chunk/2:], c)
	copy(want[5*chunk+chunk/2:], b)
	tuMustEqual(t, "origin", tuRead(t, d, 0, len(want)), want, 0)
}

// The images of a snapshot's devices are consistent with each other: a
// writer writes sequence n to device A, waits for it, then writes n to
// device B. Whatever the timing of Take, image B never holds a newer
// sequence than image A, each image holds one whole write (never torn), at
// least the last one acknowledged before Take, and none begun after it.
func TestTakeConsistentAcrossDevices(t *testing.T) {
	const shift, chunk = 13, 1 << 13
	const sectors = 24 // 12 KiB, straddling a chunk boundary
	const off = chunk - 4*sectorSize
	dir := t.TempDir()
	a, _ := tuOrigin(t, dir, 8*chunk, 1)
	b, _ := tuOrigin(t, dir, 8*chunk, 2)
	stamp := func(seq uint64) []byte {
		buf := make([]byte, sectors*sectorSize)
		rng := rand.New(rand.NewSource(int64(seq)))
		for i := 0; i < sectors; i++ {
			stampSector(buf[i*sectorSize:], seq, uint64(off/sectorSize+i), rng)
		}
		return buf
	}
	for _, d := range []*Device{a, b} {
		if _, err := d.WriteAt(stamp(0), off); err != nil {
			t.Fatal(err)
		}
	}
	imageSeq := func(img *Image) uint64 {
		t.Helper()
		got := tuRead(t, img, off, sectors*sectorSize)
		var seq uint64
		for i := 0; i < sectors; i++ {
			sq, err := checkSector(got[i*sectorSize:], uint64(off/sectorSize+i))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && sq != seq {
				t.Fatalf("torn write in the image: sector %d has seq %d, sector 0 has %d", i, sq, seq)
			}
			seq = sq
		}
		return seq
	}
	rng := rand.New(rand.NewSource(5))
	var begun, ackedA, ackedB atomic.Uint64 // sequence numbers rise across iterations
	for iter := 0; iter < 12; iter++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var werr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := begun.Load() + 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				begun.Store(seq)
				buf := stamp(seq)
				if _, err := a.WriteAt(buf, off); err != nil {
					werr = err
					return
				}
				ackedA.Store(seq)
				if _, err := b.WriteAt(buf, off); err != nil {
					werr = err
					return
				}
				ackedB.Store(seq)
			}
		}()
		s, err := NewSnapshot([]*Device{a, b}, StorageConfig{Path: dir, Limit: 1 << 30}, tuOpts(shift, 2))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(3000)) * time.Microsecond)
		lowA, lowB := ackedA.Load(), ackedB.Load()
		if err := s.Take(); err != nil {
			t.Fatal(err)
		}
		high := begun.Load()
		time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
		close(stop)
		wg.Wait()
		if werr != nil {
			t.Fatal(werr)
		}
		seqA, seqB := imageSeq(s.Image(a)), imageSeq(s.Image(b))
		if seqA < lowA || seqB < lowB || seqA > high || seqB > high || seqB > seqA {
			t.Fatalf("iteration %d: image A seq %d, image B seq %d; acknowledged before take A %d, B %d; begun by its end %d",
				iter, seqA, seqB, lowA, lowB, high)
		}
		tuDestroy(t, s)
	}
}

// A write acknowledged before Take is in the image; a write submitted after
// Take returns is not, on every device, through the synchronous API.
func TestTakeSimple(t *testing.T) {
	const shift, chunk = 12, 1 << 12
	dir := t.TempDir()
	a, dataA := tuOrigin(t, dir, 66*chunk+512, 1)
	b, dataB := tuOrigin(t, dir, 3*chunk, 2)
	s := tuSnap(t, []*Device{a, b}, StorageConfig{}, tuOpts(shift, 2))
	before := tuPattern(2*chunk, 3)
	if _, err := a.WriteAt(before, 63*chunk-chunk/2); err != nil {
		t.Fatal(err)
	}
	copy(dataA[63*chunk-chunk/2:], before)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	after := tuPattern(chunk+512, 4)
	if _, err := a.WriteAt(after, 63*chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(after[:chunk], chunk/2); err != nil {
		t.Fatal(err)
	}
	tuMustEqual(t, "image A", tuRead(t, s.Image(a), 0, len(dataA)), dataA, 0)
	tuMustEqual(t, "image B", tuRead(t, s.Image(b), 0, len(dataB)), dataB, 0)
	if !bytes.Equal(tuRead(t, a, 63*chunk, len(after)), after) {
		t.Fatal("origin A lost the write after take")
	}
}
