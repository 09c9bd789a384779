package engine

// This file: completion dispatch (a CQE back to its request).

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// complete handles one CQE.
func (q *Queue) complete(c uring.CQE) {
	slot, k, delta := unpackUD(c.UserData)
	if k == kindEvent {
		// The wake-ups themselves are in the ready list; the count is
		// only a doorbell.
		q.armed = false
		return
	}
	res := c.Res
	if len(q.injected) != 0 {
		res = q.injectedResult(c.UserData, res)
	}
	r := q.slots[slot]
	r.pending--
	switch k {
	case kindOriginIO:
		if r.Op == OpOriginWriteZeroes && res == -int32(unix.EOPNOTSUPP) && r.state == reqIssued {
			// No ZERO_RANGE here (tmpfs): a punched hole reads as zeroes too.
			r.to(reqPunching)
			q.prepIO(r, kindOriginIO, 0, FaultIO{Op: FaultWriteZeroes, Target: FaultOrigin, Device: r.Device, Off: r.Off, Len: r.Len}, r.Device.fd, nil, punchHole)
			return
		}
		var err error
		switch {
		case r.linked && res == -int32(unix.ECANCELED):
			// Its load failed (the load's CQE carries why) and the write
			// never ran: the original is untouched.
			if r.Err == nil && r.pending == 0 {
				err = fmt.Errorf("engine: %s %s at %d: its chunk's load failed: %w", r.Op, r.Device.path, r.Off, unix.ECANCELED)
			}
		case res < 0:
			err = fmt.Errorf("engine: %s %s at %d: %w", r.Op, r.Device.path, r.Off, unix.Errno(-res))
		case (r.Op == OpOriginRead || r.Op == OpOriginWrite) && int64(res) != r.length():
			err = fmt.Errorf("%w: %s %s at %d: %d of %d bytes", ErrShortIO, r.Op, r.Device.path, r.Off, res, r.length())
		}
		if r.linked {
			if r.Err == nil {
				r.Err = err
			}
			if r.pending > 0 {
				return // the load's CQE finishes it (loaded, maybeIssueWrite)
			}
			err = r.Err
		}
		q.finish(r, err)
	case kindLoadOrig, kindLoadDiff:
		q.loaded(r, r.first+delta, k, res)
	case kindReadOrig, kindReadDiff:
		first, count := r.first+delta, int64(1)
		if k == kindReadOrig {
			first, count = unpackRun(delta)
			first += r.first
		}
		start, _, _ := r.segment(first)
		end, _, lastLen := r.segment(first + count - 1)
		if length := end + lastLen - start; res < 0 || int64(res) != length {
			if r.Err == nil {
				r.Err = q.ioErr(r, first, k, res, length)
			}
			if k == kindReadDiff {
				r.area.corrupt(r.Err)
			}
		}
		if k == kindReadOrig {
			a := r.area
			if r.Err == nil {
				// Once the image is corrupted or the snapshot destroyed,
				// origin writes stop copying and no longer wait for this
				// read, so what it read may be newer than the snapshot.
				// Such writes start after the flag is set, hence before
				// this check: fail rather than return those bytes.
				if err := a.err(); err != nil {
					r.Err = err
				} else if a.snap.destroyed.Load() {
					r.Err = ErrClosed
				}
			}
			for n := first; n < first+count; n++ {
				ch := &a.chunks[n]
				ch.mu.Lock()
				ch.readers--
				var woken *Request
				if ch.readers == 0 {
					woken = a.unpark(n, ch)
				}
				ch.mu.Unlock()
				wakeList(woken, q)
			}
		}
		if r.settled() {
			q.finish(r, r.Err)
		}
	}
}

func (q *Queue) ioErr(r *Request, n int64, k kind, res int32, want int64) error {
	where := "original " + r.area.dev.path
	if k == kindLoadDiff || k == kindReadDiff {
		where = "difference storage"
	}
	if res < 0 {
		return fmt.Errorf("engine: %s: chunk %d from %s: %w", r.Op, n, where, unix.Errno(-res))
	}
	return fmt.Errorf("%w: %s: chunk %d from %s: %d of %d bytes", ErrShortIO, r.Op, n, where, res, want)
}

// loaded finishes a chunk load: the chunk goes in memory and to the store
// queue, or, if the read failed, back to new (from the original: the
// original is untouched and the write fails) or failed (from the
// difference storage).
func (q *Queue) loaded(r *Request, n int64, k kind, res int32) {
	a := r.area
	c := &a.chunks[n]
	want := a.chunkLen(n)
	var err error
	if res < 0 || int64(res) != want {
		err = q.ioErr(r, n, k, res, want)
	}
	c.mu.Lock()
	idx := c.data
	switch {
	case err == nil:
		if r.Op == OpImageWrite {
			bufOff, chunkOff, length := r.segment(n)
			copy(a.buffer(idx, n)[chunkOff:], r.Buf[bufOff:bufOff+length])
		}
		c.to(stateInMemory)
	case k == kindLoadOrig:
		c.to(stateNew)
	default: // from the difference storage: corrupted before it shows failed
		a.corrupt(err)
		c.to(stateFailed)
		a.failed.Add(1)
	}
	woken := a.unpark(n, c)
	c.mu.Unlock()
	if err != nil {
		if r.Err == nil {
			r.Err = err
		}
		a.putBuffer(idx, q)
	} else {
		a.snap.enqueueStore(a, n)
	}
	wakeList(woken, q)
	switch r.Op {
	case OpImageWrite:
		if r.settled() {
			q.finish(r, r.Err)
		}
	default:
		q.maybeIssueWrite(r)
	}
}
