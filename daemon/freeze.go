package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int)
// (linux/fs.h); x/sys does not name them.
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// mount is one line of /proc/self/mountinfo that matters here.
type mount struct {
	dev   uint64 // st_rdev of the block device (major:minor)
	point string
}

// parseMountinfo reads /proc/self/mountinfo lines: field 3 is major:minor,
// field 5 the mount point (octal escapes for space, tab, newline, \).
func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, mount{dev: unix.Mkdev(uint32(a), uint32(b)), point: unescapeMount(f[4])})
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsOf returns one mount point per file system mounted on any of the
// block devices named (the first mount of each: bind mounts share the
// superblock, which may be frozen once).
func mountsOf(blockDevs []string) ([]string, error) {
	want := map[uint64]bool{}
	for _, p := range blockDevs {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return nil, fmt.Errorf("stat %s: %w", p, err)
		}
		want[st.Rdev] = true
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := parseMountinfo(f)
	if err != nil {
		return nil, err
	}
	var out []string
	done := map[uint64]bool{}
	for _, m := range ms {
		if want[m.dev] && !done[m.dev] {
			done[m.dev] = true
			out = append(out, m.point)
		}
	}
	return out, nil
}

// frozen is a set of frozen file systems, thawed by thaw.
type frozen struct{ points []string }

// freeze freezes each mount point in turn; on the first failure it thaws
// the ones already frozen and returns the error.
func freeze(points []string) (*frozen, error) {
	fz := &frozen{}
	for _, p := range points {
		if err := ioctlPath(p, ioctlFIFREEZE); err != nil {
			thawErr := fz.thaw()
			return nil, errors.Join(fmt.Errorf("FIFREEZE %s: %w", p, err), thawErr)
		}
		fz.points = append(fz.points, p)
	}
	return fz, nil
}

// thaw thaws every frozen file system, trying them all.
func (fz *frozen) thaw() error {
	if fz == nil {
		return nil
	}
	var errs []error
	for _, p := range fz.points {
		if err := ioctlPath(p, ioctlFITHAW); err != nil {
			errs = append(errs, fmt.Errorf("FITHAW %s: %w", p, err))
		}
	}
	fz.points = nil
	return errors.Join(errs...)
}

func ioctlPath(path string, req uint) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
