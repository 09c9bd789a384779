package ublk

import "unsafe"

// Kernel ABI of ublk (include/uapi/linux/ublk_cmd.h), declared once. Field
// order, sizes and padding follow the header. layout_test.go compiles a C
// program against the host's /usr/include/linux/ublk_cmd.h (the 6.1 version)
// and checks every size and offset it has; fields and structs added after 6.1
// are checked against constants quoted from the 6.12 header in that test.

// ctrlCmd is struct ublksrv_ctrl_cmd, the 32-byte payload of a control
// command in the SQE's command area (which is why the control ring needs
// SQE128: a plain SQE has only 16 bytes there).
type ctrlCmd struct {
	devID   uint32 // target device; ^0 with ADD_DEV means "pick one"
	queueID uint16 // ^0 unless the command is about one queue
	len     uint16 // length of the buffer at addr
	addr    uint64 // command-specific buffer, in or out
	data    uint64 // inline data: START_DEV takes the server pid here
	// Since 6.5 (UBLK_F_UNPRIVILEGED_DEV, GET_DEV_INFO2): the length of the
	// device path prepended to the buffer; in 6.1 this is data[1].
	devPathLen uint16
	pad        uint16
	reserved   uint32
}

// DevInfo is struct ublksrv_ctrl_dev_info: what ADD_DEV is asked for and what
// it (and GET_DEV_INFO) report back.
type DevInfo struct {
	NrHWQueues    uint16
	QueueDepth    uint16
	State         uint16 // DevStateDead, DevStateLive, DevStateQuiesced
	pad0          uint16
	MaxIOBufBytes uint32
	DevID         uint32
	ServerPID     int32 // ublksrv_pid
	pad1          uint32
	Flags         uint64 // UBLK_F_* negotiated
	ServerFlags   uint64 // ublksrv_flags: for the server, unseen by the driver
	OwnerUID      uint32 // reserved0 in 6.1; set by the kernel since 6.5
	OwnerGID      uint32
	reserved1     uint64
	reserved2     uint64
}

// Device states (UBLK_S_DEV_*).
const (
	DevStateDead     = 0
	DevStateLive     = 1
	DevStateQuiesced = 2
)

// ioDesc is struct ublksrv_io_desc: one per tag in the read-only array the
// server mmaps from /dev/ublkcN; the driver fills it before completing the
// tag's FETCH (or COMMIT_AND_FETCH) command.
type ioDesc struct {
	opFlags     uint32 // op in bits 0-7, UBLK_IO_F_* above
	nrSectors   uint32 // nr_zones for REPORT_ZONES
	startSector uint64
	addr        uint64 // the buffer the server gave with the command
}

// ioCmd is struct ublksrv_io_cmd, the 16-byte payload of FETCH_REQ and
// COMMIT_AND_FETCH_REQ; it fits a plain SQE's command area.
type ioCmd struct {
	qID    uint16
	tag    uint16
	result int32  // COMMIT: bytes done or -errno
	addr   uint64 // the tag's buffer; 0 with UBLK_F_USER_COPY
}

// paramBasic is struct ublk_param_basic.
type paramBasic struct {
	attrs           uint32
	logicalBSShift  uint8
	physicalBSShift uint8
	ioOptShift      uint8
	ioMinShift      uint8
	maxSectors      uint32
	chunkSectors    uint32
	devSectors      uint64
	virtBoundary    uint64
}

// paramDiscard is struct ublk_param_discard.
type paramDiscard struct {
	discardAlignment      uint32
	discardGranularity    uint32
	maxDiscardSectors     uint32
	maxWriteZeroesSectors uint32
	maxDiscardSegments    uint16
	reserved0             uint16
}

// paramDevt is struct ublk_param_devt (6.2+): read-only, filled by GET_PARAMS.
type paramDevt struct {
	charMajor uint32
	charMinor uint32
	diskMajor uint32
	diskMinor uint32
}

