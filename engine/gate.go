package engine

// This file: the read gate, which puts the application's writes before the
// backup's reads, and the user's image-read throttle.
//
// A backup reading the image competes with the application for the same
// CPUs: on a 2-vCPU machine an unthrottled 1 MiB scan took the CPU the store
// worker needed, writers parked behind a full in-memory budget, and an
// open-loop writer's backlog grew for seconds (origin-write p99 3.6 s against
// 7 ms raw). So image reads are admitted through a gate. It is open while
// copy-on-write keeps up. It closes while an origin write waits for a chunk
// buffer (the in-memory budget is exhausted) or a device's buffers are all
// in use (the store queue is full): then at most minAdmittedReads image
// reads run at once, enough for the backup to go on, and the rest wait until
// a store frees a buffer. Readers wait; writers do not wait for readers.
// Options.ImageReadBytesPerSecond adds a throttle, as backup agents offer.
//
// The gate also decides how wide a large image read may fan out. On a file
// system whose reads go to io-wq (tmpfs), the segments of one read marked
// ASYNC run on as many kernel workers at once (asyncIfLarge): the backup
// then reads faster than raw, but its workers outnumber the application's
// one thread for the CPUs, and on 2 vCPUs the application's write p99 paid
// for it. So while the application writes (an origin write within the last
// writerQuiet), image reads do not fan out: a backup gets at most its own
// share of the CPUs, as a raw reader does; alone, it reads at full width.
// A backup's queue on a lowered priority (Queue.ServeBackup) always fans
// out: its workers yield to the application's thread by themselves.

import (
	"sync"
	"sync/atomic"
	"time"
)

// minAdmittedReads image reads may run while the gate is closed, so that a
// backup under constant write pressure still progresses.
const minAdmittedReads = 1

type readGate struct {
	snap     *Snapshot
	priority bool  // Options.WriterPriority
	rate     int64 // bytes per second; 0: no throttle

	// cowWaiting counts origin writes parked for a chunk buffer; admitted
	// the image reads running; waiting mirrors len(mu.waiters) so the
	// common case takes no lock.
	cowWaiting atomic.Int64
	admitted   atomic.Int64
	waiting    atomic.Int64
	// writes counts origin writes (with priority on), so that readers see
	// whether the application is writing (fanOut).
	writes atomic.Int64

	mu struct {
		sync.Mutex
		// waiters are image reads parked at the gate; each request parks at
		// most once at a time, so the list is bounded by the queues' depths.
		waiters []*Request
		spare   []*Request // the other list, swapped in when all are woken
		tokens  float64    // throttle: bytes that may be read now
		last    time.Time
		timer   *time.Timer // throttle: wakes the waiters when tokens are due
		stopped bool
	}
}

func newReadGate(s *Snapshot, opts *Options) *readGate {
	g := &readGate{snap: s, priority: !opts.NoWriterPriority, rate: opts.ImageReadBytesPerSecond}
	g.mu.last = time.Now()
	g.mu.tokens = float64(g.burst())
	return g
}

// burst is the most the throttle lets through at once: 50 ms of the rate,
// and at least one 1 MiB read.
func (g *readGate) burst() int64 { return max(g.rate/20, 1<<20) }

// pressure reports whether copy-on-write is falling behind: an origin write
// waits for a buffer, or a device has none free.
func (g *readGate) pressure() bool {
	if !g.priority {
		return false
	}
	if g.cowWaiting.Load() > 0 {
		return true
	}
	for _, a := range g.snap.areas {
		if a.inMemory.Load() >= int64(g.snap.opts.ChunkMaximumInQueue) {
			return true
		}
	}
	return false
}

// writerQuiet is how long after the last origin write image reads may fan
// out again.
const writerQuiet = 100 * time.Millisecond

// wrote records an origin write (for fanOut).
func (g *readGate) wrote() {
	if g.priority {
		g.writes.Add(1)
	}
}

// fanOut reports whether q may run the segments of a large image read on
// several io-wq workers at once: not while the application writes. Writes
// count as the application's only when they came between two looks of
// this queue less than writerQuiet apart: a backup that starts after the
// last write (a reader's first look, or one after a pause) is not held
// back by writes long past, and an application writing beside a reading
// backup shows between its reads.
func (q *Queue) fanOut(g *readGate) bool {
	if !g.priority || q.backup {
		return true
	}
	now := time.Now()
	if w := g.writes.Load(); w != q.gateWrites {
		q.gateWrites = w
		if now.Sub(q.lastLook) < writerQuiet {
			q.writerSeen = now
		}
	}
	q.lastLook = now
	return now.Sub(q.writerSeen) >= writerQuiet
}

