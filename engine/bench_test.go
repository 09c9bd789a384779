package engine

import (
	"cmp"
	"math/rand"
	"os"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// The engine's benchmarks run each engine figure beside its raw baseline:
// the same load through the same uring layer on the same file, in the same
// run (sub-benchmarks raw and engine). Besides ns/op they report the p50 and
// p99 latency of one operation (p50-ns, p99-ns).

// benchDir holds the benchmarks' files: /dev/shm unless
// SNAPRING_BENCH_DIR names another directory (a disk file system: there
// page-cache reads complete inline, while tmpfs sends every read and write
// through io-wq, a thread hop each).
var benchDir = cmp.Or(os.Getenv("SNAPRING_BENCH_DIR"), "/dev/shm")

func benchFile(b *testing.B, size int64) string {
	b.Helper()
	if _, err := os.Stat(benchDir); err != nil {
		b.Skip("no /dev/shm")
	}
	f, err := os.CreateTemp(benchDir, "snapring-bench-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(f.Name()) })
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	// Written back now, so that no side measures the prefill's writeback.
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return f.Name()
}

func benchArena(b *testing.B, n int) *uring.Arena {
	a, err := uring.NewArena(n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a
}

type latencies struct{ h *hdrhistogram.Histogram }

func newLatencies() latencies { return latencies{hdrhistogram.New(1, int64(10*time.Second), 3)} }

func (l latencies) report(b *testing.B) {
	b.ReportMetric(float64(l.h.ValueAtQuantile(50)), "p50-ns")
	b.ReportMetric(float64(l.h.ValueAtQuantile(99)), "p99-ns")
}

// rawQD keeps qd operations in flight on one ring: op i is prepared by
// prep(slot, i); every completion must move want bytes.
func rawQD(b *testing.B, qd int, prep func(s *uring.SQE, slot, i int), want int32, lat latencies) {
	ring, err := uring.New(uring.Options{Entries: uint32(qd)})
	if err != nil {
		b.Fatal(err)
	}
	defer ring.Close()
	start := make([]time.Time, qd)
	issue := func(slot, i int) {
		s, _ := ring.NextSQE()
		prep(s, slot, i)
		s.SetUserData(uint64(slot))
		start[slot] = time.Now()
	}
	cqes := make([]uring.CQE, qd)
	issued, inflight := 0, 0
	for ; issued < qd && issued < b.N; issued++ {
		issue(issued, issued)
		inflight++
	}
	for inflight > 0 {
		if _, err := ring.SubmitAndWait(1); err != nil {
			b.Fatal(err)
		}
		n := ring.Drain(cqes)
		now := time.Now()
		for _, c := range cqes[:n] {
			if c.Res != want {
				b.Fatalf("raw: res %d, want %d", c.Res, want)
			}
			slot := int(c.UserData)
			lat.h.RecordValue(int64(now.Sub(start[slot])))
			inflight--
			if issued < b.N {
				issue(slot, issued)
				issued++
				inflight++
			}
		}
	}
}

// engineQD is rawQD through a Queue.
func engineQD(b *testing.B, qd int, fill func(r *Request, slot, i int), lat latencies) {
	q, err := NewQueue(qd)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	reqs := make([]Request, qd)
	start := make([]time.Time, qd)
	slotOf := func(r *Request) int { return int(r.UserData) }
	issue := func(slot, i int) {
		r := &reqs[slot]
		fill(r, slot, i)
		r.UserData = uint64(slot)
		start[slot] = time.Now()
		if err := q.Submit(r); err != nil {
			b.Fatal(err)
		}
	}
	out := make([]*Request, qd)
	issued, inflight := 0, 0
	for ; issued < qd && issued < b.N; issued++ {
		issue(issued, issued)
		inflight++
	}
	for inflight > 0 {
		n, err := q.Poll(out, 1)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for _, r := range out[:n] {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
			slot := slotOf(r)
			lat.h.RecordValue(int64(now.Sub(start[slot])))
			inflight--
			if issued < b.N {
				issue(slot, issued)
				issued++
				inflight++
			}
		}
	}
}

// BenchmarkOriginWriteCopied: random 4 KiB writes at QD32 to chunks that
// were all copied already. Goal: engine ≥ 0.90× raw throughput, p99 ≤ 1.2×.
func BenchmarkOriginWriteCopied(b *testing.B) {
	const (
		size = 256 << 20
		qd   = 32
		bs   = 4096
	)
	path := benchFile(b, size)
	arena := benchArena(b, qd*bs)
	blocks := int64(size / bs)
	b.Run("raw", func(b *testing.B) {
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		defer f.Close()
		rng := rand.New(rand.NewSource(2))
		lat := newLatencies()
		b.SetBytes(bs)
		b.ReportAllocs()
		b.ResetTimer()
		rawQD(b, qd, func(s *uring.SQE, slot, i int) {
			s.PrepWrite(int32(f.Fd()), arena.Slice(slot*bs, bs), uint64(rng.Int63n(blocks)*bs))
		}, bs, lat)
		b.StopTimer()
		lat.report(b)
	})
	b.Run("engine", func(b *testing.B) {
		d, s := benchSnapshot(b, path, size, 1) // every chunk copied first
		rng := rand.New(rand.NewSource(2))
		lat := newLatencies()
		b.SetBytes(bs)
		b.ReportAllocs()
		b.ResetTimer()
		engineQD(b, qd, func(r *Request, slot, i int) {
			*r = Request{Op: OpOriginWrite, Device: d, Off: rng.Int63n(blocks) * bs, Buf: arena.Slice(slot*bs, bs)}
		}, lat)
		b.StopTimer()
		lat.report(b)
		if st := s.Stats(); st.ChunksCopied != size/s.Image(d).ChunkSize() {
			b.Fatalf("copied %d chunks during the run", st.ChunksCopied)
		}
	})
}

// benchSnapshot opens path, takes a snapshot of it, writes one block into
// every stride-th chunk (stride 1: all) and waits until those copies are
// stored. The cleanup destroys the snapshot.
func benchSnapshot(b *testing.B, path string, size int64, stride int64) (*Device, *Snapshot) {
	d, err := OpenDevice(path)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSnapshot([]*Device{d}, StorageConfig{Path: benchDir, Limit: 2 * size}, Options{DiffStorageMinimum: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Destroy(); <-s.Done(); d.Close() })
	if err := s.Take(); err != nil {
		b.Fatal(err)
	}
	one := make([]byte, 4096)
	for off := int64(0); off < size; off += stride * s.Image(d).ChunkSize() {
		if _, err := d.WriteAt(one, off); err != nil {
			b.Fatal(err)
		}
	}
	waitStored(b, s)
	// The copies' writeback (on a disk file system) belongs to the setup,
	// not to the engine run that follows, as the prefill's does (benchFile).
	unix.Sync()
	return d, s
}

// BenchmarkOriginWriteCOW: 4 KiB writes at QD1, each the first write to its
// chunk (256 KiB). Baselines: a raw read of one chunk followed by a raw
// 4 KiB write, reading into one hot buffer (raw-hot) or rotating over as
// many buffers as the engine's in-memory budget (raw-rotating: a copy must
// be kept until it is stored, so no COW can reuse one hot buffer). Goal:
// engine p50 ≤ 1.3× baseline p50.
func BenchmarkOriginWriteCOW(b *testing.B) {
	const (
		size      = 256 << 20
		chunkSize = 256 << 10
		bs        = 4096
		chunks    = size / chunkSize
		budget    = DefaultChunkMaximumInQueue
	)
	path := benchFile(b, size)
	arena := benchArena(b, (budget+1)*chunkSize)
	for _, v := range []struct {
		name    string
		buffers int
	}{{"raw-hot", 1}, {"raw-rotating", budget}} {
		b.Run(v.name, func(b *testing.B) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			defer f.Close()
			fd := int32(f.Fd())
			ring, _ := uring.New(uring.Options{Entries: 4})
			defer ring.Close()
			var c [1]uring.CQE
			do := func(prep func(*uring.SQE), want int32) {
				s, _ := ring.NextSQE()
				prep(s)
				ring.SubmitAndWait(1)
				for ring.Drain(c[:]) == 0 {
					ring.SubmitAndWait(1)
				}
				if c[0].Res != want {
					b.Fatalf("res %d", c[0].Res)
				}
			}
			lat := newLatencies()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := uint64(i%chunks) * chunkSize
				buf := arena.Slice((1+i%v.buffers)*chunkSize, chunkSize)
				t0 := time.Now()
				do(func(s *uring.SQE) { s.PrepRead(fd, buf, off) }, chunkSize)
				do(func(s *uring.SQE) { s.PrepWrite(fd, arena.Slice(0, bs), off) }, bs)
				lat.h.RecordValue(int64(time.Since(t0)))
			}
			b.StopTimer()
			lat.report(b)
		})
	}
	// engine runs with blksnap's default in-memory budget, so a steady
	// stream of first writes waits for the store workers once 16 chunks
	// are in memory; engine-budget-all holds every chunk of a pass in
	// memory, so that it shows the copy-on-write path alone.
	for _, v := range []struct {
		name   string
		budget int
	}{{"engine", budget}, {"engine-budget-all", chunks}} {
		b.Run(v.name, func(b *testing.B) { benchCOWEngine(b, path, arena, v.budget) })
	}
}

func benchCOWEngine(b *testing.B, path string, arena *uring.Arena, budget int) {
	const (
		size      = 256 << 20
		chunkSize = 256 << 10
		bs        = 4096
		chunks    = size / chunkSize
	)
	d, err := OpenDevice(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	lat := newLatencies()
	q, _ := NewQueue(1)
	defer q.Close()
	var out [1]*Request
	var r Request
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		s, err := NewSnapshot([]*Device{d}, StorageConfig{Path: benchDir, Limit: 2 * size}, Options{DiffStorageMinimum: 64 << 20, ChunkMaximumInQueue: budget})
		if err != nil {
			b.Fatal(err)
		}
		s.Take()
		b.StartTimer()
		for i := 0; i < chunks && done < b.N; i, done = i+1, done+1 {
			r = Request{Op: OpOriginWrite, Device: d, Off: int64(i) * chunkSize, Buf: arena.Slice(0, bs)}
			t0 := time.Now()
			q.Submit(&r)
			for n, _ := q.Poll(out[:], 1); n == 0; n, _ = q.Poll(out[:], 1) {
			}
			lat.h.RecordValue(int64(time.Since(t0)))
			if r.Err != nil || !r.Copied {
				b.Fatalf("err %v copied %v", r.Err, r.Copied)
			}
		}
		b.StopTimer()
		s.Destroy()
		<-s.Done()
		b.StartTimer()
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkImageSeqRead: sequential 1 MiB reads at QD4 of an image whose
// every other chunk is stored in the difference storage (the rest from the
// original). Baseline: the same reads of the original file. Goal: ≥ 0.90×.
func BenchmarkImageSeqRead(b *testing.B) {
	const (
		size = 256 << 20
		qd   = 4
		bs   = 1 << 20
	)
	path := benchFile(b, size)
	arena := benchArena(b, qd*bs)
	blocks := int64(size / bs)
	b.Run("raw", func(b *testing.B) {
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		defer f.Close()
		lat := newLatencies()
		b.SetBytes(bs)
		b.ReportAllocs()
		b.ResetTimer()
		rawQD(b, qd, func(s *uring.SQE, slot, i int) {
			s.PrepRead(int32(f.Fd()), arena.Slice(slot*bs, bs), uint64(int64(i)%blocks*bs))
		}, bs, lat)
		b.StopTimer()
		lat.report(b)
	})
	b.Run("engine", func(b *testing.B) {
		d, s := benchSnapshot(b, path, size, 2) // every other chunk stored
		img := s.Image(d)
		lat := newLatencies()
		b.SetBytes(bs)
		b.ReportAllocs()
		b.ResetTimer()
		engineQD(b, qd, func(r *Request, slot, i int) {
			*r = Request{Op: OpImageRead, Image: img, Off: int64(i) % blocks * bs, Buf: arena.Slice(slot*bs, bs)}
		}, lat)
		b.StopTimer()
		lat.report(b)
	})
}
