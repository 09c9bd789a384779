package ublk

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/snapring/snapring/engine"
)

// DefaultSnapshotWait bounds how long Teardown waits for a destroyed
// snapshot to release its difference storage (engine.Snapshot.Done).
const DefaultSnapshotWait = 30 * time.Second

// ErrSnapshotWait means a destroyed snapshot did not release its requests in
// flight and difference storage within the wait; Teardown went on to remove
// the origins anyway (their queues end the requests still in flight).
var ErrSnapshotWait = errors.New("ublk: destroyed snapshot did not finish in time")

// Teardown removes what serves one or more snapshots in the only safe order:
// first the image devices (nothing reads a snapshot once it is destroyed),
// then each snapshot is destroyed and waited for (Done, at most wait each,
// 0 for DefaultSnapshotWait), then the origin devices (whose queues keep
// serving origin writes until the snapshots have let go of them), and last
// the engine devices behind the origins. Every step runs even if an earlier
// one failed; the errors are joined. Nil entries are skipped. Both the
// one-shot `snapring snapshot run` and the daemon tear down through here.
func Teardown(images []*Device, snaps []*engine.Snapshot, origins []*Device, devs []*engine.Device, wait time.Duration) error {
	if wait <= 0 {
		wait = DefaultSnapshotWait
	}
	var errs []error
	for _, u := range images {
		if u != nil {
			if err := u.Close(); err != nil {
				errs = append(errs, fmt.Errorf("image %s: %w", u.Name(), err))
			}
		}
	}
	for _, s := range snaps {
		if s == nil {
			continue
		}
		s.Destroy()
		t := time.NewTimer(wait)
		select {
		case <-s.Done():
			if err := s.Err(); err != nil {
				errs = append(errs, err)
			}
		case <-t.C:
			errs = append(errs, fmt.Errorf("%w (%v)", ErrSnapshotWait, wait))
		}
		t.Stop()
	}
	for _, u := range origins {
		if u != nil {
			if err := u.Close(); err != nil {
				errs = append(errs, fmt.Errorf("origin %s: %w", u.Name(), err))
			}
		}
	}
	for _, d := range devs {
		if d != nil {
			if err := d.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// SnapshotSet owns everything one snapshot is served with: the engine
// devices, their ublk origin devices, the engine snapshot and the image
// devices. Close tears them down in Teardown's order. It watches every ublk
// device it holds: one stopped by the driver (its queue failed, or someone
// deleted it) closes Stopped.
type SnapshotSet struct {
	mu      sync.Mutex
	devs    []*engine.Device
	origins []*Device
	snap    *engine.Snapshot
	images  []*Device
	closed  bool
	err     error

	quit        chan struct{}
	watchers    sync.WaitGroup
	stopped     chan struct{}
	stoppedOnce sync.Once
	stoppedDev  string
}

// NewSnapshotSet starts an empty set; add to it in the order things are
// created (devices, origins, snapshot, images).
func NewSnapshotSet() *SnapshotSet {
	return &SnapshotSet{quit: make(chan struct{}), stopped: make(chan struct{})}
}

// AddDevice records an engine device, closed last.
func (s *SnapshotSet) AddDevice(d *engine.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devs = append(s.devs, d)
}

// SetSnapshot records the engine snapshot, destroyed between the images and
// the origins.
func (s *SnapshotSet) SetSnapshot(snap *engine.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = snap
}

// AddOrigin records a ublk origin device and watches it.
func (s *SnapshotSet) AddOrigin(u *Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.origins = append(s.origins, u)
	s.watchLocked(u)
}

// AddImage records a ublk image device and watches it.
func (s *SnapshotSet) AddImage(u *Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images = append(s.images, u)
	s.watchLocked(u)
}

func (s *SnapshotSet) watchLocked(u *Device) {
	if s.closed {
		return
	}
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		select {
		case <-u.Done():
			s.stoppedOnce.Do(func() {
				s.mu.Lock()
				s.stoppedDev = u.Name()
				s.mu.Unlock()
				close(s.stopped)
			})
		case <-s.quit:
		}
	}()
}

// Stopped is closed when one of the set's ublk devices stopped without
// Close (the driver aborted it); StoppedDevice names it.
func (s *SnapshotSet) Stopped() <-chan struct{} { return s.stopped }

// StoppedDevice names the device that closed Stopped ("" before).
func (s *SnapshotSet) StoppedDevice() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stoppedDev
}

// Close tears everything down (Teardown) and returns its errors; calling it
// again returns the same.
func (s *SnapshotSet) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.err
	}
	s.closed = true
	close(s.quit)
	images, origins, devs := s.images, s.origins, s.devs
	var snaps []*engine.Snapshot
	if s.snap != nil {
		snaps = append(snaps, s.snap)
	}
	s.mu.Unlock()
	s.watchers.Wait()
	err := Teardown(images, snaps, origins, devs, 0)
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	return err
}
