package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/ublk"
)

// stateFile records the ublk devices the daemon owns, in StateDir, so that
// a successor started after a crash (kill -9, OOM) can remove what it left.
// A lock file next to it keeps two daemons from sharing a state directory.
type stateFile struct {
	dir  string
	lock *os.File
	mu   sync.Mutex
}

type stateRecord struct {
	PID     int           `json:"pid"`
	Started time.Time     `json:"started"`
	Devices []stateDevice `json:"devices"`
}

type stateDevice struct {
	UblkID uint32 `json:"ublk_id"`
	Role   string `json:"role"` // origin or image
	Path   string `json:"path"`
}

const stateName, lockName = "state.json", "snapring.lock"

// openState creates the directory, takes the lock and returns the record
// the predecessor left (nil if none).
func openState(dir string) (*stateFile, *stateRecord, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("daemon: state_dir: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: state_dir: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		return nil, nil, fmt.Errorf("daemon: another snapring daemon holds %s: %w", filepath.Join(dir, lockName), err)
	}
	sf := &stateFile{dir: dir, lock: lf}
	data, err := os.ReadFile(filepath.Join(dir, stateName))
	if errors.Is(err, os.ErrNotExist) {
		return sf, nil, nil
	}
	if err != nil {
		sf.close(false)
		return nil, nil, fmt.Errorf("daemon: state: %w", err)
	}
	var rec stateRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		// A torn or foreign file: report it, start clean.
		return sf, &stateRecord{PID: -1}, nil
	}
	return sf, &rec, nil
}

// write replaces the state file atomically.
func (sf *stateFile) write(rec stateRecord) error {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	data, _ := json.MarshalIndent(rec, "", "  ")
	tmp := filepath.Join(sf.dir, stateName+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(sf.dir, stateName))
}

// close removes the state file (after a clean shutdown) and the lock.
func (sf *stateFile) close(clean bool) {
	if clean {
		os.Remove(filepath.Join(sf.dir, stateName))
	}
	sf.lock.Close()
}

// saveState records the ublk devices currently owned.
func (d *Daemon) saveState() {
	if d.state == nil {
		return
	}
	rec := stateRecord{PID: os.Getpid(), Started: d.started, Devices: []stateDevice{}}
	d.mu.Lock()
	for _, dev := range d.mu.devices {
		if dev.u != nil {
			rec.Devices = append(rec.Devices, stateDevice{UblkID: dev.u.ID(), Role: "origin", Path: dev.path})
		}
	}
	snaps := make([]*snapshot, 0, len(d.mu.snaps))
	for _, s := range d.mu.snaps {
		snaps = append(snaps, s)
	}
	d.mu.Unlock()
	for _, s := range snaps {
		for i, u := range s.imagesSnapshot() {
			rec.Devices = append(rec.Devices, stateDevice{UblkID: u.ID(), Role: "image", Path: s.devs[i].path})
		}
	}
	if err := d.state.write(rec); err != nil {
		d.log.Error("writing the state file", "dir", d.state.dir, "err", err)
	}
}

// cleanStale removes (or reports) the ublk devices a dead predecessor left.
func (d *Daemon) cleanStale(rec *stateRecord) {
	if rec == nil {
		return
	}
	if rec.PID == -1 {
		d.log.Warn("state file unreadable: ignored", "dir", d.state.dir)
		d.events.publish(api.Event{Kind: api.EventStaleDevice, Message: "state file unreadable; check /sys/block for ublkb devices left behind"})
		return
	}
	if len(rec.Devices) == 0 {
		return
	}
	d.log.Warn("the previous daemon did not shut down cleanly", "pid", rec.PID, "devices", len(rec.Devices))
	// Images first, then origins, like a clean teardown.
	for _, role := range []string{"image", "origin"} {
		for _, sd := range rec.Devices {
			if sd.Role != role {
				continue
			}
			name := "/dev/ublkb" + strconv.FormatUint(uint64(sd.UblkID), 10)
			var msg string
			if !exists("/sys/block/ublkb"+strconv.FormatUint(uint64(sd.UblkID), 10)) && !exists("/dev/ublkc"+strconv.FormatUint(uint64(sd.UblkID), 10)) {
				msg = fmt.Sprintf("%s (%s of %s) left by pid %d is already gone", name, sd.Role, sd.Path, rec.PID)
			} else if err := ublk.Remove(sd.UblkID, 10*time.Second); err != nil {
				msg = fmt.Sprintf("%s (%s of %s) left by pid %d could not be removed: %v", name, sd.Role, sd.Path, rec.PID, err)
			} else {
				msg = fmt.Sprintf("%s (%s of %s) left by pid %d removed", name, sd.Role, sd.Path, rec.PID)
			}
			d.log.Warn("stale device", "message", msg)
			d.events.publish(api.Event{Kind: api.EventStaleDevice, Path: sd.Path, Message: msg})
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
