// Package api holds the types of snapring's control API (version 1): the
// JSON bodies of every request and response under /v1/, the error codes and
// the event kinds. The daemon serves them and package client speaks them;
// docs/api.md documents each request.
package api

import "time"

// Version is the API version, the first component of every path (/v1/...).
const Version = "v1"

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/snapring/snapring.sock"

// Error is the body of every response that is not a success: a stable
// machine-readable Code and a one-line Message for people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes; they never change meaning.
const (
	CodeInvalidRequest   = "invalid_request"   // 400: malformed JSON, unknown field, bad value
	CodeRequestTooLarge  = "request_too_large" // 413: body over the limit
	CodeNotFound         = "not_found"         // 404: no such device, snapshot or route
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"          // 409: the object is in a state that forbids it
	CodePermissionDenied = "permission_denied" // 403: the peer is neither root nor in the group
	CodeUblkUnavailable  = "ublk_unavailable"  // 503: ublk driver missing or refusing
	CodeFreezeFailed     = "freeze_failed"     // 500: FIFREEZE failed; nothing was taken
	CodeStorageFailed    = "storage_failed"    // 500: difference storage refused (I/O)
	CodeTooManyRequests  = "too_many_subscribers"
	CodeShuttingDown     = "shutting_down" // 503
	CodeInternal         = "internal"      // 500
)

