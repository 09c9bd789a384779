package engine

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// threadNice reads the nice value of a thread of this process from /proc.
func threadNice(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	// Fields after the comm's closing parenthesis start at field 3 (state);
	// nice is field 19.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 19-3+1 {
		return 0, fmt.Errorf("stat of thread %d: %q", tid, b)
	}
	return strconv.Atoi(f[19-3])
}

// TestServeBackupPriority: a backup's queue runs its thread at the
// snapshot's BackupNice and the io-wq workers its image reads start inherit
// it, while other threads keep their priority; its large image reads fan
// out right after an origin write; with writer priority off nothing is
// lowered; out-of-range values are refused.
func TestServeBackupPriority(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "snapring-prio-")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm (%v): the test needs a file system whose reads go to io-wq", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const size = 4 << 20
	d, data := tuOrigin(t, dir, size, 3)
	if !d.punted {
		t.Skip("reads of tmpfs files are not handed to io-wq on this kernel: no workers to inherit the priority")
	}
	opts := tuOpts(16, 4)
	opts.BackupNice = 7
	s := tuSnap(t, []*Device{d}, StorageConfig{}, opts)
	if err := s.Take(); err != nil {
		t.Fatal(err)
	}
	if got := s.BackupNice(); got != 7 {
		t.Fatalf("BackupNice %d, want 7", got)
	}
	if got := s.Image(d).BackupNice(); got != 7 {
		t.Fatalf("Image.BackupNice %d, want 7", got)
	}
	runtime.LockOSThread()
	mine, err := threadNice(unix.Gettid())
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	if mine+7 > 19 {
		t.Skipf("the test runs at nice %d already", mine)
	}

	type outcome struct {
		tid, nice int
		workers   map[int]int // worker tid: nice
		fanOut    bool
		err       error
	}
	res := make(chan outcome, 1)
	go func() {
		// Never unlocked: the lowered priority ends with this thread.
		runtime.LockOSThread()
		o := outcome{tid: unix.Gettid(), workers: map[int]int{}}
		defer func() { res <- o }()
		q, err := NewQueue(4)
		if err != nil {
			o.err = err
			return
		}
		defer q.Close()
		if o.err = q.ServeBackup(s.BackupNice()); o.err != nil {
			return
		}
		if o.nice, o.err = threadNice(o.tid); o.err != nil {
			return
		}
		arena, err := uring.NewArena(4 << 20)
		if err != nil {
			o.err = err
			return
		}
		defer arena.Close()
		if _, err := d.WriteAt(make([]byte, 4096), 0); err != nil {
			o.err = err
			return
		}
		o.fanOut = q.fanOut(s.gate)
		reqs := make([]Request, 4)
		out := make([]*Request, 4)
		for i := range reqs {
			reqs[i] = Request{Op: OpImageRead, Image: s.Image(d), Off: int64(i) << 20, Buf: arena.Slice(i<<20, 1<<20)}
			if o.err = q.Submit(&reqs[i]); o.err != nil {
				return
			}
		}
		for got := 0; got < len(reqs); {
			n, err := q.PollTimeout(out, 1, 10*time.Second)
			if err != nil || n == 0 {
				o.err = fmt.Errorf("image reads: %d of %d done: %v", got, len(reqs), err)
				return
			}
			got += n
		}
		for i := range reqs {
			// The image keeps what chunk 0 held before the write.
			if reqs[i].Err != nil || !bytes.Equal(reqs[i].Buf, data[i<<20:(i+1)<<20]) {
				o.err = fmt.Errorf("image read %d: %v, or wrong data", i, reqs[i].Err)
				return
			}
		}
		// The workers idle for seconds before they exit: still there.
		ws, err := ioWorkerThreads(o.tid)
		if err != nil {
			o.err = err
			return
		}
		for _, w := range ws {
			if n, err := threadNice(w); err == nil { // else it ended meanwhile
				o.workers[w] = n
			}
		}
	}()
	o := <-res
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.nice != 7 {
		t.Errorf("the backup queue's thread runs at nice %d, want 7", o.nice)
	}
	if len(o.workers) == 0 {
		t.Errorf("no io-wq workers of thread %d after 4 MiB of tmpfs image reads", o.tid)
	}
	for w, n := range o.workers {
		if n != 7 {
			t.Errorf("io-wq worker %d of the backup thread runs at nice %d, want 7", w, n)
		}
	}
	if !o.fanOut {
		t.Error("a backup queue's reads do not fan out right after an origin write")
	}
	runtime.LockOSThread()
	got, err := threadNice(unix.Gettid())
	runtime.UnlockOSThread()
	if err != nil || got != mine {
		t.Errorf("another thread's nice went from %d to %d (%v)", mine, got, err)
	}

	// Writer priority off: nothing to lower.
	d2, _ := tuOrigin(t, "", 1<<20, 4)
	opts.NoWriterPriority = true
	s2 := tuSnap(t, []*Device{d2}, StorageConfig{}, opts)
	if got := s2.BackupNice(); got != 0 {
		t.Errorf("BackupNice %d with writer priority off, want 0", got)
	}
	q, err := NewQueue(1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, n := range []int{-1, 20} {
		if err := q.ServeBackup(n); err == nil || !strings.Contains(err.Error(), "backup_nice") {
			t.Errorf("ServeBackup(%d): %v, want a backup_nice error", n, err)
		}
	}
	bad := tuOpts(16, 4)
	bad.BackupNice = 20
	if _, err := NewSnapshot([]*Device{d2}, StorageConfig{Path: t.TempDir(), Limit: 1 << 30}, bad); err == nil || !strings.Contains(err.Error(), "backup_nice 20") {
		t.Errorf("NewSnapshot with backup_nice 20: %v", err)
	}
}
