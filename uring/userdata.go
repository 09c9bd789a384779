package uring

// The user_data layout the ring's owners share (the engine's queues, ublk's
// queues, and the engine queues ublk hosts): an owner's id (a request slot
// or a tag) in bits 0-15, an operation in bits 16-23 and 32 bits of data in
// bits 24-55. Bits 56-63 are left to the ring's owner (ublk marks target
// I/O with bit 63); the values the ring reserves for itself have them all
// set (see SetUserData).
const (
	userDataOpShift   = 16
	userDataDataShift = 24
	// UserDataBits is how many low bits PackUserData uses.
	UserDataBits = 56
)

// PackUserData packs an id, an operation and data into user_data bits 0-55.
func PackUserData(id uint16, op uint8, data uint32) uint64 {
	return uint64(id) | uint64(op)<<userDataOpShift | uint64(data)<<userDataDataShift
}

// UnpackUserData splits what PackUserData packed (bits 56-63 are ignored).
func UnpackUserData(ud uint64) (id uint16, op uint8, data uint32) {
	return uint16(ud), uint8(ud >> userDataOpShift), uint32(ud >> userDataDataShift)
}
