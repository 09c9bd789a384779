package engine

// This file: parked requests handed back to their queue (the eventfd
// doorbell or the host's wake-up) and resumed there.

import (
	"golang.org/x/sys/unix"
)

// wake hands a parked request back to its queue. from is the queue whose
// goroutine is calling (nil for others): a queue waking its own request
// needs no eventfd.
func (q *Queue) wake(r *Request, from *Queue) {
	if from == q {
		q.local = append(q.local, r)
		return
	}
	q.readyMu.Lock()
	// Only the first wake-up since the queue last took its ready list needs
	// to ring: the queue takes the whole list when it answers.
	notify := len(q.ready) == 0
	q.ready = append(q.ready, r)
	if notify && q.host == nil {
		// Under the lock: once r is in the list the queue may resume and
		// complete it, and its owner Close the queue, before a write after
		// Unlock — which would then go to whatever file reused the number.
		var one = [8]byte{1}
		unix.Write(q.efd, one[:]) //nolint:errcheck // EAGAIN means a wakeup is already pending
	}
	q.readyMu.Unlock()
	if notify && q.host != nil {
		q.host.Wake() // the host guards its own doorbell against Close
	}
}

func (q *Queue) resume(r *Request) {
	r.to(reqActive)
	switch r.Op {
	case OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes:
		if r.holds&holdInflight == 0 {
			q.startOriginWrite(r)
			return
		}
		q.advanceCOW(r)
	case OpImageRead, OpImageWrite:
		if r.Op == OpImageRead && !q.admit(r) {
			return
		}
		q.advanceImage(r)
	}
}

// runReady resumes requests woken since the last look.
func (q *Queue) runReady() {
	for {
		q.readyMu.Lock()
		q.spare, q.ready = q.ready, q.spare[:0]
		q.readyMu.Unlock()
		q.spare = append(q.spare, q.local...)
		q.local = q.local[:0]
		if len(q.spare) == 0 {
			return
		}
		for i, r := range q.spare {
			q.spare[i] = nil
			q.resume(r)
		}
		q.spare = q.spare[:0]
	}
}