// paramZoned is struct ublk_param_zoned (6.6+). Never set by us; declared so
// that params has the 6.12 layout and GET_PARAMS has room for devt.
type paramZoned struct {
	maxOpenZones         uint32
	maxActiveZones       uint32
	maxZoneAppendSectors uint32
	reserved             [20]uint8
}

// params is struct ublk_params as of Linux 6.12. The kernel copies
// min(len, its own sizeof) bytes and ignores types it does not know, so one
// layout serves older and newer kernels.
type params struct {
	len     uint32
	types   uint32
	basic   paramBasic
	discard paramDiscard
	devt    paramDevt
	zoned   paramZoned
}

// Control commands (UBLK_CMD_*, legacy numbering; the ioctl-encoded form is
// _IOR/_IOWR('u', nr, struct ublksrv_ctrl_cmd), see ctrlOpcode).
const (
	cmdGetQueueAffinity = 0x01
	cmdGetDevInfo       = 0x02
	cmdAddDev           = 0x04
	cmdDelDev           = 0x05
	cmdStartDev         = 0x06
	cmdStopDev          = 0x07
	cmdSetParams        = 0x08
	cmdGetParams        = 0x09
	cmdGetFeatures      = 0x13 // 6.5+, ioctl-encoded only
	cmdDelDevAsync      = 0x14 // 6.9+, ioctl-encoded only
)

// I/O commands (UBLK_IO_*), sent on /dev/ublkcN; ioctl-encoded as
// _IOWR('u', nr, struct ublksrv_io_cmd).
const (
	ioFetchReq          = 0x20
	ioCommitAndFetchReq = 0x21
	ioNeedGetData       = 0x22
)

// ioResAbort is UBLK_IO_RES_ABORT (-ENODEV): the command completed because
// the device is stopping or the queue is being cancelled; the tag is not
// re-fetched.
const (
	ioResOK          = 0
	ioResNeedGetData = 1
	ioResAbort       = -19
)

// Feature flags (UBLK_F_*).
const (
	FeatureZeroCopy        Features = 1 << 0
	FeatureCmdCompInTask   Features = 1 << 1
	FeatureNeedGetData     Features = 1 << 2
	FeatureUserRecovery    Features = 1 << 3
	FeatureRecoveryReissue Features = 1 << 4
	FeatureUnprivilegedDev Features = 1 << 5
	FeatureCmdIoctlEncode  Features = 1 << 6
	FeatureUserCopy        Features = 1 << 7 // 6.5
	FeatureZoned           Features = 1 << 8 // 6.6
	FeatureRecoveryFailIO  Features = 1 << 9
	FeatureUpdateSize      Features = 1 << 10
	FeatureAutoBufReg      Features = 1 << 11
	FeatureQuiesce         Features = 1 << 12
	FeaturePerIODaemon     Features = 1 << 13
	FeatureBufRegOffDaemon Features = 1 << 14
	featureLenBytes                 = 8 // UBLK_FEATURES_LEN: GET_FEATURES writes a u64
)

// Request ops (UBLK_IO_OP_*), in bits 0-7 of ublksrv_io_desc.op_flags.
const (
	OpRead        Op = 0
	OpWrite       Op = 1
	OpFlush       Op = 2
	OpDiscard     Op = 3
	OpWriteSame   Op = 4
	OpWriteZeroes Op = 5
)

// Request flags (UBLK_IO_F_*), bits 8-31 of op_flags.
const (
	IOFlagFailfastDev       = 1 << 8
	IOFlagFailfastTransport = 1 << 9
	IOFlagFailfastDriver    = 1 << 10
	IOFlagMeta              = 1 << 11
	IOFlagFUA               = 1 << 13
	IOFlagNoUnmap           = 1 << 15
	IOFlagSwap              = 1 << 16
)

