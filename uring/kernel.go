package uring

// Kernel ABI of io_uring, declared once. Field order, sizes and padding follow
// /usr/include/linux/io_uring.h; layout_test.go compiles a C program against
// that header and checks every size and offset declared here.

// sqe is struct io_uring_sqe (64 bytes; 128 with SQE128, the second half being
// the tail of the 80-byte command area that starts at addr3).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64 // off, addr2, {cmd_op, __pad1}
	addr        uint64 // addr, splice_off_in
	len         uint32
	opFlags     uint32 // rw_flags, fsync_flags, uring_cmd_flags, ...
	userData    uint64
	bufIndex    uint16 // buf_index, buf_group
	personality uint16
	fileIndex   uint32 // splice_fd_in, file_index, {addr_len, __pad3}
	addr3       uint64 // first 8 bytes of cmd[]
	pad2        uint64
}

// cqe is struct io_uring_cqe without the CQE32 extension.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type sqringOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	flags       uint32
	dropped     uint32
	array       uint32
	resv1       uint32
	userAddr    uint64 // resv2 in older headers
}

type cqringOffsets struct {
	head        uint32
	tail        uint32
	ringMask    uint32
	ringEntries uint32
	overflow    uint32
	cqes        uint32
	flags       uint32
	resv1       uint32
	userAddr    uint64 // resv2 in older headers
}

type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

// probeHeader is struct io_uring_probe without its flexible ops[] array.
type probeHeader struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
}

type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64
}

type rsrcUpdate struct {
	offset uint32
	resv   uint32
	data   uint64
}

// Syscall numbers (x86-64 and arm64 share these).
const (
	sysSetup    = 425
	sysEnter    = 426
	sysRegister = 427
)

// Setup flags.
const (
	setupSQPoll       = 1 << 1
	setupCQSize       = 1 << 3
	setupClamp        = 1 << 4
	setupCoopTaskrun  = 1 << 8
	setupSQE128       = 1 << 10
	setupCQE32        = 1 << 11
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	// setupNoSQArray (Linux 6.6; newer than /usr/include here, so not in
	// the layout test): no SQ index array, the kernel takes SQEs in ring
	// order, one indirection less per SQE.
	setupNoSQArray = 1 << 16
)

// Feature flags reported by io_uring_setup.
const (
	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1
	featExtArg     = 1 << 8
)

// io_uring_enter flags.
const (
	enterGetEvents = 1 << 0
	enterSQWakeup  = 1 << 1
	enterExtArg    = 1 << 3
)

// SQ ring flags.
const (
	sqNeedWakeup = 1 << 0
	sqCQOverflow = 1 << 1
	sqTaskrun    = 1 << 2
)

// mmap offsets.
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// io_uring_register opcodes.
const (
	registerBuffers     = 0
	unregisterBuffers   = 1
	registerFiles       = 2
	unregisterFiles     = 3
	registerFilesUpdate = 6
	registerProbe       = 8
	registerIOWQMax     = 19 // IORING_REGISTER_IOWQ_MAX_WORKERS (5.15)
	registerBuffers2    = 15 // IORING_REGISTER_BUFFERS2 (5.13)
)

// rsrcRegister is struct io_uring_rsrc_register.
type rsrcRegister struct {
	nr    uint32
	flags uint32
	resv2 uint64
	data  uint64
	tags  uint64
}

const rsrcRegisterSparse = 1 << 0 // IORING_RSRC_REGISTER_SPARSE (5.19)

const probeOpSupported = 1 << 0

// SQEFlag is a per-SQE flag (IOSQE_*).
type SQEFlag uint8

// SQE flags.
const (
	SQEFixedFile  SQEFlag = 1 << 0 // fd is an index into the registered files
	SQEIODrain    SQEFlag = 1 << 1 // issue after all in-flight requests
	SQEIOLink     SQEFlag = 1 << 2 // the next SQE starts only after this one succeeds
	SQEIOHardlink SQEFlag = 1 << 3
	SQEAsync      SQEFlag = 1 << 4 // always issue from the async worker
)

// FsyncDatasync makes PrepFsync behave like fdatasync.
const FsyncDatasync = 1 << 0
