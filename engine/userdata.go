package engine

// This file: the user_data codec of the engine's SQEs.

import "github.com/snapring/snapring/uring"

// user_data layout, uring's shared one (uring.PackUserData): the request's
// slot as the id, the kind as the operation, and as data the chunk's index
// within the request (delta, below maxSegments). A hosted queue's host
// carries the same 56 bits through its own ring (ublk unpacks and repacks
// them with the same codec). Injected faults use no bits: see
// Queue.injected.
type kind uint8

const (
	kindEvent kind = iota + 1
	kindOriginIO
	kindLoadOrig
	kindLoadDiff
	kindReadOrig
	kindReadDiff
	kindCancel // Close cancelling the doorbell read
)

func packUD(slot uint16, k kind, delta int64) uint64 {
	return uring.PackUserData(slot, uint8(k), uint32(delta))
}

func unpackUD(ud uint64) (slot uint16, k kind, delta int64) {
	slot, op, data := uring.UnpackUserData(ud)
	return slot, kind(op), int64(data)
}
