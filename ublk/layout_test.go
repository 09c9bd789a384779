package ublk

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/snapring/snapring/internal/cprobe"
)

type layoutCheck struct {
	cStruct, cField string // cField "" means sizeof the struct
	got             uintptr
}

// layoutChecks pairs every field of kernel.go that the host's 6.1 header
// has with its C name.
func layoutChecks() []layoutCheck {
	var cc ctrlCmd
	var di DevInfo
	var d ioDesc
	var ic ioCmd
	var pb paramBasic
	var pd paramDiscard
	var p params
	return []layoutCheck{
		{"ublksrv_ctrl_cmd", "", unsafe.Sizeof(cc)},
		{"ublksrv_ctrl_cmd", "dev_id", unsafe.Offsetof(cc.devID)},
		{"ublksrv_ctrl_cmd", "queue_id", unsafe.Offsetof(cc.queueID)},
		{"ublksrv_ctrl_cmd", "len", unsafe.Offsetof(cc.len)},
		{"ublksrv_ctrl_cmd", "addr", unsafe.Offsetof(cc.addr)},
		{"ublksrv_ctrl_cmd", "data", unsafe.Offsetof(cc.data)},
		{"ublksrv_ctrl_dev_info", "", unsafe.Sizeof(di)},
		{"ublksrv_ctrl_dev_info", "nr_hw_queues", unsafe.Offsetof(di.NrHWQueues)},
		{"ublksrv_ctrl_dev_info", "queue_depth", unsafe.Offsetof(di.QueueDepth)},
		{"ublksrv_ctrl_dev_info", "state", unsafe.Offsetof(di.State)},
		{"ublksrv_ctrl_dev_info", "pad0", unsafe.Offsetof(di.pad0)},
		{"ublksrv_ctrl_dev_info", "max_io_buf_bytes", unsafe.Offsetof(di.MaxIOBufBytes)},
		{"ublksrv_ctrl_dev_info", "dev_id", unsafe.Offsetof(di.DevID)},
		{"ublksrv_ctrl_dev_info", "ublksrv_pid", unsafe.Offsetof(di.ServerPID)},
		{"ublksrv_ctrl_dev_info", "pad1", unsafe.Offsetof(di.pad1)},
		{"ublksrv_ctrl_dev_info", "flags", unsafe.Offsetof(di.Flags)},
		{"ublksrv_ctrl_dev_info", "ublksrv_flags", unsafe.Offsetof(di.ServerFlags)},
		{"ublksrv_ctrl_dev_info", "reserved0", unsafe.Offsetof(di.OwnerUID)},
		{"ublksrv_ctrl_dev_info", "reserved1", unsafe.Offsetof(di.reserved1)},
		{"ublksrv_ctrl_dev_info", "reserved2", unsafe.Offsetof(di.reserved2)},
		{"ublksrv_io_desc", "", unsafe.Sizeof(d)},
		{"ublksrv_io_desc", "op_flags", unsafe.Offsetof(d.opFlags)},
		{"ublksrv_io_desc", "nr_sectors", unsafe.Offsetof(d.nrSectors)},
		{"ublksrv_io_desc", "start_sector", unsafe.Offsetof(d.startSector)},
		{"ublksrv_io_desc", "addr", unsafe.Offsetof(d.addr)},
		{"ublksrv_io_cmd", "", unsafe.Sizeof(ic)},
		{"ublksrv_io_cmd", "q_id", unsafe.Offsetof(ic.qID)},
		{"ublksrv_io_cmd", "tag", unsafe.Offsetof(ic.tag)},
		{"ublksrv_io_cmd", "result", unsafe.Offsetof(ic.result)},
		{"ublksrv_io_cmd", "addr", unsafe.Offsetof(ic.addr)},
		{"ublk_param_basic", "", unsafe.Sizeof(pb)},
		{"ublk_param_basic", "attrs", unsafe.Offsetof(pb.attrs)},
		{"ublk_param_basic", "logical_bs_shift", unsafe.Offsetof(pb.logicalBSShift)},
		{"ublk_param_basic", "physical_bs_shift", unsafe.Offsetof(pb.physicalBSShift)},
		{"ublk_param_basic", "io_opt_shift", unsafe.Offsetof(pb.ioOptShift)},
		{"ublk_param_basic", "io_min_shift", unsafe.Offsetof(pb.ioMinShift)},
		{"ublk_param_basic", "max_sectors", unsafe.Offsetof(pb.maxSectors)},
		{"ublk_param_basic", "chunk_sectors", unsafe.Offsetof(pb.chunkSectors)},
		{"ublk_param_basic", "dev_sectors", unsafe.Offsetof(pb.devSectors)},
		{"ublk_param_basic", "virt_boundary_mask", unsafe.Offsetof(pb.virtBoundary)},
		{"ublk_param_discard", "", unsafe.Sizeof(pd)},
		{"ublk_param_discard", "discard_alignment", unsafe.Offsetof(pd.discardAlignment)},
		{"ublk_param_discard", "discard_granularity", unsafe.Offsetof(pd.discardGranularity)},
		{"ublk_param_discard", "max_discard_sectors", unsafe.Offsetof(pd.maxDiscardSectors)},
		{"ublk_param_discard", "max_write_zeroes_sectors", unsafe.Offsetof(pd.maxWriteZeroesSectors)},
		{"ublk_param_discard", "max_discard_segments", unsafe.Offsetof(pd.maxDiscardSegments)},
		{"ublk_param_discard", "reserved0", unsafe.Offsetof(pd.reserved0)},
		{"ublk_params", "len", unsafe.Offsetof(p.len)},
		{"ublk_params", "types", unsafe.Offsetof(p.types)},
		{"ublk_params", "basic", unsafe.Offsetof(p.basic)},
		{"ublk_params", "discard", unsafe.Offsetof(p.discard)},
	}
}

