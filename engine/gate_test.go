package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/snapring/snapring/uring"
)

// TestReadGate: while an origin write waits for a chunk buffer, image reads
// beyond minAdmittedReads wait at the gate and get their data once the
// pressure is gone; with it gone they run at once.
func TestReadGate(t *testing.T) {
	const shift = 16
	d, data := tuOrigin(t, "", 1<<20, 1)
	s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	arena, err := uring.NewArena(4 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer arena.Close()
	q, err := NewQueue(8)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	reqs := make([]Request, 4)
	submit := func() {
		for i := range reqs {
			reqs[i] = Request{Op: OpImageRead, Image: img, Off: int64(i) << shift, Buf: arena.Slice(i<<shift, 1<<shift)}
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	out := make([]*Request, 4)
	check := func() {
		for i := range reqs {
			if reqs[i].Err != nil || !bytes.Equal(reqs[i].Buf, data[i<<shift:(i+1)<<shift]) {
				t.Fatalf("read %d: %v, or wrong data", i, reqs[i].Err)
			}
		}
	}

	// Pressure: an origin write waits for a buffer (as getBuffer counts it).
	// The reads then run minAdmittedReads at a time, in order.
	s.gate.cowWaiting.Add(1)
	submit()
	if w := s.gate.waiting.Load(); w != int64(len(reqs)-minAdmittedReads) {
		t.Fatalf("%d reads wait at the gate while a writer waits for a buffer; want %d", w, len(reqs)-minAdmittedReads)
	}
	for got := 0; got < len(reqs); {
		if a := s.gate.admitted.Load(); a > minAdmittedReads {
			t.Fatalf("%d reads admitted at once under pressure; want at most %d", a, minAdmittedReads)
		}
		n, err := q.PollTimeout(out, 1, 5*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("reads stuck at the gate under pressure: %d done, %v", got, err)
		}
		got += n
	}
	check()
	s.gate.cowWaiting.Add(-1)

	// No pressure: every read runs at once.
	submit()
	if w := s.gate.waiting.Load(); w != 0 {
		t.Fatalf("%d reads wait at the gate without pressure", w)
	}
	for got := 0; got < len(reqs); {
		n, err := q.PollTimeout(out, 1, 5*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("%d of %d reads completed without pressure: %v", got, len(reqs), err)
		}
		got += n
	}
	check()
	if a := s.gate.admitted.Load(); a != 0 {
		t.Fatalf("%d reads still counted as admitted", a)
	}
}

// TestImageReadThrottle: with ImageReadBytesPerSecond set, reading the
// image takes at least as long as the rate allows (a lower bound only,
// which a slow machine cannot break), and the data is right.
func TestImageReadThrottle(t *testing.T) {
	const (
		shift = 16
		size  = 8 << 20
		rate  = 8 << 20 // bytes per second: the image in about 1 s past the burst
	)
	d, data := tuOrigin(t, "", size, 2)
	opts := tuOpts(shift, 4)
	opts.ImageReadBytesPerSecond = rate
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	img := s.Image(d)
	start := time.Now()
	buf := make([]byte, size)
	for off := 0; off < size; off += 1 << 20 {
		if _, err := img.ReadAt(buf[off:off+1<<20], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if !bytes.Equal(buf, data) {
		t.Fatal("throttled reads returned wrong data")
	}
	burst := float64(s.gate.burst())
	if least := time.Duration((float64(size) - burst - 1<<20) / rate * float64(time.Second)); took < least {
		t.Fatalf("%d bytes at %d bytes/s took %v; the throttle allows no less than %v", size, rate, took, least)
	}
}

// TestFanOutYieldsToWriter: large image reads fan out to io-wq workers only
// when no origin write came within writerQuiet; with writer priority off
// they always may.
func TestFanOutYieldsToWriter(t *testing.T) {
	for _, priority := range []bool{true, false} {
		d, _ := tuOrigin(t, "", 1<<20, 2)
		opts := tuOpts(16, 4)
		opts.NoWriterPriority = !priority
		s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
		if err := s.Take(); err != nil {
			t.Fatal(err)
		}
		q, err := NewQueue(1)
		if err != nil {
			t.Fatal(err)
		}
		if !q.fanOut(s.gate) {
			t.Errorf("priority %v: no fan-out before any origin write", priority)
		}
		if _, err := d.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Fatal(err)
		}
		if got := q.fanOut(s.gate); got != !priority {
			t.Errorf("priority %v: fan-out right after an origin write: %v", priority, got)
		}
		time.Sleep(writerQuiet + 10*time.Millisecond)
		if !q.fanOut(s.gate) {
			t.Errorf("priority %v: no fan-out %v after the last origin write", priority, writerQuiet)
		}
		// A write long before the reader's next look (a backup started
		// after the application stopped) does not hold it back.
		if _, err := d.WriteAt(make([]byte, 4096), 8192); err != nil {
			t.Fatal(err)
		}
		time.Sleep(writerQuiet + 10*time.Millisecond)
		if !q.fanOut(s.gate) {
			t.Errorf("priority %v: no fan-out on the first look after a write long past", priority)
		}
		q.Close()
	}
}
