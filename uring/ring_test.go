package uring

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newRing(t testing.TB, opts Options) *Ring {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.Skipf("io_uring unavailable here: %v", err)
		}
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newArena(t testing.TB, size int) *Arena {
	t.Helper()
	a, err := NewArena(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func tempFile(t testing.TB, dir string, size int64) *os.File {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "uring-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
	if size > 0 {
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// run submits what is queued, waits for n completions and returns them.
func run(t testing.TB, r *Ring, n int) []CQE {
	t.Helper()
	if _, err := r.SubmitAndWait(uint32(n)); err != nil {
		t.Fatalf("SubmitAndWait(%d): %v", n, err)
	}
	out := make([]CQE, n)
	got := 0
	for got < n {
		got += r.Drain(out[got:])
		if got < n {
			if _, err := r.SubmitAndWait(uint32(n - got)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func nextSQE(t testing.TB, r *Ring) *SQE {
	t.Helper()
	s, err := r.NextSQE()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNopRoundTrip(t *testing.T) {
	for _, opts := range []Options{
		{Entries: 8},
		{Entries: 8, CQEntries: 64},
		{Entries: 8, SingleIssuer: true, DeferTaskrun: true},
		{Entries: 8, CoopTaskrun: true},
		{Entries: 8, SQE128: true, CQE32: true},
		{Entries: 8, SQPoll: true, SQThreadIdle: 10 * time.Millisecond},
		{Entries: 8, SubmitMaySleep: true},
	} {
		r := newRing(t, opts)
		for round := 0; round < 3; round++ {
			for i := 0; i < 5; i++ {
				s := nextSQE(t, r)
				s.PrepNop()
				s.SetUserData(uint64(round*100 + i))
			}
			cqes := run(t, r, 5)
			seen := map[uint64]bool{}
			for _, c := range cqes {
				if c.Res != 0 {
					t.Fatalf("%+v: nop res %d", opts, c.Res)
				}
				seen[c.UserData] = true
			}
			for i := 0; i < 5; i++ {
				if !seen[uint64(round*100+i)] {
					t.Fatalf("%+v: user data %d not returned; got %+v", opts, round*100+i, cqes)
				}
			}
		}
	}
}

func TestReadWrite(t *testing.T) {
	r := newRing(t, Options{Entries: 16})
	a := newArena(t, 3*4096)
	f := tempFile(t, "", 0)
	fd := int32(f.Fd())
	w := a.Slice(0, 8192)
	rand.New(rand.NewSource(1)).Read(w)
	s := nextSQE(t, r)
	s.PrepWrite(fd, w, 4096)
	s.SetUserData(1)
	c := run(t, r, 1)[0]
	if c.Res != 8192 || c.UserData != 1 {
		t.Fatalf("write: %+v", c)
	}
	disk := make([]byte, 8192)
	if _, err := f.ReadAt(disk, 4096); err != nil || !bytes.Equal(disk, w) {
		t.Fatalf("file content differs after uring write (err %v)", err)
	}
	rd := a.Slice(8192, 4096)
	s = nextSQE(t, r)
	s.PrepRead(fd, rd, 8192)
	c = run(t, r, 1)[0]
	if c.Res != 4096 || !bytes.Equal(rd, w[4096:]) {
		t.Fatalf("read: res %d, content equal %v", c.Res, bytes.Equal(rd, w[4096:]))
	}
}

func TestReadvWritev(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	a := newArena(t, 4*4096)
	f := tempFile(t, "", 0)
	fd := int32(f.Fd())
	iovs := a.Iovecs(0, 2)
	b1, b2 := a.Slice(4096, 512), a.Slice(8192, 1024)
	copy(b1, bytes.Repeat([]byte{'a'}, 512))
	copy(b2, bytes.Repeat([]byte{'b'}, 1024))
	iovs[0].Base, iovs[1].Base = &b1[0], &b2[0]
	iovs[0].SetLen(512)
	iovs[1].SetLen(1024)
	s := nextSQE(t, r)
	s.PrepWritev(fd, iovs, 0)
	if c := run(t, r, 1)[0]; c.Res != 1536 {
		t.Fatalf("writev res %d", c.Res)
	}
	want := append(bytes.Repeat([]byte{'a'}, 512), bytes.Repeat([]byte{'b'}, 1024)...)
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("writev content wrong")
	}
	clear(b1)
	clear(b2)
	s = nextSQE(t, r)
	s.PrepReadv(fd, iovs, 0)
	if c := run(t, r, 1)[0]; c.Res != 1536 {
		t.Fatalf("readv res %d", c.Res)
	}
	if !bytes.Equal(append(append([]byte{}, b1...), b2...), want) {
		t.Fatal("readv content wrong")
	}
}

func TestFixedBuffersAndFiles(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	a := newArena(t, 2*65536)
	bufs := [][]byte{a.Slice(0, 65536), a.Slice(65536, 65536)}
	if err := r.RegisterBuffers(bufs); err != nil {
		t.Fatal(err)
	}
	f1, f2 := tempFile(t, "", 1<<20), tempFile(t, "", 1<<20)
	if err := r.RegisterFiles([]int32{int32(f1.Fd()), -1}); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateFiles(1, []int32{int32(f2.Fd())}); err != nil {
		t.Fatal(err)
	}
	copy(bufs[0][:4096], bytes.Repeat([]byte{0x5a}, 4096))
	for idx := int32(0); idx < 2; idx++ {
		s := nextSQE(t, r)
		s.PrepWriteFixed(idx, bufs[0][:4096], uint64(idx)*4096, 0)
		s.SetFlags(SQEFixedFile)
	}
	for _, c := range run(t, r, 2) {
		if err := ResultError(OpWriteFixed, c.Res); err != nil || c.Res != 4096 {
			t.Fatalf("write_fixed: %+v %v", c, err)
		}
	}
	s := nextSQE(t, r)
	s.PrepReadFixed(1, bufs[1][:4096], 4096, 1)
	s.SetFlags(SQEFixedFile)
	if c := run(t, r, 1)[0]; c.Res != 4096 || !bytes.Equal(bufs[1][:4096], bufs[0][:4096]) {
		t.Fatalf("read_fixed from fixed file 1: %+v", c)
	}
	got := make([]byte, 4096)
	f1.ReadAt(got, 0)
	if !bytes.Equal(got, bufs[0][:4096]) {
		t.Fatal("fixed file 0 content wrong")
	}
	if err := r.UnregisterFiles(); err != nil {
		t.Fatal(err)
	}
	if err := r.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
}

// TestSparseBuffers: a sparse table has its slots (a second table is refused,
// as with any registered buffers) and they are empty: a fixed read of slot 0
// fails with EFAULT instead of touching memory; a slot past the table is
// refused as well. What fills the slots (ublk's AUTO_BUF_REG) runs in the VM.
func TestSparseBuffers(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	if err := r.RegisterSparseBuffers(4); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterSparseBuffers(4); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second table: %v, want EBUSY", err)
	}
	f := tempFile(t, "", 1<<16)
	for _, idx := range []uint16{0, 3, 4} {
		s := nextSQE(t, r)
		s.PrepReadFixedAt(int32(f.Fd()), 0, 4096, 0, idx)
		if c := run(t, r, 1)[0]; c.Res != -int32(unix.EFAULT) && c.Res != -int32(unix.EINVAL) {
			t.Fatalf("read into empty slot %d: res %d, want EFAULT or EINVAL", idx, c.Res)
		}
		s = nextSQE(t, r)
		s.PrepWriteFixedAt(int32(f.Fd()), 0, 4096, 0, idx)
		if c := run(t, r, 1)[0]; c.Res >= 0 {
			t.Fatalf("write from empty slot %d: res %d, want an error", idx, c.Res)
		}
	}
	if err := r.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
}

func TestFsyncFallocateLinked(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	a := newArena(t, 4096)
	f := tempFile(t, "", 0)
	fd := int32(f.Fd())
	buf := a.Slice(0, 4096)
	copy(buf, bytes.Repeat([]byte{7}, 4096))
	// fallocate -> write -> fsync, linked: each starts after the previous.
	s := nextSQE(t, r)
	s.PrepFallocate(fd, 0, 0, 1<<20)
	s.SetFlags(SQEIOLink)
	s.SetUserData(1)
	s = nextSQE(t, r)
	s.PrepWrite(fd, buf, 8192)
	s.SetFlags(SQEIOLink)
	s.SetUserData(2)
	s = nextSQE(t, r)
	s.PrepFsync(fd, FsyncDatasync)
	s.SetUserData(3)
	res := map[uint64]int32{}
	for _, c := range run(t, r, 3) {
		res[c.UserData] = c.Res
	}
	if res[1] != 0 || res[2] != 4096 || res[3] != 0 {
		t.Fatalf("linked chain results %v", res)
	}
	if st, _ := f.Stat(); st.Size() != 1<<20 {
		t.Fatalf("fallocate: size %d", st.Size())
	}
	// A failing link head cancels the rest of the chain.
	s = nextSQE(t, r)
	s.PrepWrite(-1, buf, 0)
	s.SetFlags(SQEIOLink)
	s.SetUserData(10)
	s = nextSQE(t, r)
	s.PrepFsync(fd, 0)
	s.SetUserData(11)
	res = map[uint64]int32{}
	for _, c := range run(t, r, 2) {
		res[c.UserData] = c.Res
	}
	if res[10] != -int32(unix.EBADF) || res[11] != -int32(unix.ECANCELED) {
		t.Fatalf("broken chain: %v, want EBADF then ECANCELED", res)
	}
}

func TestErrorNamesOperation(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	a := newArena(t, 4096)
	s := nextSQE(t, r)
	s.PrepRead(12345, a.Slice(0, 4096), 0)
	c := run(t, r, 1)[0]
	err := ResultError(s.Opcode(), c.Res)
	if err == nil || !errors.Is(err, unix.EBADF) || err.Error() != "uring: read: bad file descriptor" {
		t.Fatalf("got %v", err)
	}
	if ResultError(OpRead, 0) != nil {
		t.Fatal("non-negative result is not an error")
	}
}

func TestWaitTimeout(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	start := time.Now()
	_, err := r.WaitTimeout(1, 20*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("returned after %v, before the timeout", el)
	}
	s := nextSQE(t, r)
	s.PrepNop()
	if _, err := r.WaitTimeout(1, time.Second); err != nil {
		t.Fatalf("a ready completion must not time out: %v", err)
	}
	var c [1]CQE
	if r.Drain(c[:]) != 1 {
		t.Fatal("no completion")
	}
}

// TestCQOverflow submits far more operations than the CQ holds without
// reaping; none may be lost.
func TestCQOverflow(t *testing.T) {
	r := newRing(t, Options{Entries: 4, CQEntries: 8})
	const total = 200
	for i := 0; i < total; i++ {
		s := nextSQE(t, r) // submits itself whenever the SQ is full
		s.PrepNop()
		s.SetUserData(uint64(i))
	}
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, total)
	out := make([]CQE, 3)
	n := 0
	for n < total {
		got := r.Drain(out)
		if got == 0 {
			if _, err := r.SubmitAndWait(1); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, c := range out[:got] {
			if seen[c.UserData] {
				t.Fatalf("duplicate completion %d", c.UserData)
			}
			seen[c.UserData] = true
		}
		n += got
	}
}

func TestFullSQSubmits(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	for i := 0; i < 7; i++ {
		nextSQE(t, r).PrepNop()
	}
	if r.Pending() > r.SQEntries() {
		t.Fatalf("pending %d exceeds SQ size", r.Pending())
	}
	run(t, r, 7)
}

// TestReserve: Reserve submits what is queued only when the SQ lacks room
// for the chain, so the chain's SQEs are handed out without a submission
// between them; more than the ring holds is refused.
func TestReserve(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	if err := r.Reserve(r.SQEntries() + 1); !errors.Is(err, ErrSQFull) {
		t.Fatalf("Reserve beyond the ring: %v, want ErrSQFull", err)
	}
	for i := 0; i < 3; i++ {
		nextSQE(t, r).PrepNop()
	}
	if err := r.Reserve(2); err != nil {
		t.Fatal(err)
	}
	if p := r.Pending(); p != 0 {
		t.Fatalf("%d SQEs still queued: Reserve(2) with one free should have submitted", p)
	}
	if err := r.Reserve(2); err != nil || r.Pending() != 0 {
		t.Fatalf("Reserve with room: %v, %d queued", err, r.Pending())
	}
	a := newArena(t, 4096)
	s := nextSQE(t, r)
	s.PrepRead(-1, a.Slice(0, 4096), 0)
	s.SetFlags(SQEIOLink)
	s.SetUserData(10)
	s = nextSQE(t, r)
	s.PrepNop()
	s.SetUserData(11)
	if p := r.Pending(); p != 2 {
		t.Fatalf("%d SQEs queued after the reserved two, want 2 (none submitted between)", p)
	}
	res := map[uint64]int32{}
	for _, c := range run(t, r, 5) {
		res[c.UserData] = c.Res
	}
	if res[10] != -int32(unix.EBADF) || res[11] != -int32(unix.ECANCELED) {
		t.Fatalf("reserved chain: %v, want EBADF then ECANCELED", res)
	}
}

func TestProbe(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Require(OpNop, OpRead, OpWrite, OpReadv, OpFsync, OpFallocate, OpURingCmd); err != nil {
		t.Fatalf("this kernel (%s) must have these: %v", kernelRelease(), err)
	}
	p.supported[OpURingCmd] = false
	err = p.Require(OpRead, OpURingCmd)
	if !errors.Is(err, ErrNotSupported) || err.Error() != "uring: not supported by this kernel: io_uring opcode IORING_OP_URING_CMD (added in Linux 5.19)" {
		t.Fatalf("missing-op error: %v", err)
	}
}

func kernelRelease() string {
	var u unix.Utsname
	unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Entries: 0}, {Entries: 1 << 20}, {Entries: 8, CQEntries: 4}, {Entries: 8, DeferTaskrun: true}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestSetupErrorMessages(t *testing.T) {
	if err := setupError(unix.ENOSYS); !errors.Is(err, ErrUnavailable) || !bytes.Contains([]byte(err.Error()), []byte("CONFIG_IO_URING")) {
		t.Fatalf("ENOSYS: %v", err)
	}
	err := setupError(unix.EPERM)
	if !errors.Is(err, ErrUnavailable) || !bytes.Contains([]byte(err.Error()), []byte("io_uring")) {
		t.Fatalf("EPERM: %v", err)
	}
}

func TestUnpinnedBufferPanics(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	s := nextSQE(t, r)
	defer func() {
		if recover() == nil {
			t.Fatal("a Go heap buffer was accepted")
		}
	}()
	s.PrepRead(0, make([]byte, 4096), 0)
}

// TestOneRingPerGoroutine is the concurrency rule in action: several
// goroutines, each with its own ring, on one file; -race must stay quiet.
func TestOneRingPerGoroutine(t *testing.T) {
	f := tempFile(t, "", 1<<20)
	a := newArena(t, 4*4096)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r, err := New(Options{Entries: 8})
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			buf := a.Slice(g*4096, 4096)
			for i := 0; i < 100; i++ {
				s, _ := r.NextSQE()
				buf[0] = byte(i)
				s.PrepWrite(int32(f.Fd()), buf, uint64(g*4096))
				if _, err := r.SubmitAndWait(1); err != nil {
					t.Error(err)
					return
				}
				var c [1]CQE
				if r.Drain(c[:]) != 1 || c[0].Res != 4096 {
					t.Errorf("goroutine %d: %+v", g, c[0])
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestConcurrentUseDetected(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	r.busy.Store(1) // as if another goroutine were inside Submit
	defer func() {
		r.busy.Store(0)
		if recover() == nil {
			t.Fatal("concurrent entry not detected")
		}
	}()
	r.Submit()
}

func TestClosed(t *testing.T) {
	r, err := New(Options{Entries: 2})
	if err != nil {
		t.Skip(err)
	}
	r.Close()
	if _, err := r.NextSQE(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := r.Submit(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestNoAllocOnHotPath(t *testing.T) {
	r := newRing(t, Options{Entries: 64})
	a := newArena(t, 4096)
	f := tempFile(t, "/dev/shm", 1<<20)
	fd := int32(f.Fd())
	buf := a.Slice(0, 4096)
	out := make([]CQE, 32)
	allocs := testing.AllocsPerRun(200, func() {
		for i := 0; i < 32; i++ {
			s, _ := r.NextSQE()
			if i%2 == 0 {
				s.PrepNop()
			} else {
				s.PrepRead(fd, buf, uint64(i)*4096)
				r.MarkIOWQ(s) // the tables are made before AllocsPerRun counts
			}
			s.SetUserData(uint64(i))
		}
		r.SubmitAndWait(32)
		for n := 0; n < 32; {
			n += r.Drain(out[n:])
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
	if n := r.IOWQInFlight(); n != 0 {
		t.Fatalf("%d marked reads left in flight after all were drained", n)
	}
	allocs = testing.AllocsPerRun(50, func() {
		r.WaitTimeout(1, time.Microsecond)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per timed wait", allocs)
	}
}

// TestSubmitThenSleep covers the wait that inline completions do not satisfy:
// the submission enters without sleeping, then the loop sleeps for the read of
// a pipe that another goroutine fills later. Both entry modes.
func TestSubmitThenSleep(t *testing.T) {
	for _, opts := range []Options{
		{Entries: 4},
		{Entries: 4, SubmitMaySleep: true},
	} {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		r := newRing(t, opts)
		a := newArena(t, 4096)
		s := nextSQE(t, r)
		s.PrepRead(int32(p[0]), a.Slice(0, 5), 0)
		s.SetUserData(7)
		go func() {
			time.Sleep(20 * time.Millisecond)
			unix.Write(p[1], []byte("hello"))
		}()
		cqes := run(t, r, 1)
		if cqes[0].UserData != 7 || cqes[0].Res != 5 || string(a.Slice(0, 5)) != "hello" {
			t.Fatalf("%+v: got %+v, %q", opts, cqes[0], a.Slice(0, 5))
		}
		unix.Close(p[0])
		unix.Close(p[1])
	}
}

// TestNoSQArray: kernels from 6.6 take IORING_SETUP_NO_SQARRAY, and New
// must have used it there (older ones fall back to the index array, which
// every other test then exercises).
func TestNoSQArray(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	r := newRing(t, Options{Entries: 4})
	got := r.flags&setupNoSQArray != 0
	if want := major > 6 || major == 6 && minor >= 6; got != want {
		t.Fatalf("kernel %d.%d: ring without SQ array %v, want %v", major, minor, got, want)
	}
	s := nextSQE(t, r)
	s.PrepNop()
	s.SetUserData(9)
	if c := run(t, r, 1); c[0].UserData != 9 {
		t.Fatalf("got %+v", c[0])
	}
}

// newPipe returns a pipe closed when the test ends.
func newPipe(t *testing.T) [2]int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p
}

// TestCancel: a pipe read that nothing will satisfy is cancelled; both
// completions arrive, the read's with ECANCELED.
func TestCancel(t *testing.T) {
	p := newPipe(t)
	r := newRing(t, Options{Entries: 4})
	a := newArena(t, 4096)
	s := nextSQE(t, r)
	s.PrepRead(int32(p[0]), a.Slice(0, 5), 0)
	s.SetUserData(7)
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	s = nextSQE(t, r)
	s.PrepCancel(7)
	s.SetUserData(8)
	got := map[uint64]int32{}
	for _, c := range run(t, r, 2) {
		got[c.UserData] = c.Res
	}
	if got[7] != -int32(unix.ECANCELED) || got[8] != 0 {
		t.Fatalf("read %d (want %d), cancel %d (want 0)", got[7], -int32(unix.ECANCELED), got[8])
	}
}

// TestKickIOWQ: a wait that sees nothing complete for kickInterval while a
// marked operation is in flight queues an asynchronous NOP (io-wq's
// wake-up), every kickInterval; the caller never sees its completion. A
// wait with nothing marked in flight never kicks.
func TestKickIOWQ(t *testing.T) {
	p := newPipe(t)
	r := newRing(t, Options{Entries: 4})
	if r.features&featExtArg == 0 {
		t.Skip("no IORING_FEAT_EXT_ARG (5.11): waits are not bounded, nothing kicks")
	}
	a := newArena(t, 4096)
	read := func(mark bool) {
		t.Helper()
		s := nextSQE(t, r)
		s.PrepRead(int32(p[0]), a.Slice(0, 5), 0)
		s.SetUserData(7)
		if mark {
			r.MarkIOWQ(s)
		}
		go func() {
			time.Sleep(5 * kickInterval)
			unix.Write(p[1], []byte("hello"))
		}()
		cqes := run(t, r, 1)
		if cqes[0].UserData != 7 || cqes[0].Res != 5 {
			t.Fatalf("got %+v, want the pipe read", cqes[0])
		}
	}

	global := Kicks()
	read(false)
	if k := r.Kicks(); k != 0 {
		t.Errorf("%d kicks with nothing marked in flight, want 0", k)
	}
	read(true)
	// Fixed intervals: 4 in a wait of 5 intervals, fewer on a loaded machine.
	if k := r.Kicks(); k < 2 || k > 5 {
		t.Errorf("%d kicks in a marked wait of 5×kickInterval, want 2..5", k)
	}
	if g := Kicks() - global; g < r.Kicks() {
		t.Errorf("global Kicks rose by %d, less than the ring's %d", g, r.Kicks())
	}
	if n := r.IOWQInFlight(); n != 0 {
		t.Errorf("%d marked operations in flight after their completion was drained", n)
	}
	time.Sleep(20 * time.Millisecond) // let a kick NOP still in flight complete
	var more [4]CQE
	if n := r.Drain(more[:]); n != 0 {
		t.Errorf("%d more completions (%+v): a kick's reached the caller", n, more[:n])
	}
	if r.kicks != 0 {
		t.Errorf("%d kick completions not accounted for", r.kicks)
	}
}

// TestMarkIOWQSet: the set of marked operations in flight under random
// submissions and completions, against a map, through growth past the
// ring's size.
func TestMarkIOWQSet(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	s := nextSQE(t, r)
	r.MarkIOWQ(s) // allocates the tables
	r.sqeTail--   // hand the SQE back
	r.sqFree++
	rnd := rand.New(rand.NewSource(1))
	want := map[uint64]int{}
	n := 0
	for i := 0; i < 20000; i++ {
		ud := uint64(rnd.Intn(64))
		if rnd.Intn(3) > 0 || n > 40 {
			if want[ud] > 0 {
				r.iowqDone(ud)
				want[ud]--
				n--
			} else {
				r.iowqDone(ud) // not in flight: no change
			}
		} else {
			r.iowqAdd(ud)
			want[ud]++
			n++
		}
		if r.iowqN != n {
			t.Fatalf("step %d: %d in flight, want %d", i, r.iowqN, n)
		}
	}
	for ud, c := range want {
		for ; c > 0; c-- {
			r.iowqDone(ud)
		}
	}
	if r.iowqN != 0 {
		t.Fatalf("%d left after removing all", r.iowqN)
	}
	for _, e := range r.iowqSet {
		if e.used {
			t.Fatalf("entry %+v left used", e)
		}
	}
}

func TestNonblockingReads(t *testing.T) {
	newRing(t, Options{Entries: 1}) // skips where io_uring is unavailable
	want := map[int64]bool{unix.TMPFS_MAGIC: false, unix.EXT4_SUPER_MAGIC: true, unix.XFS_SUPER_MAGIC: true, unix.BTRFS_SUPER_MAGIC: true}
	tried := 0
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			continue
		}
		w, known := want[int64(st.Type)]
		if !known {
			t.Logf("%s: file system %#x: no expectation", dir, st.Type)
			continue
		}
		f, err := os.CreateTemp(dir, "nowait")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		got, err := NonblockingReads(int32(f.Fd()))
		if err != nil || got != w {
			t.Errorf("%s (file system %#x): NonblockingReads = %v, %v; want %v", dir, st.Type, got, err, w)
		}
		tried++
	}
	if tried == 0 {
		t.Skip("no tmpfs, ext4, xfs or btrfs directory to try")
	}
	if _, err := NonblockingReads(-1); !errors.Is(err, unix.EBADF) {
		t.Errorf("bad fd: %v, want EBADF", err)
	}
}