// TestLayoutNewerThanHeader checks what the 6.1 header lacks against the
// 6.12 header (include/uapi/linux/ublk_cmd.h of Linux 6.12, the kernel our
// VM runs): the values below are computed by hand from the struct
// definitions quoted in the comments.
func TestLayoutNewerThanHeader(t *testing.T) {
	var cc ctrlCmd
	var di DevInfo
	var p params
	checks := []struct {
		what      string
		got, want uintptr
	}{
		// struct ublksrv_ctrl_cmd { __u32 dev_id; __u16 queue_id; __u16 len;
		// __u64 addr; __u64 data[1]; __u16 dev_path_len; __u16 pad;
		// __u32 reserved; };
		{"offsetof(ublksrv_ctrl_cmd, dev_path_len)", unsafe.Offsetof(cc.devPathLen), 24},
		{"offsetof(ublksrv_ctrl_cmd, pad)", unsafe.Offsetof(cc.pad), 26},
		{"offsetof(ublksrv_ctrl_cmd, reserved)", unsafe.Offsetof(cc.reserved), 28},
		// ublksrv_ctrl_dev_info: ... __u64 ublksrv_flags; __u32 owner_uid;
		// __u32 owner_gid; __u64 reserved1; __u64 reserved2;
		{"offsetof(ublksrv_ctrl_dev_info, owner_uid)", unsafe.Offsetof(di.OwnerUID), 40},
		{"offsetof(ublksrv_ctrl_dev_info, owner_gid)", unsafe.Offsetof(di.OwnerGID), 44},
		// struct ublk_param_devt { __u32 char_major, char_minor, disk_major,
		// disk_minor; };
		{"sizeof(ublk_param_devt)", unsafe.Sizeof(paramDevt{}), 16},
		// struct ublk_param_zoned { __u32 max_open_zones; __u32
		// max_active_zones; __u32 max_zone_append_sectors; __u8 reserved[20]; };
		{"sizeof(ublk_param_zoned)", unsafe.Sizeof(paramZoned{}), 32},
		// struct ublk_params { __u32 len; __u32 types; basic; discard; devt;
		// zoned; } in 6.12 (later kernels append dma, seg, integrity).
		{"offsetof(ublk_params, devt)", unsafe.Offsetof(p.devt), 60},
		{"offsetof(ublk_params, zoned)", unsafe.Offsetof(p.zoned), 76},
		{"sizeof(ublk_params) in 6.12", unsafe.Sizeof(p), 112},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: Go has %d, Linux 6.12 has %d", c.what, c.got, c.want)
		}
	}
	consts := []struct {
		what      string
		got, want uint64
	}{
		// #define UBLK_U_CMD_GET_FEATURES _IOR('u', 0x13, struct ublksrv_ctrl_cmd)
		{"UBLK_U_CMD_GET_FEATURES", uint64(ctrlOpcode(cmdGetFeatures, true)), 2<<30 | 32<<16 | 'u'<<8 | 0x13},
		// #define UBLK_U_CMD_DEL_DEV_ASYNC _IOR('u', 0x14, struct ublksrv_ctrl_cmd)
		{"UBLK_U_CMD_DEL_DEV_ASYNC", uint64(ctrlOpcode(cmdDelDevAsync, true)), 2<<30 | 32<<16 | 'u'<<8 | 0x14},
		{"UBLK_FEATURES_LEN", featureLenBytes, 8},
		{"UBLK_F_UNPRIVILEGED_DEV", uint64(FeatureUnprivilegedDev), 1 << 5},
		{"UBLK_F_CMD_IOCTL_ENCODE", uint64(FeatureCmdIoctlEncode), 1 << 6},
		{"UBLK_F_USER_COPY", uint64(FeatureUserCopy), 1 << 7},
		{"UBLK_F_ZONED", uint64(FeatureZoned), 1 << 8},
		{"UBLK_PARAM_TYPE_DEVT", paramTypeDevt, 1 << 2},
		{"UBLK_IO_BUF_BITS", ioBufBits, 25},
		{"UBLK_TAG_OFF", tagOff, 25},
		{"UBLK_TAG_BITS", tagBits, 16},
		{"UBLK_QID_OFF", qidOff, 41},
		{"UBLK_QID_BITS", qidBits, 12},
		{"UBLK_MAX_NR_QUEUES", MaxQueues, 4096},
	}
	for _, c := range consts {
		if c.got != c.want {
			t.Errorf("%s: Go has %#x, Linux 6.12 has %#x", c.what, c.got, c.want)
		}
	}
}

