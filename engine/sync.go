package engine

import (
	"fmt"
	"io"
	"runtime"

	"github.com/snapring/snapring/uring"
)

// The synchronous convenience: Device (the origin) and Image implement
// io.ReaderAt and io.WriterAt over the asynchronous core, through a small
// pool of queues with pinned bounce buffers. Offsets and lengths must be
// multiples of 512 bytes, as on a block device; I/O larger than
// syncChunkBytes is split into several requests (each atomic on its own).

const (
	syncChunkBytes = 1 << 20
	syncPoolSize   = 8
)

type syncQueue struct {
	q   *Queue
	buf []byte
	req Request
	out [1]*Request
}

var syncPool = make(chan *syncQueue, syncPoolSize)

func getSyncQueue() (*syncQueue, error) {
	select {
	case sq := <-syncPool:
		return sq, nil
	default:
	}
	q, err := NewQueue(1)
	if err != nil {
		return nil, err
	}
	a, err := newBounce(syncChunkBytes)
	if err != nil {
		q.Close()
		return nil, err
	}
	q.bounce = a
	return &syncQueue{q: q, buf: a.Bytes()}, nil
}

func putSyncQueue(sq *syncQueue) {
	sq.req = Request{}
	select {
	case syncPool <- sq:
	default:
		sq.q.Close()
	}
}

// do runs one request to completion, on one thread (see Queue).
func (sq *syncQueue) do(r *Request) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := sq.q.Submit(r); err != nil {
		return err
	}
	for {
		n, err := sq.q.Poll(sq.out[:], 1)
		if err != nil {
			return err
		}
		if n == 1 {
			return r.Err
		}
	}
}

func syncIO(p []byte, off int64, fill func(r *Request)) (int, error) {
	if off%512 != 0 || len(p)%512 != 0 {
		return 0, fmt.Errorf("%w: offset %d and length %d must be multiples of 512", ErrInvalid, off, len(p))
	}
	sq, err := getSyncQueue()
	if err != nil {
		return 0, err
	}
	defer putSyncQueue(sq)
	done := 0
	for done < len(p) {
		n := min(len(p)-done, syncChunkBytes)
		r := &sq.req
		*r = Request{Off: off + int64(done), Buf: sq.buf[:n]}
		fill(r)
		write := r.Op == OpOriginWrite || r.Op == OpImageWrite
		if write {
			copy(r.Buf, p[done:done+n])
		}
		if err := sq.do(r); err != nil {
			return done, err
		}
		if !write {
			copy(p[done:done+n], r.Buf)
		}
		done += n
	}
	return done, nil
}

func checkEnd(off int64, n int, size int64) (int, error) {
	if off >= size {
		return 0, io.EOF
	}
	if off+int64(n) > size {
		return int(size - off), io.EOF
	}
	return n, nil
}

// ReadAt reads the original device.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	n, eof := checkEnd(off, len(p), d.size)
	if n == 0 {
		return 0, eof
	}
	got, err := syncIO(p[:n], off, func(r *Request) { r.Op, r.Device = OpOriginRead, d })
	if err != nil {
		return got, err
	}
	return got, eof
}

// WriteAt writes the original device; with a snapshot taken, the chunks it
// touches are copied first.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("%w: write at %d of %d bytes beyond the device end (%d bytes)", ErrInvalid, off, len(p), d.size)
	}
	return syncIO(p, off, func(r *Request) { r.Op, r.Device = OpOriginWrite, d })
}

// ReadAt reads the snapshot image.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := checkEnd(off, len(p), img.Size())
	if n == 0 {
		return 0, eof
	}
	got, err := syncIO(p[:n], off, func(r *Request) { r.Op, r.Image = OpImageRead, img })
	if err != nil {
		return got, err
	}
	return got, eof
}

// WriteAt writes the snapshot image; the original is not touched.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > img.Size() {
		return 0, fmt.Errorf("%w: write at %d of %d bytes beyond the image end (%d bytes)", ErrInvalid, off, len(p), img.Size())
	}
	return syncIO(p, off, func(r *Request) { r.Op, r.Image = OpImageWrite, img })
}

func newBounce(n int) (*uring.Arena, error) { return uring.NewArena(n) }
