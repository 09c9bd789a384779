package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind says what happened.
type EventKind int

// Event kinds, as blksnap raises them.
const (
	// EventLowFreeSpace: what is left of the difference storage dropped below
	// half a portion. In file mode the engine grows the file right after;
	// with fixed ranges, append more with Snapshot.AppendStorage.
	EventLowFreeSpace EventKind = iota + 1
	// EventNoSpace: the storage is at its limit and cannot grow.
	EventNoSpace
	// EventOverflow: a chunk could not get a region; the snapshot overflowed.
	EventOverflow
	// EventCorrupted: a device's image is no longer valid (Err says why).
	EventCorrupted
)

func (k EventKind) String() string {
	switch k {
	case EventLowFreeSpace:
		return "low-free-space"
	case EventNoSpace:
		return "no-space"
	case EventOverflow:
		return "overflow"
	case EventCorrupted:
		return "corrupted"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one notification from a snapshot.
type Event struct {
	Kind   EventKind
	Time   time.Time
	Device string // the original device's path, for Overflow and Corrupted
	// RequestedBytes is the growth asked for (LowFreeSpace) or the region
	// that could not be had (NoSpace, Overflow).
	RequestedBytes int64
	Err            error
}

func (e Event) String() string {
	s := e.Kind.String()
	if e.Device != "" {
		s += " device=" + e.Device
	}
	if e.RequestedBytes != 0 {
		s += fmt.Sprintf(" requested=%d", e.RequestedBytes)
	}
	if e.Err != nil {
		s += " err=" + e.Err.Error()
	}
	return s
}

// eventQueue is bounded: an event that does not fit is counted and dropped,
// never blocking the I/O path that raised it. It is closed when its
// snapshot is finalized; an event raised after that is dropped.
type eventQueue struct {
	mu      sync.Mutex // orders raise against close
	closed  bool
	ch      chan Event
	dropped atomic.Int64
}

func newEventQueue(n int) *eventQueue { return &eventQueue{ch: make(chan Event, n)} }

func (q *eventQueue) raise(e Event) {
	e.Time = time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.dropped.Add(1)
		return
	}
	select {
	case q.ch <- e:
	default:
		q.dropped.Add(1)
	}
}

// close ends the channel: a consumer ranging over Events stops once it has
// read what was queued.
func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}
