package ublk

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/uring"
)

// ControlPath is the ublk control device.
const ControlPath = "/dev/ublk-control"

// controlPath is ControlPath, replaceable in tests.
var controlPath = ControlPath

// Features is a UBLK_F_* mask as reported by GET_FEATURES or negotiated by
// ADD_DEV.
type Features uint64

var featureNames = []struct {
	bit    Features
	name   string
	kernel string // first release with it, where we rely on it
}{
	{FeatureZeroCopy, "SUPPORT_ZERO_COPY", ""},
	{FeatureCmdCompInTask, "URING_CMD_COMP_IN_TASK", ""},
	{FeatureNeedGetData, "NEED_GET_DATA", ""},
	{FeatureUserRecovery, "USER_RECOVERY", ""},
	{FeatureRecoveryReissue, "USER_RECOVERY_REISSUE", ""},
	{FeatureUnprivilegedDev, "UNPRIVILEGED_DEV", ""},
	{FeatureCmdIoctlEncode, "CMD_IOCTL_ENCODE", ""},
	{FeatureUserCopy, "USER_COPY", "6.5"},
	{FeatureZoned, "ZONED", "6.6"},
	{FeatureRecoveryFailIO, "USER_RECOVERY_FAIL_IO", ""},
	{FeatureUpdateSize, "UPDATE_SIZE", ""},
	{FeatureAutoBufReg, "AUTO_BUF_REG", "6.16"},
	{FeatureQuiesce, "QUIESCE", ""},
	{FeaturePerIODaemon, "PER_IO_DAEMON", ""},
	{FeatureBufRegOffDaemon, "BUF_REG_OFF_DAEMON", ""},
}

