package uring

import (
	"math/rand"
	"os"
	"testing"
)

// BenchmarkNop submits batches of 32 NOPs with one SubmitAndWait each; the
// figure is ns per NOP (C liburing measured here: ~75 ns at batch 32; `make
// bench-uring` measures it again beside this).
func BenchmarkNop(b *testing.B) {
	const batch = 32
	r := newRing(b, Options{Entries: batch})
	out := make([]CQE, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		for i := 0; i < batch; i++ {
			s, _ := r.NextSQE()
			s.PrepNop()
			s.SetUserData(uint64(i))
		}
		if _, err := r.SubmitAndWait(batch); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < batch; {
			n += r.Drain(out[n:])
		}
	}
}

func BenchmarkRead4K(b *testing.B)  { benchRandom4K(b, OpReadFixed) }
func BenchmarkWrite4K(b *testing.B) { benchRandom4K(b, OpWriteFixed) }

// benchRandom4K keeps 32 random 4 KiB operations in flight on a 256 MiB file
// in /dev/shm, with a registered buffer and file; ns/op is per operation.
func benchRandom4K(b *testing.B, op Op) {
	const (
		qd        = 32
		blockSize = 4096
		fileSize  = 256 << 20
	)
	if _, err := os.Stat("/dev/shm"); err != nil {
		b.Skip("no /dev/shm")
	}
	r := newRing(b, Options{Entries: qd})
	a := newArena(b, qd*blockSize)
	f := tempFile(b, "/dev/shm", fileSize)
	if err := r.RegisterFiles([]int32{int32(f.Fd())}); err != nil {
		b.Fatal(err)
	}
	if err := r.RegisterBuffers([][]byte{a.Bytes()}); err != nil {
		b.Fatal(err)
	}
	// Fill the file so reads hit real pages.
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < fileSize; off += int64(len(chunk)) {
		f.WriteAt(chunk, off)
	}
	rng := rand.New(rand.NewSource(1))
	const blocks = fileSize / blockSize
	prep := func(slot uint64) {
		s, _ := r.NextSQE()
		buf := a.Slice(int(slot)*blockSize, blockSize)
		off := uint64(rng.Int63n(blocks)) * blockSize
		if op == OpReadFixed {
			s.PrepReadFixed(0, buf, off, 0)
		} else {
			s.PrepWriteFixed(0, buf, off, 0)
		}
		s.SetFlags(SQEFixedFile)
		s.SetUserData(slot)
	}
	out := make([]CQE, qd)
	b.SetBytes(blockSize)
	b.ReportAllocs()
	b.ResetTimer()
	inflight := 0
	for i := 0; i < qd && i < b.N; i++ {
		prep(uint64(i))
		inflight++
	}
	issued := inflight
	for inflight > 0 {
		if _, err := r.SubmitAndWait(1); err != nil {
			b.Fatal(err)
		}
		n := r.Drain(out)
		for _, c := range out[:n] {
			if c.Res != blockSize {
				b.Fatalf("%s: res %d", op, c.Res)
			}
			inflight--
			if issued < b.N {
				prep(c.UserData)
				issued++
				inflight++
			}
		}
	}
}
