package engine

import (
	"sync"

	"golang.org/x/sys/unix"
)

// FaultTarget says which I/O a Fault applies to.
type FaultTarget int

const (
	// FaultOrigin: reads and writes of an original device (including the
	// copy-on-write reads of chunks).
	FaultOrigin FaultTarget = iota + 1
	// FaultDiffStorage: reads and writes of the difference storage.
	FaultDiffStorage
)

// Fault is one injected failure: an I/O of the given kind and direction
// overlapping [Off, Off+Len) fails with Errno, or (Short) moves only half
// its bytes. Len 0 matches any offset. Times 0 means every match.
type Fault struct {
	Target FaultTarget
	Device *Device // for FaultOrigin: nil matches every device
	Write  bool
	Off    int64
	Len    int64
	Errno  unix.Errno
	Short  bool
	Times  int
}

// FaultPlan is a set of faults on reads and writes, an Injector
// (Options.Faults puts it in front of Options.Inject). The injected result
// replaces the I/O, which is not issued (a short fault issues half of it).
// A Fault's Device filters FaultOrigin I/O only.
type FaultPlan struct {
	mu     sync.Mutex
	faults []Fault
	hits   int
}

// Add appends a fault.
func (p *FaultPlan) Add(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// Clear removes all faults.
func (p *FaultPlan) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Hits counts injected faults.
func (p *FaultPlan) Hits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

func (p *FaultPlan) match(t FaultTarget, d *Device, write bool, off, n int64) (Fault, bool) {
	if p == nil {
		return Fault{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.faults {
		f := &p.faults[i]
		if f.Target != t || f.Write != write || (t == FaultOrigin && f.Device != nil && f.Device != d) {
			continue
		}
		if f.Len != 0 && (off+n <= f.Off || off >= f.Off+f.Len) {
			continue
		}
		if f.Times < 0 {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				f.Times = -1
			}
		}
		p.hits++
		return *f, true
	}
	return Fault{}, false
}

// Inject is the plan as an Injector: it sees reads and writes only; a
// matching fault with no errno is a short I/O.
func (p *FaultPlan) Inject(io FaultIO) (Injection, bool) {
	if io.Op != FaultRead && io.Op != FaultWrite {
		return Injection{}, false
	}
	d := io.Device
	if io.Target != FaultOrigin {
		d = nil
	}
	f, ok := p.match(io.Target, d, io.Op == FaultWrite, io.Off, io.Len)
	if !ok {
		return Injection{}, false
	}
	return Injection{Errno: f.Errno, Short: f.Errno == 0}, true
}
