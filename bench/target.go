package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/uring"
)

// ioKind is what a worker asks of a target.
type ioKind uint8

const (
	ioOriginWrite ioKind = iota
	ioOriginDiscard
	ioImageRead
	ioImageWrite
)

// completion is one finished operation of a worker's target.
type completion struct {
	slot  int
	class results.Class // the specific class (cow/copied, read source)
	agg   results.Class // the aggregate class
	err   error
}

// target runs one worker's I/O: the engine (a Queue over a snapshot) or the
// raw baseline (a ring on the backing file). Both keep per-slot state
// preallocated, so a steady-state operation allocates nothing.
type target interface {
	submit(slot int, k ioKind, off int64, buf []byte) error
	poll(out []completion, minN int, timeout time.Duration) (int, error)
	close()
	// keepsThread reports that the worker's thread now carries state of
	// the target's (a backup's lowered priority): the worker must end it
	// with the goroutine, not unlock it.
	keepsThread() bool
}

type engineTarget struct {
	q    *engine.Queue
	dev  *engine.Device
	img  *engine.Image
	reqs []engine.Request
	kind []ioKind
	out  []*engine.Request
	// delay is the injected per-operation delay (inject.go); 0 normally.
	delay time.Duration
	// backup: the queue serves a backup at a lowered priority
	// (engine.Queue.ServeBackup), which stays with the worker's thread.
	backup bool
}

// newEngineTarget makes a worker's engine queue, on the worker's locked
// thread; backupNice > 0 makes it a backup's queue at that priority.
func newEngineTarget(qd int, dev *engine.Device, img *engine.Image, backupNice int) (*engineTarget, error) {
	delay, err := injectedEngineDelay()
	if err != nil {
		return nil, err
	}
	q, err := engine.NewQueue(qd)
	if err != nil {
		return nil, err
	}
	if err := q.ServeBackup(backupNice); err != nil {
		q.Close()
		return nil, err
	}
	return &engineTarget{q: q, dev: dev, img: img, reqs: make([]engine.Request, qd), kind: make([]ioKind, qd), out: make([]*engine.Request, qd), delay: delay, backup: backupNice > 0}, nil
}

func (t *engineTarget) keepsThread() bool { return t.backup }

func (t *engineTarget) submit(slot int, k ioKind, off int64, buf []byte) error {
	r := &t.reqs[slot]
	*r = engine.Request{Off: off, UserData: uint64(slot)}
	t.kind[slot] = k
	delayEngineOp(t.delay)
	switch k {
	case ioOriginWrite:
		r.Op, r.Device, r.Buf = engine.OpOriginWrite, t.dev, buf
	case ioOriginDiscard:
		r.Op, r.Device, r.Len = engine.OpOriginDiscard, t.dev, int64(len(buf))
	case ioImageRead:
		r.Op, r.Image, r.Buf = engine.OpImageRead, t.img, buf
	case ioImageWrite:
		r.Op, r.Image, r.Buf = engine.OpImageWrite, t.img, buf
	}
	return t.q.Submit(r)
}

func (t *engineTarget) poll(out []completion, minN int, timeout time.Duration) (int, error) {
	n, err := t.q.PollTimeout(t.out[:min(len(out), len(t.out))], minN, timeout)
	for i, r := range t.out[:n] {
		slot := int(r.UserData)
		c := completion{slot: slot, err: r.Err}
		switch t.kind[slot] {
		case ioOriginWrite, ioOriginDiscard:
			c.agg, c.class = results.OriginWrite, results.OriginWriteCopied
			if r.Copied {
				c.class = results.OriginWriteCoW
			}
		case ioImageRead:
			c.agg, c.class = results.ImageRead, results.ImageReadOriginal
			switch {
			case r.Source&engine.SourceDiff != 0:
				c.class = results.ImageReadDiff
			case r.Source&engine.SourceMemory != 0:
				c.class = results.ImageReadMemory
			}
		case ioImageWrite:
			c.agg, c.class = results.ImageWrite, results.ImageWrite
		}
		out[i] = c
	}
	return n, err
}

func (t *engineTarget) close() { t.q.Close() }

// rawTarget is the baseline: the same operations straight on the backing
// file through one ring, no snapshot.
type rawTarget struct {
	ring *uring.Ring
	fd   int32
	kind []ioKind
	want []int32
	cqes []uring.CQE
}

func newRawTarget(qd int, fd int32) (*rawTarget, error) {
	entries := uint32(8)
	for entries < uint32(qd) {
		entries *= 2
	}
	ring, err := uring.New(uring.Options{Entries: entries})
	if err != nil {
		return nil, err
	}
	return &rawTarget{ring: ring, fd: fd, kind: make([]ioKind, qd), want: make([]int32, qd), cqes: make([]uring.CQE, qd)}, nil
}

func (t *rawTarget) submit(slot int, k ioKind, off int64, buf []byte) error {
	s, err := t.ring.NextSQE()
	if err != nil {
		return err
	}
	t.kind[slot] = k
	t.want[slot] = int32(len(buf))
	switch k {
	case ioOriginWrite, ioImageWrite:
		s.PrepWrite(t.fd, buf, uint64(off))
	case ioOriginDiscard:
		s.PrepFallocate(t.fd, fallocPunchHole, uint64(off), uint64(len(buf)))
		t.want[slot] = 0
	case ioImageRead:
		s.PrepRead(t.fd, buf, uint64(off))
	}
	s.SetUserData(uint64(slot))
	if k != ioOriginDiscard {
		t.ring.MarkIOWQ(s) // as the engine marks its file I/O: both sides kick alike
	}
	return nil
}

func (t *rawTarget) poll(out []completion, minN int, timeout time.Duration) (int, error) {
	if minN > 0 {
		var err error
		if timeout > 0 {
			_, err = t.ring.WaitTimeout(uint32(minN), timeout)
			if errors.Is(err, uring.ErrTimeout) {
				err = nil
			}
		} else {
			_, err = t.ring.SubmitAndWait(uint32(minN))
		}
		if err != nil {
			return 0, err
		}
	} else if _, err := t.ring.Submit(); err != nil {
		return 0, err
	}
	n := t.ring.Drain(t.cqes[:min(len(out), len(t.cqes))])
	for i, c := range t.cqes[:n] {
		slot := int(c.UserData)
		k := t.kind[slot]
		cp := completion{slot: slot}
		switch k {
		case ioOriginWrite, ioOriginDiscard:
			cp.agg = results.OriginWrite
		case ioImageRead:
			cp.agg = results.ImageRead
		case ioImageWrite:
			cp.agg = results.ImageWrite
		}
		cp.class = cp.agg
		if c.Res < 0 {
			cp.err = uring.ResultError(uring.OpWrite, c.Res)
		} else if c.Res != t.want[slot] {
			cp.err = fmt.Errorf("bench: short I/O: %d of %d bytes", c.Res, t.want[slot])
		}
		out[i] = cp
	}
	return n, nil
}

func (t *rawTarget) close()            { t.ring.Close() }
func (t *rawTarget) keepsThread() bool { return false }

const fallocPunchHole = 0x02 | 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