// Health is GET /v1/health.
type Health struct {
	Status        string  `json:"status"` // "ok", or "stopping"
	Devices       int     `json:"devices"`
	Snapshots     int     `json:"snapshots"`
	Subscribers   int     `json:"subscribers"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	// The daemon process's resources, for leak checks (a soak compares
	// them over hours): goroutines, open file descriptors, resident memory.
	Goroutines int   `json:"goroutines"`
	OpenFDs    int   `json:"open_fds"`
	RSSBytes   int64 `json:"rss_bytes"`
}

// VersionInfo is GET /v1/version.
type VersionInfo struct {
	Version   string `json:"version"`    // the build's version (module version or "devel")
	API       string `json:"api"`        // "v1"
	GoVersion string `json:"go_version"` // runtime.Version()
}

// DeviceAddRequest is POST /v1/devices: expose Path (a regular file or a
// block device) as a ublk origin device. Zero fields take the configured
// defaults.
type DeviceAddRequest struct {
	Path       string `json:"path"`
	Queues     int    `json:"queues,omitempty"`
	Depth      int    `json:"depth,omitempty"`
	MaxIOBytes int    `json:"max_io_bytes,omitempty"`
	UserCopy   string `json:"user_copy,omitempty"` // auto, on or off
	// Direct opens Path with O_DIRECT (engine.DeviceOptions.Direct): no
	// second copy of its data in the page cache; requests then follow its
	// logical block size.
	Direct bool `json:"direct,omitempty"`
}

// Device is one origin device the daemon serves.
type Device struct {
	ID         uint64    `json:"id"`
	Path       string    `json:"path"`
	Name       string    `json:"name"` // /dev/ublkbN (empty in process)
	UblkID     int64     `json:"ublk_id"`
	SizeBytes  int64     `json:"size_bytes"`
	Queues     int       `json:"queues"`
	Depth      int       `json:"depth"`
	MaxIOBytes int       `json:"max_io_bytes"`
	Direct     bool      `json:"direct,omitempty"`    // the original is open with O_DIRECT
	DataPath   string    `json:"data_path,omitempty"` // how the ublk device moves data (ublk.Device.DataPath)
	Snapshot   uint64    `json:"snapshot,omitempty"`  // the snapshot covering it
	AddedAt    time.Time `json:"added_at"`
}

// DeviceList is GET /v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// Storage is a snapshot's difference storage: a file, a directory (an
// O_TMPFILE there) or a block device, grown by PortionBytes up to
// LimitBytes. Zero fields take the configured defaults.
type Storage struct {
	Path         string `json:"path,omitempty"`
	LimitBytes   int64  `json:"limit_bytes,omitempty"`
	PortionBytes int64  `json:"portion_bytes,omitempty"`
}

// Policy is a snapshot's fill policy, LVM-style. When the storage is more
// than AutoextendThresholdPercent full (of its current limit), the daemon
// appends AutoextendPercent of the current limit (a new file next to the
// storage), as long as the total stays within AutoextendLimitBytes.
// Threshold 100 (or 0 limit) turns autoextend off. WarnPercents raise
// fill-warning events as the usage crosses each level upward.
type Policy struct {
	AutoextendThresholdPercent int   `json:"autoextend_threshold_percent"`
	AutoextendPercent          int   `json:"autoextend_percent"`
	AutoextendLimitBytes       int64 `json:"autoextend_limit_bytes"`
	WarnPercents               []int `json:"warn_percents"`
}

// SnapshotCreateRequest is POST /v1/snapshots.
type SnapshotCreateRequest struct {
	Name                string   `json:"name,omitempty"` // default snap-<id>
	Devices             []uint64 `json:"devices"`
	Storage             Storage  `json:"storage"`
	Policy              *Policy  `json:"policy,omitempty"`
	ChunkMinimumShift   uint     `json:"chunk_minimum_shift,omitempty"`
	ChunkMaximumInQueue int      `json:"chunk_maximum_in_queue,omitempty"`
	// BackupNice is the CPU priority (nice 1..19) of the images' ublk
	// queues; default 5 (engine.Options.BackupNice).
	BackupNice int `json:"backup_nice,omitempty"`
}

// TakeRequest is POST /v1/snapshots/{id}/take.
type TakeRequest struct {
	// Freeze freezes (FIFREEZE) every file system mounted on the snapshot's
	// origin devices for the instant of the take, and thaws them after it,
	// on every path.
	Freeze bool `json:"freeze"`
}

// AppendRequest is POST /v1/snapshots/{id}/append: add a file (which must
// exist; LengthBytes of it are allocated) or a range of a block device
// (LengthBytes 0: to its end) to the difference storage.
type AppendRequest struct {
	Path        string `json:"path"`
	OffsetBytes int64  `json:"offset_bytes,omitempty"`
	LengthBytes int64  `json:"length_bytes,omitempty"`
}

// Snapshot states.
const (
	StateCreated   = "created"   // prepared, copy-on-write not yet on
	StateTaken     = "taken"     // copy-on-write on, images exposed
	StateCorrupted = "corrupted" // an image is invalid (overflow or a failed chunk); dm's "Invalid"
	StateDestroyed = "destroyed"
)

// SnapshotDevice is one device of a snapshot.
type SnapshotDevice struct {
	Device         uint64 `json:"device"`
	Path           string `json:"path"`
	Origin         string `json:"origin"` // /dev/ublkbN of the origin
	Image          string `json:"image"`  // /dev/ublkbM of the image, once taken
	ChunkSizeBytes int64  `json:"chunk_size_bytes"`
	Chunks         Chunks `json:"chunks"`    // this device's
	Corrupted      bool   `json:"corrupted"` // this device's image is invalid (reads fail with EIO)
}

// Chunks are the engine's chunk counters: Copied (read from the original
// for copy-on-write), Stored (written to the difference storage), InMemory
// (chunk buffers in use now: loading, waiting for the store or being
// stored), Failed (the image is corrupted).
type Chunks struct {
	Copied   int64 `json:"copied"`
	Stored   int64 `json:"stored"`
	InMemory int64 `json:"in_memory"`
	Failed   int64 `json:"failed"`
}

// StorageStatus is the difference storage as dm-snapshot's status reports
// it (used/total), plus the limit it may grow to.
type StorageStatus struct {
	Path          string   `json:"path"`
	UsedBytes     int64    `json:"used_bytes"`
	CapacityBytes int64    `json:"capacity_bytes"`
	LimitBytes    int64    `json:"limit_bytes"`
	UsedPercent   float64  `json:"used_percent"` // of the limit
	Appended      []string `json:"appended,omitempty"`
}

// Snapshot is GET /v1/snapshots/{id} (and what create, take and append
// return).
type Snapshot struct {
	ID            uint64           `json:"id"`
	Name          string           `json:"name"`
	State         string           `json:"state"`
	CreatedAt     time.Time        `json:"created_at"`
	TakenAt       *time.Time       `json:"taken_at,omitempty"`
	TakeSeconds   float64          `json:"take_seconds,omitempty"` // request to taken, freeze included
	Frozen        []string         `json:"frozen,omitempty"`       // mount points frozen for the take
	Devices       []SnapshotDevice `json:"devices"`
	Chunks        Chunks           `json:"chunks"`       // the sums over Devices
	StoreQueued   int64            `json:"store_queued"` // chunks waiting for a store worker (the store queue's depth)
	Storage       StorageStatus    `json:"storage"`
	Policy        Policy           `json:"policy"`
	EventsDropped int64            `json:"events_dropped"` // by the engine's own queue
	LastEvents    []Event          `json:"last_events"`
}

// SnapshotList is GET /v1/snapshots.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// Event kinds.
const (
	EventLowFreeSpace      = "low-free-space"
	EventNoSpace           = "no-space"
	EventOverflow          = "overflow"
	EventCorrupted         = "corrupted"
	EventFillWarning       = "fill-warning"
	EventAutoextend        = "autoextend"
	EventAutoextendFailed  = "autoextend-failed"
	EventStorageAppended   = "storage-appended"
	EventDeviceAdded       = "device-added"
	EventDeviceRemoved     = "device-removed"
	EventDeviceStopped     = "device-stopped" // the driver stopped a device the daemon serves
	EventSnapshotCreated   = "snapshot-created"
	EventSnapshotTaken     = "snapshot-taken"
	EventSnapshotDestroyed = "snapshot-destroyed"
	EventStaleDevice       = "stale-device" // left by a predecessor that crashed
	EventConfigReloaded    = "config-reloaded"
	EventHookFailed        = "hook-failed"
	// EventDropped is not an event but a marker in a stream: Dropped
	// events were lost before this point (a slow subscriber, or a resume
	// from a sequence number older than the history).
	EventDropped = "dropped"
)

// EventKinds lists every kind a hook or a filter may name.
var EventKinds = []string{EventLowFreeSpace, EventNoSpace, EventOverflow, EventCorrupted,
	EventFillWarning, EventAutoextend, EventAutoextendFailed, EventStorageAppended,
	EventDeviceAdded, EventDeviceRemoved, EventDeviceStopped, EventSnapshotCreated,
	EventSnapshotTaken, EventSnapshotDestroyed, EventStaleDevice, EventConfigReloaded,
	EventHookFailed}

// Event is one line of GET /v1/events and the answer of
// GET /v1/events/wait. Seq grows by one per event, from 1.
type Event struct {
	Seq            uint64    `json:"seq"`
	Time           time.Time `json:"time"`
	Kind           string    `json:"kind"`
	Snapshot       uint64    `json:"snapshot,omitempty"`
	Device         uint64    `json:"device,omitempty"`
	Path           string    `json:"path,omitempty"`
	Message        string    `json:"message,omitempty"`
	RequestedBytes int64     `json:"requested_bytes,omitempty"`
	Percent        float64   `json:"percent,omitempty"`
	Dropped        uint64    `json:"dropped,omitempty"` // EventDropped only
}

// WaitResult is GET /v1/events/wait: the first event after the given
// sequence number (of the given kinds and snapshot), or TimedOut.
type WaitResult struct {
	Event    *Event `json:"event,omitempty"`
	TimedOut bool   `json:"timed_out"`
}