// TestLayoutMatchesHeader compiles a C program against the host's
// linux/ublk_cmd.h and checks each size and offset above, the constants, and
// our ioctl encoding of every opcode against the kernel's _IOR/_IOWR macros.
func TestLayoutMatchesHeader(t *testing.T) {
	checks := layoutChecks()
	type constCheck struct {
		expr string
		got  int64
	}
	consts := []constCheck{
		{"UBLK_CMD_GET_QUEUE_AFFINITY", cmdGetQueueAffinity}, {"UBLK_CMD_GET_DEV_INFO", cmdGetDevInfo},
		{"UBLK_CMD_ADD_DEV", cmdAddDev}, {"UBLK_CMD_DEL_DEV", cmdDelDev}, {"UBLK_CMD_START_DEV", cmdStartDev},
		{"UBLK_CMD_STOP_DEV", cmdStopDev}, {"UBLK_CMD_SET_PARAMS", cmdSetParams}, {"UBLK_CMD_GET_PARAMS", cmdGetParams},
		{"UBLK_IO_FETCH_REQ", ioFetchReq}, {"UBLK_IO_COMMIT_AND_FETCH_REQ", ioCommitAndFetchReq},
		{"UBLK_IO_NEED_GET_DATA", ioNeedGetData},
		{"UBLK_IO_RES_OK", ioResOK}, {"UBLK_IO_RES_NEED_GET_DATA", ioResNeedGetData}, {"UBLK_IO_RES_ABORT", ioResAbort},
		{"UBLKSRV_CMD_BUF_OFFSET", cmdBufOffset}, {"UBLKSRV_IO_BUF_OFFSET", ioBufOffset},
		{"UBLK_MAX_QUEUE_DEPTH", MaxQueueDepth},
		{"UBLK_F_SUPPORT_ZERO_COPY", int64(FeatureZeroCopy)}, {"UBLK_F_URING_CMD_COMP_IN_TASK", int64(FeatureCmdCompInTask)},
		{"UBLK_F_NEED_GET_DATA", int64(FeatureNeedGetData)}, {"UBLK_F_USER_RECOVERY", int64(FeatureUserRecovery)},
		{"UBLK_F_USER_RECOVERY_REISSUE", int64(FeatureRecoveryReissue)},
		{"UBLK_S_DEV_DEAD", DevStateDead}, {"UBLK_S_DEV_LIVE", DevStateLive}, {"UBLK_S_DEV_QUIESCED", DevStateQuiesced},
		{"UBLK_IO_OP_READ", int64(OpRead)}, {"UBLK_IO_OP_WRITE", int64(OpWrite)}, {"UBLK_IO_OP_FLUSH", int64(OpFlush)},
		{"UBLK_IO_OP_DISCARD", int64(OpDiscard)}, {"UBLK_IO_OP_WRITE_SAME", int64(OpWriteSame)},
		{"UBLK_IO_OP_WRITE_ZEROES", int64(OpWriteZeroes)},
		{"UBLK_IO_F_FAILFAST_DEV", IOFlagFailfastDev}, {"UBLK_IO_F_FAILFAST_TRANSPORT", IOFlagFailfastTransport},
		{"UBLK_IO_F_FAILFAST_DRIVER", IOFlagFailfastDriver}, {"UBLK_IO_F_META", IOFlagMeta},
		{"UBLK_IO_F_FUA", IOFlagFUA}, {"UBLK_IO_F_NOUNMAP", IOFlagNoUnmap}, {"UBLK_IO_F_SWAP", IOFlagSwap},
		{"UBLK_ATTR_READ_ONLY", attrReadOnly}, {"UBLK_ATTR_ROTATIONAL", attrRotational},
		{"UBLK_ATTR_VOLATILE_CACHE", attrVolatileCache}, {"UBLK_ATTR_FUA", attrFUA},
		{"UBLK_PARAM_TYPE_BASIC", paramTypeBasic}, {"UBLK_PARAM_TYPE_DISCARD", paramTypeDiscard},
	}
	// The ioctl-encoded opcodes (UBLK_U_*), spelled as the newer header
	// defines them, built from the 6.1 structs (whose sizes are unchanged).
	for _, c := range []struct {
		dir string
		nr  uint32
	}{
		{"_IOR", cmdGetQueueAffinity}, {"_IOR", cmdGetDevInfo}, {"_IOWR", cmdAddDev}, {"_IOWR", cmdDelDev},
		{"_IOWR", cmdStartDev}, {"_IOWR", cmdStopDev}, {"_IOWR", cmdSetParams}, {"_IOR", cmdGetParams},
		{"_IOR", cmdGetFeatures},
	} {
		consts = append(consts, constCheck{fmt.Sprintf("%s('u', %#x, struct ublksrv_ctrl_cmd)", c.dir, c.nr), int64(ctrlOpcode(c.nr, true))})
	}
	for _, nr := range []uint32{ioFetchReq, ioCommitAndFetchReq, ioNeedGetData} {
		consts = append(consts, constCheck{fmt.Sprintf("_IOWR('u', %#x, struct ublksrv_io_cmd)", nr), int64(ioOpcode(nr, true))})
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
		probe = append(probe, cprobe.Const(c.expr, c.got))
	}
	cprobe.Run(t, []string{"linux/ublk_cmd.h", "errno.h", "linux/ioctl.h"}, probe)
}
