package engine

// This file: the user_data codec of the engine's SQEs.

import (
	"golang.org/x/sys/unix"
)

// user_data layout: slot (16 bits) | kind (8) | chunk delta (16) | injected errno (16).
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

func packUD(slot uint16, k kind, delta int64, errno unix.Errno) uint64 {
	return uint64(slot) | uint64(k)<<16 | uint64(delta)<<24 | uint64(errno)<<40
}

func unpackUD(ud uint64) (slot uint16, k kind, delta int64, errno unix.Errno) {
	return uint16(ud), kind(ud >> 16), int64(ud>>24) & 0xffff, unix.Errno(ud >> 40 & 0xffff)
}
