package ublk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOpcodeEncoding(t *testing.T) {
	for _, c := range []struct {
		name   string
		got    uint32
		want   uint32
		legacy uint32
	}{
		// _IOR/_IOWR('u', nr, struct) worked out by hand; TestLayoutMatchesHeader
		// checks the same encoding against the C macros.
		{"GET_DEV_INFO", ctrlOpcode(cmdGetDevInfo, true), 0x80207502, ctrlOpcode(cmdGetDevInfo, false)},
		{"ADD_DEV", ctrlOpcode(cmdAddDev, true), 0xc0207504, ctrlOpcode(cmdAddDev, false)},
		{"DEL_DEV", ctrlOpcode(cmdDelDev, true), 0xc0207505, ctrlOpcode(cmdDelDev, false)},
		{"START_DEV", ctrlOpcode(cmdStartDev, true), 0xc0207506, ctrlOpcode(cmdStartDev, false)},
		{"STOP_DEV", ctrlOpcode(cmdStopDev, true), 0xc0207507, ctrlOpcode(cmdStopDev, false)},
		{"SET_PARAMS", ctrlOpcode(cmdSetParams, true), 0xc0207508, ctrlOpcode(cmdSetParams, false)},
		{"GET_PARAMS", ctrlOpcode(cmdGetParams, true), 0x80207509, ctrlOpcode(cmdGetParams, false)},
		{"GET_FEATURES", ctrlOpcode(cmdGetFeatures, true), 0x80207513, ctrlOpcode(cmdGetFeatures, false)},
		{"FETCH_REQ", ioOpcode(ioFetchReq, true), 0xc0107520, ioOpcode(ioFetchReq, false)},
		{"COMMIT_AND_FETCH_REQ", ioOpcode(ioCommitAndFetchReq, true), 0xc0107521, ioOpcode(ioCommitAndFetchReq, false)},
	} {
		if c.got != c.want {
			t.Errorf("UBLK_U_%s = %#x, want %#x", c.name, c.got, c.want)
		}
		if c.legacy != c.want&0xff {
			t.Errorf("legacy %s = %#x, want %#x", c.name, c.legacy, c.want&0xff)
		}
	}
}

func TestUserDataPacking(t *testing.T) {
	for _, c := range []struct {
		tag  uint16
		op   uint8
		data uint32
	}{{0, 0, 0}, {1, udCmd, 0}, {4095, 255, 0xffffffff}, {0xffff, 7, 12345}} {
		ud := packUserData(c.tag, c.op, c.data)
		if ud&udTarget != 0 {
			t.Errorf("pack(%v) sets the target bit", c)
		}
		tag, op, data := unpackUserData(ud | udTarget)
		if tag != c.tag || op != c.op || data != c.data {
			t.Errorf("unpack(pack(%v)) = %d %d %d", c, tag, op, data)
		}
	}
}

func TestOffsets(t *testing.T) {
	const page = 4096
	// 4096 descriptors of 24 bytes is 96 KiB, a whole number of pages: the
	// stride between queues whatever the depth.
	if got := descArrayOffset(1, page); got != 98304 {
		t.Errorf("descArrayOffset(1) = %d, want 98304", got)
	}
	if got := descArrayOffset(3, page); got != 3*98304 {
		t.Errorf("descArrayOffset(3) = %d", got)
	}
	if got := descArrayBytes(64, page); got != 4096 {
		t.Errorf("descArrayBytes(64) = %d, want 4096", got)
	}
	if got := descArrayBytes(200, page); got != 8192 {
		t.Errorf("descArrayBytes(200) = %d, want 8192", got)
	}
	if got, want := userCopyOffset(1, 2), uint64(0x80000000+1<<41+2<<25); got != want {
		t.Errorf("userCopyOffset(1, 2) = %#x, want %#x", got, want)
	}
}

func TestNoDriver(t *testing.T) {
	const want = "ublk driver not loaded: modprobe ublk_drv (needs CONFIG_BLK_DEV_UBLK, Linux 6.0 or later)"
	check := func(t *testing.T) {
		t.Helper()
		_, err := ProbeFeatures()
		if !errors.Is(err, ErrNoDriver) {
			t.Fatalf("ProbeFeatures: %v, want ErrNoDriver", err)
		}
		if err.Error() != want {
			t.Fatalf("message %q, want %q", err, want)
		}
		_, err = Create(DeviceConfig{SizeBytes: 1 << 20}, &Passthrough{})
		if !errors.Is(err, ErrNoDriver) || err.Error() != want {
			t.Fatalf("Create: %v, want %q", err, want)
		}
	}
	t.Run("missing path", func(t *testing.T) {
		old := controlPath
		controlPath = filepath.Join(t.TempDir(), "ublk-control")
		defer func() { controlPath = old }()
		check(t)
	})
	t.Run("this host", func(t *testing.T) {
		if _, err := os.Stat(ControlPath); err == nil {
			t.Skipf("%s exists: the driver is loaded here", ControlPath)
		}
		check(t)
	})
}

