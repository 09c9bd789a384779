package ublk

// Null is a target with no backing, ublk's counterpart of the kernel's
// null_blk: every READ and WRITE completes at once, inside Handle, with all
// its bytes. It measures the floor of the ublk crossing itself (the
// driver's copy between the request's pages and the tag's buffer, and the
// round trip to this process), under which no target can go. A READ
// returns whatever the tag's buffer holds, which is no data of any device:
// never use it for anything but measuring.
type Null struct{ size uint64 }

// NewNull makes a Null target of size bytes.
func NewNull(size uint64) Null { return Null{size: size} }

// Size is the device size in bytes.
func (n Null) Size() uint64 { return n.size }

// Init keeps no per-queue state.
func (n Null) Init(*Queue) error { return nil }

// Handle completes the request with all its bytes.
func (n Null) Handle(q *Queue, tag uint16, io *IO) { q.Complete(tag, int32(io.Length)) }

// Completion is never called: Null submits nothing.
func (n Null) Completion(*Queue, TargetCompletion) {}
