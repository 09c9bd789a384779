package uring

import "fmt"

// Op is an io_uring opcode (IORING_OP_*).
type Op uint8

// The opcodes snapring uses, and a few it probes for.
const (
	OpNop         Op = 0
	OpReadv       Op = 1
	OpWritev      Op = 2
	OpFsync       Op = 3
	OpReadFixed   Op = 4
	OpWriteFixed  Op = 5
	OpTimeout     Op = 11
	OpAsyncCancel Op = 14
	OpFallocate   Op = 17
	OpRead        Op = 22
	OpWrite       Op = 23
	OpMsgRing     Op = 40
	OpURingCmd    Op = 46
)

// opInfo names an opcode and the first kernel release that supports it, so
// that a probe failure can say what is missing and what would have it.
var opInfo = map[Op]struct {
	name   string
	kernel string
}{
	OpNop:         {"NOP", "5.1"},
	OpReadv:       {"READV", "5.1"},
	OpWritev:      {"WRITEV", "5.1"},
	OpFsync:       {"FSYNC", "5.1"},
	OpReadFixed:   {"READ_FIXED", "5.1"},
	OpWriteFixed:  {"WRITE_FIXED", "5.1"},
	OpTimeout:     {"TIMEOUT", "5.4"},
	OpAsyncCancel: {"ASYNC_CANCEL", "5.5"},
	OpFallocate:   {"FALLOCATE", "5.6"},
	OpRead:        {"READ", "5.6"},
	OpWrite:       {"WRITE", "5.6"},
	OpMsgRing:     {"MSG_RING", "5.18"},
	OpURingCmd:    {"URING_CMD", "5.19"},
}

func (op Op) String() string {
	if info, ok := opInfo[op]; ok {
		return info.name
	}
	return fmt.Sprintf("OP(%d)", uint8(op))
}

// KernelVersion returns the first Linux release that has op, or "" if unknown.
func (op Op) KernelVersion() string { return opInfo[op].kernel }