// String lists the flags by their UBLK_F_ names, e.g. "USER_COPY|ZONED".
func (f Features) String() string {
	var names []string
	for _, n := range featureNames {
		if f&n.bit != 0 {
			names = append(names, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("%#x", uint64(f)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// missingFeature is the error for a required feature the driver lacks.
func missingFeature(bit Features) error {
	for _, n := range featureNames {
		if n.bit == bit {
			if n.kernel == "" {
				return fmt.Errorf("%w: UBLK_F_%s", ErrNotSupported, n.name)
			}
			return fmt.Errorf("%w: UBLK_F_%s (added in Linux %s)", ErrNotSupported, n.name, n.kernel)
		}
	}
	return fmt.Errorf("%w: feature %#x", ErrNotSupported, uint64(bit))
}

// ctrl is an open /dev/ublk-control with its own SQE128 ring. Control
// commands are executed by the driver from io_uring's worker threads (it
// refuses the non-blocking inline issue), so buffers they name must be
// pinned: they live in a one-page Arena. A ctrl is safe for concurrent use;
// commands are serialized.
type ctrl struct {
	mu       sync.Mutex
	fd       int
	ring     *uring.Ring
	arena    *uring.Arena
	features Features
	encode   bool // use ioctl-encoded opcodes
	cqes     [1]uring.CQE
}

// Offsets of the command buffers inside the control arena.
const (
	ctrlArenaBytes   = 4096
	ctrlInfoOff      = 0
	ctrlParamsOff    = 256
	ctrlFeaturesOff  = 512
	ctrlUserDataBase = 0x75626c6b00000000 // "ublk" in the top bytes, for debugging
)

func openCtrl() (*ctrl, error) {
	fd, err := unix.Open(controlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(controlPath, err)
	}
	c := &ctrl{fd: fd}
	// START_DEV sleeps in the submission until every queue has fetched, and
	// DEL_DEV until the device is released: those entries must let the Go
	// scheduler run the queue goroutines meanwhile.
	c.ring, err = uring.New(uring.Options{Entries: 4, SQE128: true, SubmitMaySleep: true})
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ublk: control ring: %w", err)
	}
	c.arena, err = uring.NewArena(ctrlArenaBytes)
	if err != nil {
		c.ring.Close()
		unix.Close(fd)
		return nil, err
	}
	if err := c.probe(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// probe asks for the driver's features. GET_FEATURES exists only in its
// ioctl-encoded form (6.5+); older drivers reject it, and then we use the
// legacy opcodes with no optional features.
func (c *ctrl) probe() error {
	res, err := c.do(cmdGetFeatures, true, ctrlCmd{devID: ^uint32(0), queueID: ^uint16(0), len: featureLenBytes, addr: c.addr(ctrlFeaturesOff)})
	if err != nil {
		return err
	}
	switch {
	case res == 0:
		c.features = Features(*(*uint64)(unsafe.Pointer(&c.arena.Bytes()[ctrlFeaturesOff])))
		c.encode = c.features&FeatureCmdIoctlEncode != 0
	case res == -int32(unix.EOPNOTSUPP) || res == -int32(unix.EINVAL):
		c.features, c.encode = 0, false
	default:
		return cmdError("GET_FEATURES", ^uint32(0), res)
	}
	return nil
}

func (c *ctrl) addr(off int) uint64 {
	return uint64(uintptr(unsafe.Pointer(&c.arena.Bytes()[off])))
}

// do runs one control command and returns its result.
func (c *ctrl) do(nr uint32, encode bool, cmd ctrlCmd) (int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.ring.NextSQE()
	if err != nil {
		return 0, fmt.Errorf("ublk: control ring: %w", err)
	}
	s.PrepURingCmd(int32(c.fd), ctrlOpcode(nr, encode))
	*(*ctrlCmd)(unsafe.Pointer(&c.ring.CmdArea(s)[0])) = cmd
	s.SetUserData(ctrlUserDataBase | uint64(nr))
	if _, err := c.ring.SubmitAndWait(1); err != nil {
		return 0, fmt.Errorf("ublk: control ring: %w", err)
	}
	if c.ring.Drain(c.cqes[:]) != 1 || c.cqes[0].UserData != ctrlUserDataBase|uint64(nr) {
		panic("ublk: control ring returned a completion that is not the command's")
	}
	return c.cqes[0].Res, nil
}

// run is do with the driver's opcode encoding and an error for a negative
// result.
func (c *ctrl) run(name string, nr uint32, cmd ctrlCmd) error {
	res, err := c.do(nr, c.encode, cmd)
	if err != nil {
		return err
	}
	if res < 0 {
		return cmdError(name, cmd.devID, res)
	}
	return nil
}

// addDev creates a device as described by info (DevID ^0 for any free id)
// and returns what the driver made of it: the id, the queue count clamped to
// the CPU count, max_io_buf_bytes rounded to pages, the negotiated flags.
func (c *ctrl) addDev(info DevInfo) (DevInfo, error) {
	buf := (*DevInfo)(unsafe.Pointer(&c.arena.Bytes()[ctrlInfoOff]))
	*buf = info
	err := c.run("ADD_DEV", cmdAddDev, ctrlCmd{devID: info.DevID, queueID: ^uint16(0), len: uint16(unsafe.Sizeof(info)), addr: c.addr(ctrlInfoOff)})
	return *buf, err
}

func (c *ctrl) devInfo(devID uint32) (DevInfo, error) {
	buf := (*DevInfo)(unsafe.Pointer(&c.arena.Bytes()[ctrlInfoOff]))
	*buf = DevInfo{}
	err := c.run("GET_DEV_INFO", cmdGetDevInfo, ctrlCmd{devID: devID, queueID: ^uint16(0), len: uint16(unsafe.Sizeof(*buf)), addr: c.addr(ctrlInfoOff)})
	return *buf, err
}

func (c *ctrl) setParams(devID uint32, p params) error {
	p.len = uint32(unsafe.Sizeof(p))
	*(*params)(unsafe.Pointer(&c.arena.Bytes()[ctrlParamsOff])) = p
	return c.run("SET_PARAMS", cmdSetParams, ctrlCmd{devID: devID, queueID: ^uint16(0), len: uint16(p.len), addr: c.addr(ctrlParamsOff)})
}

func (c *ctrl) getParams(devID uint32) (params, error) {
	buf := (*params)(unsafe.Pointer(&c.arena.Bytes()[ctrlParamsOff]))
	*buf = params{len: uint32(unsafe.Sizeof(params{}))}
	err := c.run("GET_PARAMS", cmdGetParams, ctrlCmd{devID: devID, queueID: ^uint16(0), len: uint16(buf.len), addr: c.addr(ctrlParamsOff)})
	return *buf, err
}

// startDev blocks until every queue has issued FETCH_REQ for every tag, then
// adds the disk (/dev/ublkbN), which scans partitions with I/O the queues
// must serve.
func (c *ctrl) startDev(devID uint32, pid int) error {
	return c.run("START_DEV", cmdStartDev, ctrlCmd{devID: devID, queueID: ^uint16(0), data: uint64(pid)})
}

// stopDev removes the disk, waiting for its in-flight requests to complete,
// then completes every tag's pending fetch with UBLK_IO_RES_ABORT.
func (c *ctrl) stopDev(devID uint32) error {
	return c.run("STOP_DEV", cmdStopDev, ctrlCmd{devID: devID, queueID: ^uint16(0)})
}

// delDev removes the device. The driver frees it when the last reference is
// gone: /dev/ublkcN, the queue rings, and any process that still has
// /dev/ublkbN open. DEL_DEV blocks until then, without bound; so where the
// driver has DEL_DEV_ASYNC (6.9+) we use that and wait at most wait for the
// device to go, and say who is in the way if it does not.
func (c *ctrl) delDev(devID uint32, wait time.Duration) error {
	cmd := ctrlCmd{devID: devID, queueID: ^uint16(0)}
	if c.encode {
		res, err := c.do(cmdDelDevAsync, true, cmd)
		if err != nil {
			return err
		}
		switch {
		case res == 0:
			return c.waitGone(devID, wait)
		case res != -int32(unix.EOPNOTSUPP) && res != -int32(unix.EINVAL):
			return cmdError("DEL_DEV_ASYNC", devID, res)
		}
	}
	return c.run("DEL_DEV", cmdDelDev, cmd)
}

// waitGone polls GET_DEV_INFO until the driver no longer knows devID.
func (c *ctrl) waitGone(devID uint32, wait time.Duration) error {
	const poll = 5 * time.Millisecond
	deadline := time.Now().Add(wait)
	for {
		res, err := c.do(cmdGetDevInfo, c.encode, ctrlCmd{devID: devID, queueID: ^uint16(0), len: uint16(unsafe.Sizeof(DevInfo{})), addr: c.addr(ctrlInfoOff)})
		if err != nil {
			return err
		}
		if res == -int32(unix.ENODEV) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: ublk device %d is deleted but still held after %v (is /dev/ublkb%d open in some process?); the driver frees it when the last user closes it", ErrBusy, devID, wait, devID)
		}
		time.Sleep(poll)
	}
}

func (c *ctrl) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.ring != nil {
		errs = append(errs, c.ring.Close())
		c.ring = nil
	}
	if c.arena != nil {
		errs = append(errs, c.arena.Close())
		c.arena = nil
	}
	if c.fd >= 0 {
		errs = append(errs, unix.Close(c.fd))
		c.fd = -1
	}
	return errors.Join(errs...)
}

// ProbeFeatures opens the control device and returns the driver's features
// (0 for drivers older than 6.5, which cannot report them). It fails with
// ErrNoDriver when ublk_drv is not loaded.
func ProbeFeatures() (Features, error) {
	c, err := openCtrl()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.features, nil
}

// Remove stops and deletes ublk device id, for recovery after its server
// died (kill -9): the driver has failed its I/O, and the device stays until
// someone deletes it. It waits at most wait for the device to go.
func Remove(id uint32, wait time.Duration) error {
	c, err := openCtrl()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.stopDev(id); err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return c.delDev(id, wait)
}
