package engine

// This file: the image path (reads served from the original, a chunk's
// buffer or the difference storage; writes into the chunk's copy).

import (
	"fmt"

	"github.com/snapring/snapring/uring"
)

// advanceImage walks the chunks of an image read or write.
func (q *Queue) advanceImage(r *Request) {
	a := r.area
	for r.next <= r.last && r.Err == nil {
		if err := a.err(); err != nil {
			r.Err = err
			break
		}
		if a.snap.destroyed.Load() {
			r.Err = ErrClosed
			break
		}
		n := r.next
		c := &a.chunks[n]
		bufOff, chunkOff, length := r.segment(n)
		seg := r.Buf[bufOff : bufOff+length]
		c.mu.Lock()
		if r.Op == OpImageRead {
			if !q.readChunk(r, n, c, seg, chunkOff) {
				return
			}
		} else if !q.writeChunk(r, n, c, seg, chunkOff) {
			return
		}
		r.next++
	}
	if r.settled() {
		q.finish(r, r.Err)
	}
}

// readChunk serves one segment of an image read; called with c locked, it
// unlocks. It returns false if r parked.
func (q *Queue) readChunk(r *Request, n int64, c *chunk, seg []byte, chunkOff int64) bool {
	a := r.area
	switch c.state {
	case stateNew:
		if c.readers == maxReaders {
			a.park(r, n, c)
			c.mu.Unlock()
			return false
		}
		// Readers hold off copy-on-write of this chunk until they finish,
		// so the original cannot change under them.
		c.readers++
		c.mu.Unlock()
		r.Source |= SourceOriginal
		q.prepIO(r, kindReadOrig, n-r.first, FaultIO{Op: FaultRead, Target: FaultOrigin, Device: a.dev, Off: n<<a.chunkShift + chunkOff, Len: int64(len(seg))}, a.dev.fd, seg, 0)
		q.asyncIfLarge(r, seg, a.dev.punted)
	case stateLoading:
		a.park(r, n, c)
		c.mu.Unlock()
		return false
	case stateInMemory, stateStoring:
		copy(seg, a.buffer(c.data, n)[chunkOff:])
		c.mu.Unlock()
		r.Source |= SourceMemory
	case stateStored:
		logical := int64(c.data) * storageUnit
		c.mu.Unlock()
		r.Source |= SourceDiff
		reg := a.snap.storage.locate(logical)
		q.prepIO(r, kindReadDiff, n-r.first, FaultIO{Op: FaultRead, Target: FaultDiffStorage, Device: a.dev, Off: reg.off + chunkOff, Len: int64(len(seg))}, reg.fd, seg, 0)
		q.asyncIfLarge(r, seg, reg.punted)
	default:
		c.mu.Unlock()
		r.Err = a.chunkErr(n)
	}
	return true
}

func (a *diffArea) chunkErr(n int64) error {
	if err := a.err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: device %s: chunk %d failed", ErrCorrupted, a.dev.path, n)
}

// writeChunk serves one segment of an image write: the data lands in the
// chunk's copy (loaded first if needed), never on the original.
func (q *Queue) writeChunk(r *Request, n int64, c *chunk, seg []byte, chunkOff int64) bool {
	a := r.area
	switch c.state {
	case stateNew, stateStored:
		if c.state == stateNew && c.readers > 0 {
			a.park(r, n, c)
			c.mu.Unlock()
			return false
		}
		idx, ok := a.getBuffer(r)
		if !ok {
			c.mu.Unlock()
			return false
		}
		from, logical := kindLoadOrig, int64(0)
		if c.state == stateStored {
			from, logical = kindLoadDiff, int64(c.data)*storageUnit
			a.keepRegion(n, c.data) // stored again there
		}
		if c.state == stateNew && int64(len(seg)) == a.chunkLen(n) {
			// The write covers the whole chunk: nothing to load.
			copy(a.buffer(idx, n), seg)
			c.to(stateInMemory)
			c.data = idx
			c.mu.Unlock()
			a.snap.enqueueStore(a, n)
			return true
		}
		c.to(stateLoading)
		c.data = idx
		c.mu.Unlock()
		q.issueLoad(r, n, from, idx, logical)
	case stateLoading:
		a.park(r, n, c)
		c.mu.Unlock()
		return false
	case stateInMemory, stateStoring:
		copy(a.buffer(c.data, n)[chunkOff:], seg)
		if c.state == stateStoring {
			c.flags |= flagDirty
		}
		c.mu.Unlock()
	default:
		c.mu.Unlock()
		r.Err = a.chunkErr(n)
	}
	return true
}

// asyncIfLarge marks the SQE just prepared for an image read as ASYNC when
// it reads at least asyncReadBytes of a file whose reads are punted (see
// readsPunted). The kernel sends every read of such a file to an io-wq
// worker anyway; marked ASYNC, the segments of one request run on workers
// in parallel. (Measured on tmpfs: 1 MiB image reads of 256 KiB chunks
// went from 0.68x to 1.26x the raw read.) Files that read inline from the
// page cache (ext4) are left alone: one thread copying beat the handoff to
// workers, 0.85x to 0.95x the raw read. Not while the application writes
// (readGate.fanOut).
func (q *Queue) asyncIfLarge(r *Request, seg []byte, punted bool) {
	if punted && len(seg) >= asyncReadBytes && q.lastSQE != nil && q.fanOut(r.area.snap.gate) {
		q.lastSQE.SetFlags(uring.SQEAsync)
	}
}

const asyncReadBytes = 128 << 10
