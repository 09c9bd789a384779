package engine

// This file: the request and chunk state machines, each with the one
// function that changes the state. The diagrams are in doc.go.

import (
	"fmt"

	"github.com/snapring/snapring/internal/invariants"
)

// reqState is where a request is in its queue (see doc.go, "Request
// states"). Only the owning queue's goroutine reads or changes it.
type reqState uint8

const (
	reqIdle     reqState = iota // not submitted, or returned by Poll or TakeDone
	reqActive                   // walking its chunks; chunk I/O of its own may be pending
	reqParked                   // waiting on a chunk, for a chunk buffer, or for Take
	reqIssued                   // its own origin I/O is on the ring; only that completion is left
	reqPunching                 // a write-zeroes the file refused, retried as a punched hole
	reqDone                     // finished, in the queue's done list until it is returned
)

var reqStateNames = [...]string{"idle", "active", "parked", "issued", "punching", "done"}

func (s reqState) String() string {
	if int(s) < len(reqStateNames) {
		return reqStateNames[s]
	}
	return fmt.Sprintf("reqState(%d)", int(s))
}

// reqNext holds, per state, the states a request may move to. Done is
// reachable from every live state: a closing queue fails what it holds.
var reqNext = [...]uint8{
	reqIdle:     1 << reqActive,
	reqActive:   1<<reqParked | 1<<reqIssued | 1<<reqDone,
	reqParked:   1<<reqActive | 1<<reqDone,
	reqIssued:   1<<reqPunching | 1<<reqDone,
	reqPunching: 1 << reqDone,
	reqDone:     1 << reqIdle,
}

// to moves r to state s; invariants builds panic on a transition the
// diagram does not have.
func (r *Request) to(s reqState) {
	if invariants.Enabled && reqNext[r.state]&(1<<s) == 0 {
		panic(fmt.Sprintf("engine: request %s at %d: illegal transition %s -> %s", r.Op, r.Off, r.state, s))
	}
	r.state = s
}

// parkKind says which list a parked request waits on.
type parkKind uint8

const (
	parkChunk  parkKind = iota + 1 // a chunk's wait list (its bucket), for waitChunk
	parkBuffer                     // the area's buffer pool, for a free chunk buffer
	parkTake                       // the device's Take barrier
	parkGate                       // the snapshot's read gate (image reads; gate.go)
)

// reqHolds is what a live request holds and must give back when it
// finishes.
type reqHolds uint8

const (
	// holdInflight: an origin write counted in Device.inflight (Take's
	// barrier waits for it).
	holdInflight reqHolds = 1 << iota
	// holdSnapshot: a reference on the snapshot (Done waits for it).
	holdSnapshot
	// holdAdmitted: an image read let in by the read gate (counted in
	// readGate.admitted).
	holdAdmitted
)

// settled reports whether an image request (or a copy-on-write write's
// chunk phase) has nothing left in flight and nothing left to walk: the one
// test of "this request can finish now".
func (r *Request) settled() bool {
	return r.pending == 0 && r.state == reqActive && (r.next > r.last || r.Err != nil)
}

type chunkState uint8

// Chunk states (see doc.go, "Chunk states"). Loading is a chunk being read
// into a buffer (from the original, or from the difference storage for an
// image write); storing is a buffer being written to the difference
// storage. Only chunk.to changes a chunk's state, under the chunk's lock.
const (
	stateNew chunkState = iota
	stateLoading
	stateInMemory
	stateStoring
	stateStored
	stateFailed
)

var chunkStateNames = [...]string{"new", "loading", "in memory", "storing", "stored", "failed"}

func (s chunkState) String() string {
	if int(s) < len(chunkStateNames) {
		return chunkStateNames[s]
	}
	return fmt.Sprintf("chunkState(%d)", int(s))
}

// chunkNext holds, per state, the states a chunk may move to.
var chunkNext = [...]uint8{
	stateNew:      1<<stateLoading | 1<<stateInMemory,                 // copy-on-write or image write; a whole-chunk image write
	stateLoading:  1<<stateInMemory | 1<<stateNew | 1<<stateFailed,    // loaded; the original's read failed; the storage's read failed
	stateInMemory: 1 << stateStoring,                                  // a store worker took it
	stateStoring:  1<<stateStored | 1<<stateInMemory | 1<<stateFailed, // written; dirtied meanwhile; the write failed
	stateStored:   1 << stateLoading,                                  // an image write loads it back
	stateFailed:   0,
}

// to moves c to state s. Called with c.mu held; invariants builds panic on
// a transition the diagram does not have, or when the lock is free.
func (c *chunk) to(s chunkState) {
	if invariants.Enabled {
		if chunkNext[c.state]&(1<<s) == 0 {
			panic(fmt.Sprintf("engine: chunk: illegal transition %s -> %s", c.state, s))
		}
		if c.mu.TryLock() {
			c.mu.Unlock()
			panic(fmt.Sprintf("engine: chunk: transition %s -> %s without the chunk's lock", c.state, s))
		}
	}
	c.state = s
}
