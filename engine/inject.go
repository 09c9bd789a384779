package engine

// This file: the fault-injection seam (in the style of pebble's
// vfs/errorfs). Every engine I/O — reads, writes, discard, write-zeroes,
// flush, and the difference storage's fallocates — is described as a
// FaultIO and shown to the snapshot's Injector before it is issued; an
// injected result replaces the I/O. Injectors compose: match by operation,
// target, device or offset range, fire on the nth call, a number of times,
// or at random from a seed.

import (
	"math/rand"
	"sync"

	"golang.org/x/sys/unix"
)

// FaultOp is the kind of an engine I/O, as the fault seam sees it.
type FaultOp uint8

// Engine I/O operations.
const (
	FaultRead        FaultOp = iota + 1 // origin reads, chunk loads, image reads
	FaultWrite                          // origin writes, chunk stores to the difference storage
	FaultDiscard                        // an origin discard (fallocate PUNCH_HOLE)
	FaultWriteZeroes                    // an origin write-zeroes (fallocate ZERO_RANGE, or its punched-hole retry)
	FaultFlush                          // an origin flush (fsync)
	FaultGrow                           // the difference storage growing by a portion (fallocate)
	FaultFallocate                      // allocating a file appended to the difference storage (fallocate)
)

var faultOpNames = [...]string{"", "read", "write", "discard", "write-zeroes", "flush", "grow", "fallocate"}

func (op FaultOp) String() string {
	if int(op) < len(faultOpNames) && op != 0 {
		return faultOpNames[op]
	}
	return "fault-op(?)"
}

// FaultIO describes one I/O the engine is about to issue.
type FaultIO struct {
	Op     FaultOp
	Target FaultTarget
	// Device is the original device the I/O is for: the device itself for
	// origin I/O, the device whose chunk it holds for difference-storage
	// reads and writes, nil for the storage's growth and allocation.
	Device *Device
	Off    int64 // in the file or device the I/O goes to
	Len    int64
}

// Injection is what an injector does to an I/O: fail it with Errno, or
// (Short, reads and writes only) let it move half its bytes. A Short
// injection on another operation fails it with EIO.
type Injection struct {
	Errno unix.Errno
	Short bool
}

// errno is the error an injection stands for when it cannot be short.
func (inj Injection) errno() unix.Errno {
	if inj.Errno != 0 {
		return inj.Errno
	}
	return unix.EIO
}

// An Injector decides, for each engine I/O, whether to replace it with an
// injected result. It is called from any goroutine (queues, store workers,
// the storage's grower) and must be safe for concurrent use.
type Injector interface {
	Inject(io FaultIO) (Injection, bool)
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(io FaultIO) (Injection, bool)

// Inject calls f.
func (f InjectorFunc) Inject(io FaultIO) (Injection, bool) { return f(io) }

// FailWith injects errno into every I/O it sees.
func FailWith(errno unix.Errno) Injector {
	return InjectorFunc(func(FaultIO) (Injection, bool) { return Injection{Errno: errno}, true })
}

// ShortIO makes every read and write it sees move half its bytes (and
// fails other operations with EIO).
func ShortIO() Injector {
	return InjectorFunc(func(FaultIO) (Injection, bool) { return Injection{Short: true}, true })
}

// FaultMatch selects I/Os.
type FaultMatch func(io FaultIO) bool

// OnOps matches I/Os of any of ops.
func OnOps(ops ...FaultOp) FaultMatch {
	return func(io FaultIO) bool {
		for _, op := range ops {
			if io.Op == op {
				return true
			}
		}
		return false
	}
}

// OnTarget matches I/Os to the originals or to the difference storage.
func OnTarget(t FaultTarget) FaultMatch { return func(io FaultIO) bool { return io.Target == t } }

// OnDevice matches I/Os for one original device.
func OnDevice(d *Device) FaultMatch { return func(io FaultIO) bool { return io.Device == d } }

// InRange matches I/Os overlapping [off, off+n).
func InRange(off, n int64) FaultMatch {
	return func(io FaultIO) bool { return io.Off < off+n && off < io.Off+max(io.Len, 1) }
}

// AllOf matches I/Os every one of ms matches.
func AllOf(ms ...FaultMatch) FaultMatch {
	return func(io FaultIO) bool {
		for _, m := range ms {
			if !m(io) {
				return false
			}
		}
		return true
	}
}

// If passes to inj only the I/Os m matches.
func If(m FaultMatch, inj Injector) Injector {
	return InjectorFunc(func(io FaultIO) (Injection, bool) {
		if !m(io) {
			return Injection{}, false
		}
		return inj.Inject(io)
	})
}

// counter is a mutex-guarded count shared by the counting injectors.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

// OnNth passes to inj only the nth I/O (1-based) that reaches it.
func OnNth(n int, inj Injector) Injector {
	c := &counter{}
	return InjectorFunc(func(io FaultIO) (Injection, bool) {
		if c.next() != n {
			return Injection{}, false
		}
		return inj.Inject(io)
	})
}

// Times lets inj inject at most n times.
func Times(n int, inj Injector) Injector {
	c := &counter{}
	return InjectorFunc(func(io FaultIO) (Injection, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.n >= n {
			return Injection{}, false
		}
		got, ok := inj.Inject(io)
		if ok {
			c.n++
		}
		return got, ok
	})
}

// Randomly passes each I/O to inj with probability p, drawn from a source
// seeded with seed: the same seed and the same sequence of I/Os inject the
// same faults.
func Randomly(p float64, seed int64, inj Injector) Injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(seed))
	return InjectorFunc(func(io FaultIO) (Injection, bool) {
		mu.Lock()
		hit := rng.Float64() < p
		mu.Unlock()
		if !hit {
			return Injection{}, false
		}
		return inj.Inject(io)
	})
}

// AnyOf asks each injector in turn; the first that injects wins.
func AnyOf(injs ...Injector) Injector {
	return InjectorFunc(func(io FaultIO) (Injection, bool) {
		for _, inj := range injs {
			if got, ok := inj.Inject(io); ok {
				return got, true
			}
		}
		return Injection{}, false
	})
}

// Counted counts the faults inj injected; Hits reports them.
type Counted struct {
	Injector
	mu   sync.Mutex
	hits int
}

// Inject passes io to the wrapped injector and counts what it injects.
func (c *Counted) Inject(io FaultIO) (Injection, bool) {
	got, ok := c.Injector.Inject(io)
	if ok {
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
	}
	return got, ok
}

// Hits is how many faults were injected.
func (c *Counted) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// snapshotInjector combines Options.Faults and Options.Inject.
func snapshotInjector(o *Options) Injector {
	switch {
	case o.Faults != nil && o.Inject != nil:
		return AnyOf(o.Faults, o.Inject)
	case o.Faults != nil:
		return o.Faults
	}
	return o.Inject
}

// injectedRes is the result an injected fault gives one SQE, found again by
// its user_data when the NOP that replaced the I/O completes.
type injectedRes struct {
	ud  uint64
	res int32
}
