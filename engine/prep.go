package engine

// This file: SQE preparation, the one place requests' I/O reaches a ring.

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// prepRW queues a read or write, or the injected fault that replaces it.
func (q *Queue) prepRW(r *Request, k kind, delta int64, target FaultTarget, d *Device, fd int32, buf []byte, off int64, write bool) {
	r.pending++
	var errno unix.Errno
	if f, ok := r.faults().match(target, d, write, off, int64(len(buf))); ok {
		if f.Errno != 0 {
			errno = f.Errno
		} else {
			buf = buf[:len(buf)/2]
		}
	}
	s := q.sqe(packUD(r.slot, k, delta, errno))
	q.lastSQE = s
	switch {
	case errno != 0:
		s.PrepNop()
	case write:
		s.PrepWrite(fd, buf, uint64(off))
	default:
		s.PrepRead(fd, buf, uint64(off))
	}
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

func (r *Request) faults() *FaultPlan {
	if r.area != nil {
		return r.area.snap.faults
	}
	if r.Device != nil {
		if a := r.Device.area.Load(); a != nil {
			return a.snap.faults
		}
	}
	return nil
}
