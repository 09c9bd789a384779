package engine

import (
	"fmt"
	"io"
	"sync"
)

// live holds every open polled Queue, for WriteState.
var live struct {
	sync.Mutex
	queues map[*Queue]struct{}
}

func registerQueue(q *Queue, add bool) {
	live.Lock()
	defer live.Unlock()
	if live.queues == nil {
		live.queues = map[*Queue]struct{}{}
	}
	if add {
		live.queues[q] = struct{}{}
	} else {
		delete(live.queues, q)
	}
}

// WriteState writes what every open queue is doing: each request in flight
// with its progress (chunks, I/O pending, parked or not), the state of the
// chunk it is at, and its area's buffer pool. It is for a process that
// hangs (the run watchdog calls it): it reads the queues' fields without
// their owners' cooperation, and takes chunk and pool locks only if they
// are free (a lock held for good is itself the answer, and is said).
func WriteState(w io.Writer) {
	live.Lock()
	qs := make([]*Queue, 0, len(live.queues))
	for q := range live.queues {
		qs = append(qs, q)
	}
	live.Unlock()
	for i, q := range qs {
		q.writeState(w, i)
	}
}

func (q *Queue) writeState(w io.Writer, i int) {
	readyN := -1
	if q.readyMu.TryLock() {
		readyN = len(q.ready)
		q.readyMu.Unlock()
	}
	fmt.Fprintf(w, "  queue %d: %d live, %d done, doorbell armed %v, %d woken not yet run (-1: lock held), %d SQEs unsubmitted\n",
		i, q.live, len(q.done), q.armed, readyN, q.ring.Pending())
	for _, r := range q.slots {
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "    slot %d: %s at %d+%d: %s, pending %d, counted %v, err %v",
			r.slot, r.Op, r.Off, r.length(), r.state, r.pending, r.holds&holdInflight != 0, r.Err)
		if a := r.area; a != nil {
			fmt.Fprintf(w, ", chunks %d..%d next %d", r.first, r.last, r.next)
			if r.state == reqParked {
				fmt.Fprintf(w, ", waiting on chunk %d", r.waitChunk)
			}
			n := min(r.next, r.last)
			if r.state == reqParked {
				n = r.waitChunk
			}
			if n >= 0 && n < a.nChunks {
				c := &a.chunks[n]
				if c.mu.TryLock() {
					fmt.Fprintf(w, " (chunk %d: %s, flags %#x, readers %d)", n, c.state, c.flags, c.readers)
					c.mu.Unlock()
				} else {
					fmt.Fprintf(w, " (chunk %d: lock held)", n)
				}
			}
			if a.pool.TryLock() {
				fmt.Fprintf(w, "; pool: %d free, %d waiting, in memory %d, snapshot destroyed %v",
					len(a.pool.free), len(a.pool.waiters), a.inMemory.Load(), a.snap.destroyed.Load())
				a.pool.Unlock()
			} else {
				fmt.Fprint(w, "; pool lock held")
			}
		}
		fmt.Fprintln(w)
	}
}
