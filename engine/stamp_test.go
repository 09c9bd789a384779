package engine

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sector stamps, after blksnap's "corrupt" test: every 512-byte sector
// carries a magic, the CRC32 of the rest, the sequence number of the write
// that wrote it, its own sector number, the time, and a random body.
const (
	stampMagic = 0x534e4150 // "SNAP"
	sectorSize = 512
)

func stampSector(b []byte, seq, sector uint64, rng *rand.Rand) {
	binary.LittleEndian.PutUint32(b[0:], stampMagic)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], sector)
	binary.LittleEndian.PutUint64(b[24:], uint64(time.Now().UnixNano()))
	rng.Read(b[32:sectorSize])
	binary.LittleEndian.PutUint32(b[4:], crc32.ChecksumIEEE(b[8:sectorSize]))
}

// checkSector returns the sequence number of a valid stamp of sector.
func checkSector(b []byte, sector uint64) (uint64, error) {
	switch {
	case binary.LittleEndian.Uint32(b[0:]) != stampMagic:
		return 0, fmt.Errorf("sector %d: bad magic %#x", sector, binary.LittleEndian.Uint32(b[0:]))
	case binary.LittleEndian.Uint32(b[4:]) != crc32.ChecksumIEEE(b[8:sectorSize]):
		return 0, fmt.Errorf("sector %d: bad CRC (torn or foreign data), seq field %d", sector, binary.LittleEndian.Uint64(b[8:]))
	case binary.LittleEndian.Uint64(b[16:]) != sector:
		return 0, fmt.Errorf("sector %d: stamped for sector %d (misplaced data)", sector, binary.LittleEndian.Uint64(b[16:]))
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}

// stampedFile writes a file of n sectors stamped with sequence 0.
func stampedFile(t testing.TB, dir string, sectors int) string {
	t.Helper()
	b := make([]byte, sectors*sectorSize)
	rng := rand.New(rand.NewSource(1))
	for s := 0; s < sectors; s++ {
		stampSector(b[s*sectorSize:], 0, uint64(s), rng)
	}
	path := filepath.Join(dir, fmt.Sprintf("stamped-%d", tuFileSeq.Add(1)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stampWrite is one logged write: its sequence number and sector extent.
type stampWrite struct {
	seq          uint64
	start, count int64
}

// stampZone is a range of sectors owned by one writer goroutine, which
// keeps at most one write in flight in it: the zone's content is always
// the result of a prefix of its log.
type stampZone struct {
	start, count int64
	log          []stampWrite // appended by the owner before each submit
	submitted    atomic.Int64 // writes started (before Submit)
	acked        atomic.Int64 // writes completed successfully
}

// TestSectorStamps runs writer goroutines that rewrite random extents (1–64
// sectors, across chunk boundaries) with rising sequence numbers, each on
// its own queue with several writes in flight, and takes the snapshot while
// they run. The image must then be a consistent cut:
//
//   - every sector has the magic, a valid CRC and its own sector number;
//   - no sector carries a sequence number drawn after Take returned;
//   - each zone (one writer, one write in flight at a time) holds exactly
//     the state after k of its writes, for k between the writes acknowledged
//     before Take was called and those submitted before it returned: every
//     acknowledged write is in, none submitted after is, and none is torn;
//   - the image read while the writers run equals the image read after.
//
// After the run every origin sector is valid and each zone holds the state
// after all its writes.
func TestSectorStamps(t *testing.T) {
	const (
		sectors     = 8192 // 4 MiB
		zoneSectors = 100  // zones end mid-chunk, so neighbours share chunks
		writers     = 4
		depth       = 4
		maxExtent   = 64
	)
	dir := t.TempDir()
	d, err := OpenDevice(stampedFile(t, dir, sectors))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	opts := tuOpts(14, 4) // 16 KiB chunks: 32 sectors
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	img := s.Image(d)

	var zones []*stampZone
	for z := int64(0); z*zoneSectors < sectors; z++ {
		zones = append(zones, &stampZone{start: z * zoneSectors, count: min(zoneSectors, sectors-z*zoneSectors)})
	}
	var seq atomic.Uint64
	var ackedTotal atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stampWriter(t, d, zones, w, writers, depth, maxExtent, &seq, &ackedTotal, stop); err != nil {
				errs <- err
			}
		}()
	}

	// Take once the writers are well under way, and let them go on after.
	waitAcked := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for ackedTotal.Load() < n && time.Now().Before(deadline) && len(errs) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	waitAcked(100)
	ackedLow := make([]int64, len(zones))
	for i, z := range zones {
		ackedLow[i] = z.acked.Load()
	}
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	seqBound := seq.Load() // every sequence number drawn before Take returned
	submittedHigh := make([]int64, len(zones))
	for i, z := range zones {
		submittedHigh[i] = z.submitted.Load()
	}

	// Read the image while the writers keep writing.
	during := make([]byte, sectors*sectorSize)
	if _, err := img.ReadAt(during, 0); err != nil {
		t.Fatalf("image read during writes: %v", err)
	}
	waitAcked(ackedTotal.Load() + 200)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitStored(t, s)
	after := tuRead(t, img, 0, sectors*sectorSize)
	tuMustEqual(t, "image read during writes vs after", during, after, 0)

	var total int64
	for _, z := range zones {
		total += int64(len(z.log))
	}
	if total < 300 || seq.Load() <= seqBound+100 {
		t.Fatalf("only %d writes (%d after take): the writers did not overlap the take", total, seq.Load()-seqBound)
	}
	if st := s.Stats(); st.ChunksCopied == 0 || st.Corrupted {
		t.Fatalf("stats %+v", st)
	}

	imgSeq := make([]uint64, sectors)
	for sct := 0; sct < sectors; sct++ {
		sq, err := checkSector(after[sct*sectorSize:], uint64(sct))
		if err != nil {
			t.Fatalf("image: %v", err)
		}
		if sq > seqBound {
			t.Fatalf("image sector %d has sequence %d, drawn after Take returned (bound %d)", sct, sq, seqBound)
		}
		imgSeq[sct] = sq
	}
	for i, z := range zones {
		if err := z.matchPrefix(imgSeq, ackedLow[i], submittedHigh[i]); err != nil {
			t.Fatalf("image zone %d (sectors %d+%d): %v", i, z.start, z.count, err)
		}
	}

	// The origin: every sector valid, every zone complete.
	orig := tuRead(t, d, 0, sectors*sectorSize)
	origSeq := make([]uint64, sectors)
	for sct := 0; sct < sectors; sct++ {
		if origSeq[sct], err = checkSector(orig[sct*sectorSize:], uint64(sct)); err != nil {
			t.Fatalf("origin: %v", err)
		}
	}
	for i, z := range zones {
		n := int64(len(z.log))
		if err := z.matchPrefix(origSeq, n, n); err != nil {
			t.Fatalf("origin zone %d: %v", i, err)
		}
	}
}

// matchPrefix checks that the zone's sectors in seqs hold the state after
// exactly k of its writes for some k in [lo, hi].
func (z *stampZone) matchPrefix(seqs []uint64, lo, hi int64) error {
	state := make([]uint64, z.count) // sequence 0: the initial stamps
	apply := func(w stampWrite) {
		for s := w.start; s < w.start+w.count; s++ {
			state[s-z.start] = w.seq
		}
	}
	if hi > int64(len(z.log)) || lo > hi {
		return fmt.Errorf("bad bounds %d..%d for %d writes", lo, hi, len(z.log))
	}
	for k := int64(0); k < lo; k++ {
		apply(z.log[k])
	}
	var firstDiff string
	for k := lo; k <= hi; k++ {
		if k > lo {
			apply(z.log[k-1])
		}
		diff := ""
		for i, sq := range state {
			if seqs[z.start+int64(i)] != sq {
				diff = fmt.Sprintf("after %d writes sector %d should have seq %d, has %d", k, z.start+int64(i), sq, seqs[z.start+int64(i)])
				break
			}
		}
		if diff == "" {
			return nil
		}
		if firstDiff == "" {
			firstDiff = diff
		}
	}
	return fmt.Errorf("no prefix of %d..%d writes matches (a lost acknowledged write, a later write, or a torn one): %s", lo, hi, firstDiff)
}

// stampWriter keeps up to depth writes in flight on its own queue, each in a
// different zone it owns (zone index ≡ w mod writers).
// On an error it stops submitting, completes what is in flight (so that
// Take, a barrier over in-flight writes, cannot hang on it) and returns it.
func stampWriter(t testing.TB, d *Device, zones []*stampZone, w, writers, depth, maxExtent int, seq *atomic.Uint64, ackedTotal *atomic.Int64, stop <-chan struct{}) (err error) {
	aq := newAsyncQ(t, depth, maxExtent*sectorSize)
	rng := rand.New(rand.NewSource(int64(w) + 100))
	var mine []int
	for i := w; i < len(zones); i += writers {
		mine = append(mine, i)
	}
	busy := map[int]int{} // zone index → slot
	zoneOf := make([]int, depth)
	free := make([]int, depth)
	for i := range free {
		free[i] = i
	}
	stopping := false
	fail := func(e error) {
		if err == nil {
			err = e
		}
		stopping = true
	}
	for {
		select {
		case <-stop:
			stopping = true
		default:
		}
		for !stopping && len(free) > 0 {
			zi := mine[rng.Intn(len(mine))]
			if _, ok := busy[zi]; ok {
				break
			}
			z := zones[zi]
			n := 1 + rng.Int63n(min(int64(maxExtent), z.count))
			start := z.start + rng.Int63n(z.count-n+1)
			slot := free[len(free)-1]
			free = free[:len(free)-1]
			sq := seq.Add(1)
			buf := aq.buf(slot, int(n)*sectorSize)
			for i := int64(0); i < n; i++ {
				stampSector(buf[i*sectorSize:], sq, uint64(start+i), rng)
			}
			z.log = append(z.log, stampWrite{seq: sq, start: start, count: n})
			z.submitted.Add(1)
			r := &aq.reqs[slot]
			*r = Request{Op: OpOriginWrite, Device: d, Off: start * sectorSize, Buf: buf, UserData: uint64(slot)}
			if e := aq.q.Submit(r); e != nil {
				fail(fmt.Errorf("writer %d: submit: %w", w, e))
				break
			}
			busy[zi] = slot
			zoneOf[slot] = zi
		}
		if aq.q.InFlight() == 0 {
			if stopping {
				return err
			}
			continue
		}
		n, e := aq.q.Poll(aq.out, 1)
		if e != nil {
			return fmt.Errorf("writer %d: poll: %w", w, e) // the queue is unusable
		}
		for _, r := range aq.out[:n] {
			slot := int(r.UserData)
			if r.Err != nil {
				fail(fmt.Errorf("writer %d: origin write at sector %d: %w", w, r.Off/sectorSize, r.Err))
			} else {
				zones[zoneOf[slot]].acked.Add(1)
				ackedTotal.Add(1)
			}
			delete(busy, zoneOf[slot])
			free = append(free, slot)
		}
	}
}
