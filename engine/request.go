package engine

// This file: the public Request and Op types and request validation.

import (
	"fmt"
)

// Op is a request's operation.
type Op uint8

// Operations on an original device (Request.Device) and on an image
// (Request.Image).
const (
	OpOriginRead Op = iota + 1
	OpOriginWrite
	OpOriginDiscard     // a write: copies the chunks it touches first
	OpOriginWriteZeroes // likewise
	OpOriginFlush
	OpImageRead
	OpImageWrite
)

var opNames = [...]string{"", "origin read", "origin write", "origin discard", "origin write-zeroes", "origin flush", "image read", "image write"}

func (op Op) String() string {
	if int(op) < len(opNames) && op != 0 {
		return opNames[op]
	}
	return fmt.Sprintf("op(%d)", int(op))
}

// Source says where an image read found its data (a bit set: a read across
// chunks may use several).
type Source uint8

// Image read sources.
const (
	SourceOriginal Source = 1 << iota // the chunk never changed
	SourceMemory                      // the chunk's copy in a buffer
	SourceDiff                        // the difference storage
)

// Request is one asynchronous I/O. The caller owns it: fill the public
// fields, Submit it to a Queue, and reuse it after Poll returns it. Buf must
// be Arena memory (uring's memory rule). Offsets and lengths are multiples
// of 512 bytes.
type Request struct {
	Op     Op
	Device *Device // origin operations
	Image  *Image  // image operations
	Off    int64
	Buf    []byte // data for reads and writes
	Len    int64  // length for discard and write-zeroes, and for Fixed reads and writes
	// Fixed (origin reads and writes on a hosted queue only) says the data
	// is not in Buf (nil) but in slot BufIndex of the host ring's buffer
	// table, Len bytes from its start: ublk's zero copy, where that slot holds
	// the block request's own pages (ublk.IO.Fixed). The engine reads or
	// writes the original straight from there; origin writes never need
	// their data anywhere else.
	Fixed    bool
	BufIndex uint16
	NoWait   bool // origin writes: fail with ErrWouldBlock instead of waiting for a copy
	UserData uint64

	// Results, valid after Poll returns the request.
	Err    error
	Source Source // image reads
	Copied bool   // origin writes: this write copied at least one chunk first

	q         *Queue
	slot      uint16
	state     reqState
	holds     reqHolds
	area      *diffArea
	first     int64 // chunks first..last, next to walk (image and copy-on-write)
	last      int64
	next      int64
	pending   int      // SQEs of this request without a completion yet
	linked    bool     // origin writes: the write was queued linked behind its chunk's load (cow.go)
	parkedOn  parkKind // while parked: the list it waits on
	waitChunk int64
	waitNext  *Request
}

// Bytes is the request's length: len(Buf), or Len for discard, write-zeroes
// and Fixed reads and writes.
func (r *Request) Bytes() int64 { return r.length() }

func (r *Request) length() int64 {
	if r.Fixed || r.Op == OpOriginDiscard || r.Op == OpOriginWriteZeroes {
		return r.Len
	}
	return int64(len(r.Buf))
}

func (r *Request) validate() error {
	var size, align int64
	switch r.Op {
	case OpOriginRead, OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes, OpOriginFlush:
		if r.Device == nil {
			return fmt.Errorf("%w: %s without a device", ErrInvalid, r.Op)
		}
		size, align = r.Device.size, int64(r.Device.align)
	case OpImageRead, OpImageWrite:
		if r.Image == nil {
			return fmt.Errorf("%w: %s without an image", ErrInvalid, r.Op)
		}
		size, align = r.Image.area.dev.size, int64(r.Image.area.dev.align)
	default:
		return fmt.Errorf("%w: unknown operation %d", ErrInvalid, r.Op)
	}
	if r.Fixed && (r.Op != OpOriginRead && r.Op != OpOriginWrite || r.Buf != nil) {
		return fmt.Errorf("%w: %s with a fixed buffer: only origin reads and writes, without Buf", ErrInvalid, r.Op)
	}
	if r.Op == OpOriginFlush {
		return nil
	}
	n := r.length()
	switch {
	case n <= 0:
		return fmt.Errorf("%w: %s of %d bytes: length must be positive", ErrInvalid, r.Op, n)
	case r.Off < 0 || r.Off%align != 0 || n%align != 0:
		return fmt.Errorf("%w: %s at %d of %d bytes: offset and length must be multiples of %d", ErrInvalid, r.Op, r.Off, n, align)
	case r.Off+n > size:
		return fmt.Errorf("%w: %s at %d of %d bytes: beyond the device end (%d bytes)", ErrInvalid, r.Op, r.Off, n, size)
	case n > 1<<30:
		return fmt.Errorf("%w: %s of %d bytes: at most 1 GiB per request", ErrInvalid, r.Op, n)
	}
	return nil
}

// segment returns the part of r inside chunk n: offset in r.Buf, offset in
// the chunk, length.
func (r *Request) segment(n int64) (bufOff, chunkOff, length int64) {
	a := r.area
	start := max(r.Off, n<<a.chunkShift)
	end := min(r.Off+r.length(), (n+1)<<a.chunkShift)
	return start - r.Off, start - n<<a.chunkShift, end - start
}