// Parameter types and basic attributes.
const (
	paramTypeBasic   = 1 << 0
	paramTypeDiscard = 1 << 1
	paramTypeDevt    = 1 << 2

	attrReadOnly      = 1 << 0
	attrRotational    = 1 << 1
	attrVolatileCache = 1 << 2
	attrFUA           = 1 << 3
)

// Memory map of /dev/ublkcN.
const (
	// cmdBufOffset is UBLKSRV_CMD_BUF_OFFSET: queue q's descriptor array is
	// mapped at cmdBufOffset + q*descArrayStride().
	cmdBufOffset = 0
	// MaxQueueDepth is UBLK_MAX_QUEUE_DEPTH.
	MaxQueueDepth = 4096
	// MaxQueues is UBLK_MAX_NR_QUEUES (1 << UBLK_QID_BITS).
	MaxQueues = 1 << qidBits

	// With UBLK_F_USER_COPY a request's data is read and written with
	// pread/pwrite on /dev/ublkcN at
	// ioBufOffset + q<<qidOff + tag<<tagOff + byte offset (6.5+).
	ioBufOffset = 0x80000000
	ioBufBits   = 25 // UBLK_IO_BUF_BITS: 32 MiB per request at most
	tagOff      = ioBufBits
	tagBits     = 16
	qidOff      = tagOff + tagBits
	qidBits     = 12
)

// descArrayBytes is the size of queue q's descriptor mapping for depth tags:
// round_up(depth * sizeof(ublksrv_io_desc), PAGE_SIZE), as the driver's mmap
// handler insists on.
func descArrayBytes(depth, pageSize int) int {
	return roundUp(depth*int(unsafe.Sizeof(ioDesc{})), pageSize)
}

// descArrayOffset is the mmap offset of queue q's descriptor array. The
// driver strides queues by the size for the *maximum* depth
// (ublk_max_cmd_buf_size), not the device's depth.
func descArrayOffset(q, pageSize int) int64 {
	return cmdBufOffset + int64(q)*int64(descArrayBytes(MaxQueueDepth, pageSize))
}

// userCopyOffset is the /dev/ublkcN file offset of byte 0 of (q, tag)'s
// request data under UBLK_F_USER_COPY.
func userCopyOffset(q, tag uint16) uint64 {
	return ioBufOffset + uint64(q)<<qidOff + uint64(tag)<<tagOff
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// ioctl encoding (include/uapi/asm-generic/ioctl.h): dir<<30 | size<<16 |
// type<<8 | nr, with dir 2 = _IOR and 3 = _IOWR.
const (
	iocRead      = 2
	iocReadWrite = 3
	iocType      = 'u'
)

func ioc(dir, nr, size uint32) uint32 { return dir<<30 | size<<16 | iocType<<8 | nr }

// ctrlOpcode returns the URING_CMD cmd_op for control command nr: the
// ioctl-encoded form (UBLK_U_CMD_*) when the driver has
// UBLK_F_CMD_IOCTL_ENCODE, else the legacy number. GET_QUEUE_AFFINITY,
// GET_DEV_INFO, GET_PARAMS, GET_FEATURES and DEL_DEV_ASYNC are _IOR (as the
// header declares them), the rest _IOWR.
func ctrlOpcode(nr uint32, ioctlEncode bool) uint32 {
	if !ioctlEncode {
		return nr
	}
	dir := uint32(iocReadWrite)
	switch nr {
	case cmdGetQueueAffinity, cmdGetDevInfo, cmdGetParams, cmdGetFeatures, cmdDelDevAsync:
		dir = iocRead
	}
	return ioc(dir, nr, uint32(unsafe.Sizeof(ctrlCmd{})))
}

// ioOpcode returns the cmd_op for I/O command nr (UBLK_U_IO_* or legacy).
func ioOpcode(nr uint32, ioctlEncode bool) uint32 {
	if !ioctlEncode {
		return nr
	}
	return ioc(iocReadWrite, nr, uint32(unsafe.Sizeof(ioCmd{})))
}
