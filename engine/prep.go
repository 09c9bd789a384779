package engine

// This file: SQE preparation, the one place requests' I/O reaches a ring,
// through the fault seam (inject.go).

import (
	"fmt"

	"github.com/snapring/snapring/uring"
)

// prepIO queues one I/O of r described by fio (on fd, into or from buf;
// mode is the fallocate mode of a discard or write-zeroes). The snapshot's
// injector sees it first: a short injection halves a read or write, any
// other replaces the I/O with a NOP whose result complete substitutes.
func (q *Queue) prepIO(r *Request, k kind, delta int64, fio FaultIO, fd int32, buf []byte, mode uint32) {
	r.pending++
	ud := packUD(r.slot, k, delta)
	// The request's own data in a host ring's fixed buffer (Request.Fixed):
	// n bytes from the slot's start.
	fixed := k == kindOriginIO && r.Fixed
	n := uint32(len(buf))
	if fixed {
		n = uint32(r.Len)
	}
	if inj := r.injector(); inj != nil {
		if got, ok := inj.Inject(fio); ok {
			if got.Errno == 0 && got.Short && (fio.Op == FaultRead || fio.Op == FaultWrite) {
				n /= 2
				if !fixed {
					buf = buf[:n]
				}
			} else {
				q.injected = append(q.injected, injectedRes{ud: ud, res: -int32(got.errno())})
				s := q.sqe(ud)
				q.lastSQE = s
				s.PrepNop()
				return
			}
		}
	}
	s := q.sqe(ud)
	q.lastSQE = s
	switch fio.Op {
	case FaultRead:
		if fixed {
			s.PrepReadFixedAt(fd, 0, n, uint64(fio.Off), r.BufIndex)
		} else {
			s.PrepRead(fd, buf, uint64(fio.Off))
		}
	case FaultWrite:
		if fixed {
			s.PrepWriteFixedAt(fd, 0, n, uint64(fio.Off), r.BufIndex)
		} else {
			s.PrepWrite(fd, buf, uint64(fio.Off))
		}
	case FaultDiscard, FaultWriteZeroes:
		s.PrepFallocate(fd, mode, uint64(fio.Off), uint64(fio.Len))
	case FaultFlush:
		s.PrepFsync(fd, 0)
	default:
		panic(fmt.Sprintf("engine: prepIO of %s", fio.Op))
	}
	if q.host == nil && (fio.Op == FaultRead || fio.Op == FaultWrite) {
		// Buffered file I/O may wait in io-wq's hashed work: a wait on the
		// queue's own ring kicks io-wq while it is in flight (uring's
		// "Stalled io-wq work"). A host's ring is its own to mark.
		q.ring.MarkIOWQ(s)
	}
}

// injectedResult returns the injected result of the SQE ud, if a fault
// replaced it, or res. Only called while faults are pending (rare).
func (q *Queue) injectedResult(ud uint64, res int32) int32 {
	for i, in := range q.injected {
		if in.ud == ud {
			last := len(q.injected) - 1
			q.injected[i] = q.injected[last]
			q.injected = q.injected[:last]
			return in.res
		}
	}
	return res
}

// sqe returns an SQE whose completion comes back to complete with ud: from
// the queue's own ring, or from its host's.
func (q *Queue) sqe(ud uint64) *uring.SQE {
	var s *uring.SQE
	var err error
	if q.host != nil {
		s, err = q.host.SQE(ud)
	} else if s, err = q.ring.NextSQE(); err == nil {
		s.SetUserData(ud)
	}
	if err != nil {
		panic(fmt.Sprintf("engine: no SQE: %v", err)) // rings are sized for their queues
	}
	return s
}

// injector is the fault seam of r's snapshot, if it has one.
func (r *Request) injector() Injector {
	if r.area != nil {
		return r.area.snap.inject
	}
	if r.Device != nil {
		if a := r.Device.area.Load(); a != nil {
			return a.snap.inject
		}
	}
	return nil
}