// admit lets image read r in, or parks it at the gate and returns false.
func (q *Queue) admit(r *Request) bool {
	g := r.area.snap.gate
	if r.holds&holdAdmitted != 0 {
		return true
	}
	if g.rate == 0 && !g.pressure() && g.waiting.Load() == 0 {
		g.admitted.Add(1)
		r.holds |= holdAdmitted
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopped || g.mayAdmitLocked(r) {
		g.admitted.Add(1)
		r.holds |= holdAdmitted
		return true
	}
	r.to(reqParked)
	r.parkedOn = parkGate
	g.mu.waiters = append(g.mu.waiters, r)
	g.waiting.Add(1)
	g.armTimerLocked()
	return false
}

// mayAdmitLocked decides for one read, taking its bytes from the throttle.
func (g *readGate) mayAdmitLocked(r *Request) bool {
	if g.pressure() && g.admitted.Load() >= minAdmittedReads {
		return false
	}
	if g.rate == 0 {
		return true
	}
	now := time.Now()
	g.mu.tokens = min(g.mu.tokens+float64(g.rate)*now.Sub(g.mu.last).Seconds(), float64(g.burst()))
	g.mu.last = now
	if g.mu.tokens <= 0 {
		return false
	}
	g.mu.tokens -= float64(r.length())
	return true
}

// armTimerLocked makes the throttle wake the waiters when tokens are due
// again: one timer per snapshot, never a spin.
func (g *readGate) armTimerLocked() {
	if g.rate == 0 || g.mu.timer != nil || g.mu.stopped {
		return
	}
	wait := time.Duration(float64(time.Second) * (1 - g.mu.tokens) / float64(g.rate))
	wait = max(wait, time.Millisecond)
	g.mu.timer = time.AfterFunc(wait, func() {
		g.mu.Lock()
		g.mu.timer = nil
		g.mu.Unlock()
		g.reopen(nil)
	})
}

// reopen wakes the waiters when the gate may let some in: all of them when
// it is open (each checks again on its queue), one when only the minimum
// may run. Called when a store frees a buffer, when an admitted read
// finishes, and by the throttle's timer.
func (g *readGate) reopen(from *Queue) {
	if g.waiting.Load() == 0 {
		return
	}
	if g.pressure() && g.admitted.Load() >= minAdmittedReads {
		return
	}
	g.mu.Lock()
	w := g.mu.waiters
	if len(w) == 0 {
		g.mu.Unlock()
		return
	}
	if g.pressure() && !g.mu.stopped {
		// Only the minimum may run: the oldest waiter.
		r := w[0]
		copy(w, w[1:])
		w[len(w)-1] = nil
		g.mu.waiters = w[:len(w)-1]
		g.waiting.Add(-1)
		g.mu.Unlock()
		r.q.wake(r, from)
		return
	}
	// Swap the list for the spare one, so that admit appending under the
	// lock never touches the array woken outside it.
	g.mu.waiters = g.mu.spare[:0]
	g.mu.spare = nil
	g.waiting.Store(0)
	g.mu.Unlock()
	for i, r := range w {
		w[i] = nil
		r.q.wake(r, from)
	}
	g.mu.Lock()
	if g.mu.spare == nil {
		g.mu.spare = w[:0]
	}
	g.mu.Unlock()
}

// leftBufferWait is called when r leaves a buffer pool's wait list.
func (g *readGate) leftBufferWait(r *Request) {
	if r.Op != OpImageWrite {
		g.cowWaiting.Add(-1)
	}
}

// done is called when an admitted read finishes.
func (g *readGate) done(from *Queue) {
	g.admitted.Add(-1)
	g.reopen(from)
}

// stop lets everything through from now on and wakes the waiters (the
// snapshot is being destroyed: they fail with ErrClosed).
func (g *readGate) stop() {
	g.mu.Lock()
	g.mu.stopped = true
	if g.mu.timer != nil {
		g.mu.timer.Stop()
		g.mu.timer = nil
	}
	g.mu.Unlock()
	g.reopen(nil)
}

// unlinkGate takes r off the gate's list (Queue.Close).
func (g *readGate) unlink(r *Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if removeRequest(&g.mu.waiters, r) {
		g.waiting.Add(-1)
		return true
	}
	return false
}
