package ioflusher

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"42 (snapring) S 1 42 42 0 -1 4194560 100 0", 4194560, true},
		{"42 (a b) c)) R 1 42 42 0 -1 1581120 1", 1581120, true},
		{"42 (x) S 1 2", 0, false},
		{"42 x S 1 2 3 4 5 6", 0, false},
		{"42 (x) S 1 42 42 0 -1 notanumber", 0, false},
	} {
		got, err := parseFlags("stat", []byte(c.stat))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %d, %v; want %d (ok %v)", c.stat, got, err, c.want, c.ok)
		}
	}
}

// TestSet: on a thread of its own (it ends with the goroutine, taking the
// flag with it), Set marks the thread, Get and /proc agree; without
// CAP_SYS_RESOURCE Set (and Get) fail with EPERM and the thread is
// unchanged. In the VM (root with every capability) it must not skip.
func TestSet(t *testing.T) {
	type result struct {
		setErr   error
		got      bool
		getErr   error
		proc     bool
		procErr  error
		procPrev bool
		clearErr error
		cleared  bool
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		var r result
		tid := unix.Gettid()
		r.procPrev, _ = ThreadIsFlusher(tid)
		r.setErr = Set()
		r.got, r.getErr = Get()
		r.proc, r.procErr = ThreadIsFlusher(tid)
		if r.setErr == nil {
			r.clearErr = Clear()
			flags, _ := ThreadIsFlusher(tid)
			r.cleared = !flags
		}
		ch <- r
	}()
	r := <-ch
	if r.procErr != nil {
		t.Fatalf("/proc: %v", r.procErr)
	}
	if r.getErr != nil && (r.setErr == nil || !errors.Is(r.getErr, unix.EPERM)) {
		t.Fatalf("Get: %v (Set: %v)", r.getErr, r.setErr)
	}
	if r.procPrev {
		t.Fatal("a fresh thread is already an I/O flusher")
	}
	if r.setErr != nil {
		if !errors.Is(r.setErr, unix.EPERM) && !errors.Is(r.setErr, unix.EINVAL) {
			t.Fatalf("Set: %v", r.setErr)
		}
		if r.proc {
			t.Fatal("Set failed but the thread is an I/O flusher")
		}
		if FirstError() == nil {
			t.Fatal("Set failed but FirstError is nil")
		}
		if os.Getenv("SNAPRING_VM") == "1" {
			t.Fatalf("Set in the VM: %v", r.setErr)
		}
		t.Skipf("no CAP_SYS_RESOURCE here: %v", r.setErr)
	}
	if !r.got || !r.proc {
		t.Fatalf("after Set: PR_GET_IO_FLUSHER %v, /proc flags %v; want both true", r.got, r.proc)
	}
	if r.clearErr != nil || !r.cleared {
		t.Fatalf("after Clear (%v): the thread is still an I/O flusher", r.clearErr)
	}
}
