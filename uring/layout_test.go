package uring

import (
	"testing"
	"unsafe"

	"github.com/snapring/snapring/internal/cprobe"
)

// layoutChecks pairs every kernel struct field declared in kernel.go with its
// C name. The test compiles a C program that prints sizeof/offsetof for each
// against /usr/include/linux/io_uring.h and compares.
func layoutChecks() []struct {
	cStruct, cField string // cField "" means sizeof the struct
	got             uintptr
} {
	var s sqe
	var c cqe
	var p params
	var so sqringOffsets
	var co cqringOffsets
	var po probeOp
	var ph probeHeader
	var ga getEventsArg
	var ru rsrcUpdate
	var rr rsrcRegister
	type check = struct {
		cStruct, cField string
		got             uintptr
	}
	return []check{
		{"io_uring_sqe", "", unsafe.Sizeof(s)},
		{"io_uring_sqe", "opcode", unsafe.Offsetof(s.opcode)},
		{"io_uring_sqe", "flags", unsafe.Offsetof(s.flags)},
		{"io_uring_sqe", "ioprio", unsafe.Offsetof(s.ioprio)},
		{"io_uring_sqe", "fd", unsafe.Offsetof(s.fd)},
		{"io_uring_sqe", "off", unsafe.Offsetof(s.off)},
		{"io_uring_sqe", "cmd_op", unsafe.Offsetof(s.off)},
		{"io_uring_sqe", "addr", unsafe.Offsetof(s.addr)},
		{"io_uring_sqe", "len", unsafe.Offsetof(s.len)},
		{"io_uring_sqe", "rw_flags", unsafe.Offsetof(s.opFlags)},
		{"io_uring_sqe", "fsync_flags", unsafe.Offsetof(s.opFlags)},
		{"io_uring_sqe", "uring_cmd_flags", unsafe.Offsetof(s.opFlags)},
		{"io_uring_sqe", "user_data", unsafe.Offsetof(s.userData)},
		{"io_uring_sqe", "buf_index", unsafe.Offsetof(s.bufIndex)},
		{"io_uring_sqe", "personality", unsafe.Offsetof(s.personality)},
		{"io_uring_sqe", "file_index", unsafe.Offsetof(s.fileIndex)},
		{"io_uring_sqe", "addr3", unsafe.Offsetof(s.addr3)},
		{"io_uring_sqe", "cmd", unsafe.Offsetof(s.addr3)},
		{"io_uring_sqe", "__pad2", unsafe.Offsetof(s.pad2)},
		{"io_uring_cqe", "", unsafe.Sizeof(c)},
		{"io_uring_cqe", "user_data", unsafe.Offsetof(c.userData)},
		{"io_uring_cqe", "res", unsafe.Offsetof(c.res)},
		{"io_uring_cqe", "flags", unsafe.Offsetof(c.flags)},
		{"io_uring_params", "", unsafe.Sizeof(p)},
		{"io_uring_params", "sq_entries", unsafe.Offsetof(p.sqEntries)},
		{"io_uring_params", "cq_entries", unsafe.Offsetof(p.cqEntries)},
		{"io_uring_params", "flags", unsafe.Offsetof(p.flags)},
		{"io_uring_params", "sq_thread_cpu", unsafe.Offsetof(p.sqThreadCPU)},
		{"io_uring_params", "sq_thread_idle", unsafe.Offsetof(p.sqThreadIdle)},
		{"io_uring_params", "features", unsafe.Offsetof(p.features)},
		{"io_uring_params", "wq_fd", unsafe.Offsetof(p.wqFd)},
		{"io_uring_params", "resv", unsafe.Offsetof(p.resv)},
		{"io_uring_params", "sq_off", unsafe.Offsetof(p.sqOff)},
		{"io_uring_params", "cq_off", unsafe.Offsetof(p.cqOff)},
		{"io_sqring_offsets", "", unsafe.Sizeof(so)},
		{"io_sqring_offsets", "head", unsafe.Offsetof(so.head)},
		{"io_sqring_offsets", "tail", unsafe.Offsetof(so.tail)},
		{"io_sqring_offsets", "ring_mask", unsafe.Offsetof(so.ringMask)},
		{"io_sqring_offsets", "ring_entries", unsafe.Offsetof(so.ringEntries)},
		{"io_sqring_offsets", "flags", unsafe.Offsetof(so.flags)},
		{"io_sqring_offsets", "dropped", unsafe.Offsetof(so.dropped)},
		{"io_sqring_offsets", "array", unsafe.Offsetof(so.array)},
		{"io_sqring_offsets", "resv1", unsafe.Offsetof(so.resv1)},
		{"io_cqring_offsets", "", unsafe.Sizeof(co)},
		{"io_cqring_offsets", "head", unsafe.Offsetof(co.head)},
		{"io_cqring_offsets", "tail", unsafe.Offsetof(co.tail)},
		{"io_cqring_offsets", "ring_mask", unsafe.Offsetof(co.ringMask)},
		{"io_cqring_offsets", "ring_entries", unsafe.Offsetof(co.ringEntries)},
		{"io_cqring_offsets", "overflow", unsafe.Offsetof(co.overflow)},
		{"io_cqring_offsets", "cqes", unsafe.Offsetof(co.cqes)},
		{"io_cqring_offsets", "flags", unsafe.Offsetof(co.flags)},
		{"io_cqring_offsets", "resv1", unsafe.Offsetof(co.resv1)},
		{"io_uring_probe_op", "", unsafe.Sizeof(po)},
		{"io_uring_probe_op", "op", unsafe.Offsetof(po.op)},
		{"io_uring_probe_op", "flags", unsafe.Offsetof(po.flags)},
		{"io_uring_probe", "", unsafe.Sizeof(ph)},
		{"io_uring_probe", "last_op", unsafe.Offsetof(ph.lastOp)},
		{"io_uring_probe", "ops_len", unsafe.Offsetof(ph.opsLen)},
		{"io_uring_probe", "ops", unsafe.Sizeof(ph)},
		{"io_uring_getevents_arg", "", unsafe.Sizeof(ga)},
		{"io_uring_getevents_arg", "sigmask", unsafe.Offsetof(ga.sigmask)},
		{"io_uring_getevents_arg", "sigmask_sz", unsafe.Offsetof(ga.sigmaskSz)},
		{"io_uring_getevents_arg", "ts", unsafe.Offsetof(ga.ts)},
		{"io_uring_rsrc_register", "", unsafe.Sizeof(rr)},
		{"io_uring_rsrc_register", "nr", unsafe.Offsetof(rr.nr)},
		{"io_uring_rsrc_register", "flags", unsafe.Offsetof(rr.flags)},
		{"io_uring_rsrc_register", "data", unsafe.Offsetof(rr.data)},
		{"io_uring_rsrc_register", "tags", unsafe.Offsetof(rr.tags)},
		{"io_uring_rsrc_update", "", unsafe.Sizeof(ru)},
		{"io_uring_rsrc_update", "offset", unsafe.Offsetof(ru.offset)},
		{"io_uring_rsrc_update", "data", unsafe.Offsetof(ru.data)},
	}
}