func TestPermissionMessages(t *testing.T) {
	old := euid
	defer func() { euid = old }()

	euid = func() int { return 1000 }
	err := openError(ControlPath, &os.PathError{Op: "open", Path: ControlPath, Err: unix.EACCES})
	if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EACCES) {
		t.Fatalf("openError(EACCES) = %v: want ErrPermission wrapping EACCES", err)
	}
	if !strings.Contains(err.Error(), "root") {
		t.Errorf("non-root message %q does not say root is needed", err)
	}
	err = cmdError("ADD_DEV", ^uint32(0), -int32(unix.EPERM))
	if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "run as root") {
		t.Errorf("cmdError(EPERM) as non-root = %v", err)
	}
	if !strings.Contains(err.Error(), "ADD_DEV (device -1)") {
		t.Errorf("cmdError does not name the command: %v", err)
	}

	euid = func() int { return 0 }
	err = cmdError("ADD_DEV", 3, -int32(unix.EPERM))
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_ADMIN is missing") {
		t.Errorf("cmdError(EPERM) as root = %v", err)
	}
	err = cmdError("SET_PARAMS", 3, -int32(unix.EINVAL))
	if errors.Is(err, ErrPermission) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("cmdError(EINVAL) = %v", err)
	}
}

func TestMissingFeature(t *testing.T) {
	err := missingFeature(FeatureUserCopy)
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "USER_COPY") || !strings.Contains(err.Error(), "6.5") {
		t.Errorf("missingFeature(USER_COPY) = %v", err)
	}
}

func TestFeaturesString(t *testing.T) {
	// The feature set the VM's 6.12 kernel reports.
	got := Features(0x1fe).String()
	want := "URING_CMD_COMP_IN_TASK|NEED_GET_DATA|USER_RECOVERY|USER_RECOVERY_REISSUE|UNPRIVILEGED_DEV|CMD_IOCTL_ENCODE|USER_COPY|ZONED"
	if got != want {
		t.Errorf("Features(0x1fe) = %s, want %s", got, want)
	}
	if got := Features(1 << 40).String(); got != "0x10000000000" {
		t.Errorf("unknown bit: %s", got)
	}
	if got := Features(0).String(); got != "none" {
		t.Errorf("Features(0) = %s", got)
	}
}

func TestDeviceConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  DeviceConfig
		bad  string // substring of the error, "" = valid
	}{
		{"defaults", DeviceConfig{}, ""},
		{"queues", DeviceConfig{Queues: MaxQueues + 1}, "queues"},
		{"depth", DeviceConfig{Depth: MaxQueueDepth + 1}, "queue depth"},
		{"io size unaligned", DeviceConfig{MaxIOBytes: 5000}, "max I/O size"},
		{"io size too big", DeviceConfig{MaxIOBytes: 64 << 20}, "max I/O size"},
		{"memory bound", DeviceConfig{Queues: 16, Depth: 4096, MaxIOBytes: 1 << 20}, "exceed"},
		{"lbs", DeviceConfig{LogicalBlockBytes: 1000}, "logical block size"},
		{"pbs", DeviceConfig{LogicalBlockBytes: 4096, PhysicalBlockBytes: 512}, "physical block size"},
		{"4k", DeviceConfig{LogicalBlockBytes: 4096}, ""},
		{"mode", DeviceConfig{UserCopy: 7}, "user copy"},
		{"zero copy mode", DeviceConfig{ZeroCopy: 7}, "zero copy mode"},
		{"zero copy with user copy", DeviceConfig{ZeroCopy: ZeroCopyOn, UserCopy: UserCopyOn}, "pick one"},
		{"zero copy", DeviceConfig{ZeroCopy: ZeroCopyOn}, ""},
	} {
		cfg := c.cfg
		cfg.EnsureDefaults()
		err := cfg.Validate()
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: error %v, want one about %q", c.name, err, c.bad)
		}
	}
}

func TestParams(t *testing.T) {
	d := &Device{cfg: DeviceConfig{}, info: DevInfo{MaxIOBufBytes: 512 << 10}}
	d.cfg.EnsureDefaults()
	p := d.params(&Passthrough{}, 2048)
	if p.types != paramTypeBasic|paramTypeDiscard {
		t.Errorf("types %#x", p.types)
	}
	b := p.basic
	if b.logicalBSShift != 9 || b.physicalBSShift != 12 || b.maxSectors != 1024 || b.devSectors != 2048 {
		t.Errorf("basic params %+v", b)
	}
	if b.attrs != attrVolatileCache {
		t.Errorf("attrs %#x: a Flusher gets a volatile cache", b.attrs)
	}
	if p.discard.maxDiscardSegments != 1 || p.discard.discardGranularity == 0 || p.discard.maxWriteZeroesSectors == 0 {
		t.Errorf("discard params %+v: the driver wants one segment and a granularity", p.discard)
	}
	// A target with neither Flusher nor Discarder nor ZeroWriter.
	p = d.params(Null{}, 2048)
	if p.types != paramTypeBasic || p.basic.attrs != 0 {
		t.Errorf("minimal target: types %#x attrs %#x", p.types, p.basic.attrs)
	}
}

func TestOpString(t *testing.T) {
	if OpWriteZeroes.String() != "WRITE_ZEROES" || Op(99).String() != "OP(99)" {
		t.Errorf("Op strings: %s %s", OpWriteZeroes, Op(99))
	}
}

// TestZeroCopyRefusedForImage: an image serves data from chunk copies, not
// only the original, so it cannot take the request's pages; asking for zero
// copy fails before the driver is touched (so also where ublk is missing).
func TestZeroCopyRefusedForImage(t *testing.T) {
	for _, target := range []Target{&ImageTarget{}, Null{}} {
		_, err := Create(DeviceConfig{SizeBytes: 1 << 20, ZeroCopy: ZeroCopyOn}, target)
		if err == nil || !strings.Contains(err.Error(), "does not serve fixed buffers") {
			t.Errorf("Create(%T, ZeroCopyOn) = %v, want a refusal naming fixed buffers", target, err)
		}
	}
}
