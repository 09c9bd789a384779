package ublk

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var (
	// ErrNoDriver means /dev/ublk-control does not exist: the ublk_drv
	// module is not loaded or the kernel was built without it. The error
	// returned is ErrNoDriver itself, so its message is exactly this text.
	ErrNoDriver = errors.New("ublk driver not loaded: modprobe ublk_drv (needs CONFIG_BLK_DEV_UBLK, Linux 6.0 or later)")
	// ErrPermission means the driver refused us: creating ublk devices
	// needs CAP_SYS_ADMIN.
	ErrPermission = errors.New("ublk: permission denied")
	// ErrNotSupported means the driver lacks a feature that was asked for;
	// the error names the feature and the first kernel release with it.
	ErrNotSupported = errors.New("ublk: not supported by this kernel")
	// ErrBusy means the device could not be removed yet because something
	// still holds it open.
	ErrBusy = errors.New("ublk: device busy")
	// ErrClosed is returned by operations on a closed Device.
	ErrClosed = errors.New("ublk: device closed")
)

// euid is os.Geteuid, replaceable in tests.
var euid = os.Geteuid

// permissionError explains EPERM/EACCES from what (opening the control
// device, or a control command): as a non-root user the fix is to be root;
// as root, something else (a container without CAP_SYS_ADMIN, a security
// module) is in the way.
func permissionError(what string, errno error) error {
	if euid() != 0 {
		return fmt.Errorf("%w: %s: %w: ublk devices can only be created by root (CAP_SYS_ADMIN); run as root (e.g. with sudo)", ErrPermission, what, errno)
	}
	return fmt.Errorf("%w: %s: %w: running as root, but CAP_SYS_ADMIN is missing (a container or a security module such as SELinux denies it)", ErrPermission, what, errno)
}

// openError turns a failure to open the control device into an error that
// says what to do.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return ErrNoDriver
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		var errno unix.Errno
		errors.As(err, &errno)
		return permissionError("open "+path, errno)
	}
	return fmt.Errorf("ublk: open %s: %w", path, err)
}

// cmdError wraps a negative control-command result.
func cmdError(name string, devID uint32, res int32) error {
	errno := unix.Errno(-res)
	what := fmt.Sprintf("%s (device %d)", name, int32(devID))
	if errno == unix.EPERM || errno == unix.EACCES {
		return permissionError(what, errno)
	}
	return fmt.Errorf("ublk: %s: %w", what, errno)
}