// TestLayoutMatchesHeader compiles a C program against the system's
// linux/io_uring.h and checks each size and offset above. It also checks the
// constants that carry ABI meaning.
func TestLayoutMatchesHeader(t *testing.T) {
	checks := layoutChecks()
	consts := []struct {
		name string
		got  uint64
	}{
		{"IORING_SETUP_SQPOLL", setupSQPoll}, {"IORING_SETUP_CQSIZE", setupCQSize},
		{"IORING_SETUP_COOP_TASKRUN", setupCoopTaskrun}, {"IORING_SETUP_SQE128", setupSQE128},
		{"IORING_SETUP_CQE32", setupCQE32}, {"IORING_SETUP_SINGLE_ISSUER", setupSingleIssuer},
		{"IORING_SETUP_DEFER_TASKRUN", setupDeferTaskrun},
		{"IORING_FEAT_SINGLE_MMAP", featSingleMmap}, {"IORING_FEAT_NODROP", featNoDrop}, {"IORING_FEAT_EXT_ARG", featExtArg},
		{"IORING_ENTER_GETEVENTS", enterGetEvents}, {"IORING_ENTER_SQ_WAKEUP", enterSQWakeup}, {"IORING_ENTER_EXT_ARG", enterExtArg},
		{"IORING_SQ_NEED_WAKEUP", sqNeedWakeup}, {"IORING_SQ_CQ_OVERFLOW", sqCQOverflow}, {"IORING_SQ_TASKRUN", sqTaskrun},
		{"IORING_OFF_SQ_RING", offSQRing}, {"IORING_OFF_CQ_RING", offCQRing}, {"IORING_OFF_SQES", offSQEs},
		{"IORING_REGISTER_BUFFERS", registerBuffers}, {"IORING_UNREGISTER_BUFFERS", unregisterBuffers},
		{"IORING_REGISTER_FILES", registerFiles}, {"IORING_UNREGISTER_FILES", unregisterFiles},
		{"IORING_REGISTER_FILES_UPDATE", registerFilesUpdate}, {"IORING_REGISTER_PROBE", registerProbe},
		{"IORING_REGISTER_IOWQ_MAX_WORKERS", registerIOWQMax},
		{"IORING_REGISTER_BUFFERS2", registerBuffers2}, {"IORING_RSRC_REGISTER_SPARSE", rsrcRegisterSparse},
		{"IO_URING_OP_SUPPORTED", probeOpSupported},
		{"IOSQE_FIXED_FILE", uint64(SQEFixedFile)}, {"IOSQE_IO_DRAIN", uint64(SQEIODrain)}, {"IOSQE_IO_LINK", uint64(SQEIOLink)},
		{"IOSQE_IO_HARDLINK", uint64(SQEIOHardlink)}, {"IOSQE_ASYNC", uint64(SQEAsync)},
		{"IORING_FSYNC_DATASYNC", FsyncDatasync},
		{"IORING_OP_NOP", uint64(OpNop)}, {"IORING_OP_READV", uint64(OpReadv)}, {"IORING_OP_WRITEV", uint64(OpWritev)},
		{"IORING_OP_FSYNC", uint64(OpFsync)}, {"IORING_OP_READ_FIXED", uint64(OpReadFixed)}, {"IORING_OP_WRITE_FIXED", uint64(OpWriteFixed)},
		{"IORING_OP_TIMEOUT", uint64(OpTimeout)}, {"IORING_OP_ASYNC_CANCEL", uint64(OpAsyncCancel)}, {"IORING_OP_FALLOCATE", uint64(OpFallocate)}, {"IORING_OP_READ", uint64(OpRead)},
		{"IORING_OP_WRITE", uint64(OpWrite)}, {"IORING_OP_MSG_RING", uint64(OpMsgRing)}, {"IORING_OP_URING_CMD", uint64(OpURingCmd)},
		{"__NR_io_uring_setup", sysSetup}, {"__NR_io_uring_enter", sysEnter}, {"__NR_io_uring_register", sysRegister},
	}
	var probe []cprobe.Check
	for _, c := range checks {
		if c.cField == "" {
			probe = append(probe, cprobe.Sizeof(c.cStruct, c.got))
		} else {
			probe = append(probe, cprobe.Offsetof(c.cStruct, c.cField, c.got))
		}
	}
	for _, c := range consts {
		probe = append(probe, cprobe.Const(c.name, int64(c.got)))
	}
	cprobe.Run(t, []string{"linux/io_uring.h", "sys/syscall.h"}, probe)
}

// TestUserDataRoundTrip: PackUserData and UnpackUserData are inverses over
// bits 0-55, and the owner's bits 56-63 do not leak into the fields.
func TestUserDataRoundTrip(t *testing.T) {
	for _, c := range []struct {
		id   uint16
		op   uint8
		data uint32
	}{{0, 0, 0}, {1, 2, 3}, {0xffff, 0xff, 0xffffffff}, {0x1234, 0x56, 0x789abcde}} {
		ud := PackUserData(c.id, c.op, c.data)
		if ud>>UserDataBits != 0 {
			t.Errorf("%+v: packed %#x uses bits above %d", c, ud, UserDataBits)
		}
		id, op, data := UnpackUserData(ud | 0xff<<UserDataBits)
		if id != c.id || op != c.op || data != c.data {
			t.Errorf("%+v: unpacked %d %d %d", c, id, op, data)
		}
	}
}
