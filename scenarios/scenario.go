package scenarios

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is one benchmark run: the original devices, the difference
// storage, the engine options, the phases of the run and the workloads that
// run at once. All devices belong to the one snapshot. The YAML and JSON
// field names are the keys of the file format (see the package docs).
//
// A Scenario from Parse, Load or Builtin has its defaults applied and is
// valid. One built in Go should go through EnsureDefaults and Validate.
type Scenario struct {
	Name        string        `yaml:"name" json:"name"`
	Description string        `yaml:"description,omitempty" json:"description,omitempty"`
	Devices     []Device      `yaml:"devices" json:"devices"`
	DiffStorage DiffStorage   `yaml:"diff_storage" json:"diff_storage"`
	Engine      EngineOptions `yaml:"engine" json:"engine"`
	Phases      Phases        `yaml:"phases" json:"phases"`
	Workloads   []Workload    `yaml:"workloads" json:"workloads"`
	// Sweep, when set, makes the scenario a family of runs; see Expand.
	Sweep *Sweep `yaml:"sweep,omitempty" json:"sweep,omitempty"`

	src *source // where each key was in the file; nil when built in Go
}

// Device is an original device: the thing that is snapshotted.
type Device struct {
	Name string `yaml:"name" json:"name"`
	// Size of the device. Required for a tempfile; optional for a path
	// (0: use the size of the existing file); must be 0 for a blockdev, whose
	// size comes from the device. The runner checks sizes it cannot know here.
	Size    Size    `yaml:"size,omitempty" json:"size,omitempty"`
	Backing Backing `yaml:"backing" json:"backing"`
}

// Backing says what holds a device's bytes.
type Backing struct {
	Kind BackingKind `yaml:"kind" json:"kind"`
	// Path of the file (kind path) or block device (kind blockdev); must be
	// empty for a tempfile. Its existence is checked by the runner, not here.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// FS is where a tempfile is made; only for kind tempfile.
	FS FS `yaml:"fs,omitempty" json:"fs,omitempty"`
}

// BackingKind says what backs an original device.
type BackingKind string

// Backing kinds.
const (
	// BackingTempfile is a file the runner makes and removes, on FS.
	BackingTempfile BackingKind = "tempfile"
	// BackingPath is a regular file at Path, made if missing.
	BackingPath BackingKind = "path"
	// BackingBlockdev is the block device at Path.
	BackingBlockdev BackingKind = "blockdev"
)

var backingKinds = []BackingKind{BackingTempfile, BackingPath, BackingBlockdev}

// FS says where a temporary file is made.
type FS string

// Filesystems for temporary files.
const (
	// FSTmpfs makes the file in /dev/shm: memory-backed and fast, so the
	// figures show the engine rather than the disk.
	FSTmpfs FS = "tmpfs"
	// FSDisk makes the file under os.TempDir, or the directory the runner is
	// configured with.
	FSDisk FS = "disk"
)

var filesystems = []FS{FSTmpfs, FSDisk}

// DiffStorage is the difference storage shared by all devices of the
// snapshot. Like blksnap v6+, it is one file grown by Portion at a time up to
// Limit; past the limit the snapshot overflows.
type DiffStorage struct {
	Kind DiffStorageKind `yaml:"kind" json:"kind"`
	// Path of the file, directory or block device; must be empty for a
	// tempfile.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// FS is where a tempfile is made; only for kind tempfile.
	FS FS `yaml:"fs,omitempty" json:"fs,omitempty"`
	// Limit is the most the storage may grow to. The default is the sum of
	// the device sizes, which is enough for every chunk to be stored once.
	// It stays 0 after EnsureDefaults only when a device's size is not known
	// until run time; the runner then uses the sum of the actual sizes.
	Limit Size `yaml:"limit,omitempty" json:"limit,omitempty"`
	// Portion is the step the storage grows by (blksnap's
	// diff_storage_minimum); default engine.diff_storage_minimum, or Limit if
	// that is smaller.
	Portion Size `yaml:"portion,omitempty" json:"portion,omitempty"`
	// Overwrite lets a kind file storage replace an existing file (its
	// contents are lost). Without it an existing file is refused, so that a
	// path typed by mistake never destroys what is there.
	Overwrite *bool `yaml:"overwrite,omitempty" json:"overwrite,omitempty"`
}

// OverwriteAllowed reports whether an existing storage file may be replaced.
func (ds DiffStorage) OverwriteAllowed() bool { return ds.Overwrite != nil && *ds.Overwrite }

// DiffStorageKind says what holds the difference storage.
type DiffStorageKind string

// Difference storage kinds (those of blksnap v6+, plus a tempfile).
const (
	// DiffStorageTempfile is a file the runner makes and removes, on FS.
	DiffStorageTempfile DiffStorageKind = "tempfile"
	// DiffStorageFile is a regular file at Path.
	DiffStorageFile DiffStorageKind = "file"
	// DiffStorageDir is an O_TMPFILE made in the directory at Path.
	DiffStorageDir DiffStorageKind = "dir"
	// DiffStorageBlockdev is the block device at Path, opened exclusively.
	DiffStorageBlockdev DiffStorageKind = "blockdev"
)

var diffStorageKinds = []DiffStorageKind{DiffStorageTempfile, DiffStorageFile, DiffStorageDir, DiffStorageBlockdev}

// EngineOptions mirror blksnap's module parameters; the defaults are
// blksnap's. The chunk size of a device starts at 1<<ChunkMinimumShift and
// doubles while the device would have more than ChunkMaximumCount chunks, up
// to 1<<ChunkMaximumShift.
type EngineOptions struct {
	ChunkMinimumShift int `yaml:"chunk_minimum_shift" json:"chunk_minimum_shift"` // default 18 (256KiB)
	ChunkMaximumShift int `yaml:"chunk_maximum_shift" json:"chunk_maximum_shift"` // default 26 (64MiB)
	// ChunkMaximumCount defaults to 1<<40, blksnap v4+'s value (v1–v3 used
	// 2,097,152), so chunks grow past the minimum only on huge devices.
	ChunkMaximumCount int64 `yaml:"chunk_maximum_count" json:"chunk_maximum_count"`
	// ChunkMaximumInQueue bounds the chunks held in memory waiting for a
	// store worker; writers wait when it is full. Default 16 (v3–v7).
	ChunkMaximumInQueue    int  `yaml:"chunk_maximum_in_queue" json:"chunk_maximum_in_queue"`
	FreeDiffBufferPoolSize int  `yaml:"free_diff_buffer_pool_size" json:"free_diff_buffer_pool_size"` // default 128
	DiffStorageMinimum     Size `yaml:"diff_storage_minimum" json:"diff_storage_minimum"`             // default 1GiB
	StoreWorkers           int  `yaml:"store_workers" json:"store_workers"`                           // default 1
	// ImageReadBytesPerSecond throttles the snapshot's image reads (a
	// backup's speed limit); 0, the default, is none.
	ImageReadBytesPerSecond Size `yaml:"image_read_bytes_per_second,omitempty" json:"image_read_bytes_per_second,omitempty"`
	// WriterPriority makes image reads wait while copy-on-write falls
	// behind (an origin write waits for a chunk buffer); default true. Read
	// it with WriterPriorityEnabled.
	WriterPriority *bool `yaml:"writer_priority,omitempty" json:"writer_priority,omitempty"`
	// BackupNice is the CPU priority (nice 1..19) of the engine threads
	// serving image reads, with writer priority on; default 5.
	BackupNice int `yaml:"backup_nice" json:"backup_nice"`
}

// Engine defaults: blksnap's.
const (
	DefaultChunkMinimumShift      = 18
	DefaultChunkMaximumShift      = 26
	DefaultChunkMaximumCount      = int64(1) << 40
	DefaultChunkMaximumInQueue    = 16
	DefaultFreeDiffBufferPoolSize = 128
	DefaultDiffStorageMinimum     = GiB
	DefaultStoreWorkers           = 1
	DefaultBackupNice             = 5
)

// Phases is the timeline of a run:
//
//	prefill → [take, if TakeAfter is 0] → workloads start
//	  → Warmup (not measured) → Run (measured) → workloads stop → [destroy]
//
// TakeAfter counts from the start of the workloads, so with TakeAfter > 0
// the origin workloads first run with no snapshot (the raw baseline), and
// image workloads start only once the snapshot is taken.
type Phases struct {
	// Prefill writes the whole of every device (random bytes) before
	// anything else, so that copies move real data. Default true; read it
	// with PrefillEnabled.
	Prefill   *bool    `yaml:"prefill,omitempty" json:"prefill,omitempty"`
	Warmup    Duration `yaml:"warmup" json:"warmup"`         // default 0
	TakeAfter Duration `yaml:"take_after" json:"take_after"` // default 0: before the workloads start
	Run       Duration `yaml:"run" json:"run"`               // required
	// Destroy the snapshot when the workloads stop, and time it. Default
	// true; read it with DestroyEnabled.
	Destroy *bool `yaml:"destroy,omitempty" json:"destroy,omitempty"`
	// CowCapacity, when set, first measures for this long how many chunks
	// per second the engine copies with nothing else running (first writes
	// to fresh chunks, closed loop), so that the result can say how much of
	// that capacity the measured part used. Default 0: not measured.
	CowCapacity Duration `yaml:"cow_capacity,omitempty" json:"cow_capacity,omitempty"`
}

// WriterPriorityEnabled reports whether image reads yield to copy-on-write.
func (e EngineOptions) WriterPriorityEnabled() bool {
	return e.WriterPriority == nil || *e.WriterPriority
}

// PrefillEnabled reports whether devices are filled before the run.
func (p Phases) PrefillEnabled() bool { return p.Prefill == nil || *p.Prefill }

// DestroyEnabled reports whether the snapshot is destroyed after the run.
func (p Phases) DestroyEnabled() bool { return p.Destroy == nil || *p.Destroy }

// Total is how long the workloads run: Warmup + Run. Prefill and destroy
// come on top.
func (p Phases) Total() time.Duration { return time.Duration(p.Warmup) + time.Duration(p.Run) }

// Workload is one stream of I/O; all workloads of a scenario run at once.
type Workload struct {
	Name string       `yaml:"name" json:"name"` // default: the kind, made unique
	Kind WorkloadKind `yaml:"kind" json:"kind"` // required
	// Device is the name of the device; default the first one.
	Device  string  `yaml:"device" json:"device"`
	Pattern Pattern `yaml:"pattern" json:"pattern"` // default random
	// BlockSize of each operation, a multiple of 512; default 4KiB. Random
	// offsets are multiples of it.
	BlockSize  Size `yaml:"block_size" json:"block_size"`
	QueueDepth int  `yaml:"queue_depth" json:"queue_depth"` // per worker, 1..1024; default 1
	Workers    int  `yaml:"workers" json:"workers"`         // 1..64; default 1
	// Rate is the target for the whole workload; Unlimited (0) runs a closed
	// loop, anything else an open loop that issues on schedule.
	Rate Rate `yaml:"rate" json:"rate"`
	// Distribution of random offsets; default uniform. Empty for sequential.
	Distribution Distribution `yaml:"distribution,omitempty" json:"distribution,omitempty"`
	// ZipfTheta is the exponent for DistributionZipf, like fio's zipf:1.2;
	// more than 1 because Go's rand.Zipf needs s > 1. Default 1.2.
	ZipfTheta float64 `yaml:"zipf_theta,omitempty" json:"zipf_theta,omitempty"`
	// Hotspot is for DistributionHotspot; default 10% of space gets 90% of ops.
	Hotspot *Hotspot `yaml:"hotspot,omitempty" json:"hotspot,omitempty"`
	// DiscardShare is the fraction of operations that are discards instead
	// of writes, 0..1; only for origin-write (blksnap counts a discard as a
	// write and copies the chunk first).
	DiscardShare float64 `yaml:"discard_share,omitempty" json:"discard_share,omitempty"`
	// Loops is how many full passes a sequential workload makes before it
	// stops; 0 runs until the run ends.
	Loops int `yaml:"loops,omitempty" json:"loops,omitempty"`
}

// WorkloadKind says what a workload does.
type WorkloadKind string

// Workload kinds. Image workloads start when the snapshot is taken.
const (
	OriginWrite WorkloadKind = "origin-write" // writes (and discards) to the original device
	ImageRead   WorkloadKind = "image-read"   // reads the snapshot image
	ImageWrite  WorkloadKind = "image-write"  // writes the snapshot image (lands in chunk copies)
)

var workloadKinds = []WorkloadKind{OriginWrite, ImageRead, ImageWrite}

// IsImage reports whether the workload does I/O to the snapshot image, and so
// starts only when the snapshot is taken.
func (k WorkloadKind) IsImage() bool { return k == ImageRead || k == ImageWrite }

// Pattern says how offsets follow one another.
type Pattern string

// Access patterns.
const (
	PatternRandom     Pattern = "random"
	PatternSequential Pattern = "sequential"
)

var patterns = []Pattern{PatternRandom, PatternSequential}

// Distribution says how random offsets are spread over the device.
type Distribution string

// Distributions of random offsets.
const (
	DistributionUniform Distribution = "uniform"
	DistributionZipf    Distribution = "zipf"
	DistributionHotspot Distribution = "hotspot"
)

var distributions = []Distribution{DistributionUniform, DistributionZipf, DistributionHotspot}

// Hotspot sends FractionOfOps of the operations to the first
// FractionOfSpace of the device, and the rest uniformly over the rest.
type Hotspot struct {
	FractionOfSpace float64 `yaml:"fraction_of_space" json:"fraction_of_space"` // (0,1); default 0.1
	FractionOfOps   float64 `yaml:"fraction_of_ops" json:"fraction_of_ops"`     // (0,1]; default 0.9
}

// Workload defaults.
const (
	DefaultBlockSize  = 4 * KiB
	DefaultQueueDepth = 1
	DefaultWorkers    = 1
	DefaultZipfTheta  = 1.2
)

// DefaultHotspot is the hotspot of a hotspot workload that gives none.
var DefaultHotspot = Hotspot{FractionOfSpace: 0.1, FractionOfOps: 0.9}

// Device returns the device with the given name, or nil.
func (s *Scenario) Device(name string) *Device {
	for i := range s.Devices {
		if s.Devices[i].Name == name {
			return &s.Devices[i]
		}
	}
	return nil
}

// YAML renders s in the file format, indented by two spaces: what
// `snapring scenarios show` prints for a resolved scenario. Parse reads it
// back to an equal scenario.
func (s *Scenario) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("scenarios: encode %s: %w", s.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("scenarios: encode %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}

// EnsureDefaults fills in every unset field with its default and returns s.
// Zero means unset for every field whose zero is not itself meaningful; a
// file that sets such a field to 0 is refused by the decoder instead.
func (s *Scenario) EnsureDefaults() *Scenario {
	for i := range s.Devices {
		d := &s.Devices[i]
		if d.Name == "" {
			d.Name = fmt.Sprintf("dev%d", i)
		}
		if d.Backing.Kind == "" {
			d.Backing.Kind = BackingTempfile
		}
		if d.Backing.Kind == BackingTempfile && d.Backing.FS == "" {
			d.Backing.FS = FSTmpfs
		}
	}
	s.Engine.ensureDefaults()
	s.DiffStorage.ensureDefaults(s.Devices, s.Engine)
	if s.Phases.Prefill == nil {
		s.Phases.Prefill = newBool(true)
	}
	if s.Phases.Destroy == nil {
		s.Phases.Destroy = newBool(true)
	}
	s.ensureWorkloadDefaults()
	return s
}

func (e *EngineOptions) ensureDefaults() {
	setDefault(&e.ChunkMinimumShift, DefaultChunkMinimumShift)
	setDefault(&e.ChunkMaximumShift, DefaultChunkMaximumShift)
	setDefault(&e.ChunkMaximumCount, DefaultChunkMaximumCount)
	setDefault(&e.ChunkMaximumInQueue, DefaultChunkMaximumInQueue)
	setDefault(&e.FreeDiffBufferPoolSize, DefaultFreeDiffBufferPoolSize)
	setDefault(&e.DiffStorageMinimum, DefaultDiffStorageMinimum)
	setDefault(&e.StoreWorkers, DefaultStoreWorkers)
	setDefault(&e.BackupNice, DefaultBackupNice)
}

func (ds *DiffStorage) ensureDefaults(devices []Device, engine EngineOptions) {
	if ds.Kind == "" {
		ds.Kind = DiffStorageTempfile
	}
	if ds.Kind == DiffStorageTempfile && ds.FS == "" {
		ds.FS = FSTmpfs
	}
	if ds.Limit == 0 {
		// At least the engine's smallest storage, in whole pages.
		if sum := sumOfKnownSizes(devices); sum > 0 {
			ds.Limit = (max(sum, MiB) + 4095) / 4096 * 4096
		}
	}
	if ds.Portion == 0 {
		ds.Portion = engine.DiffStorageMinimum
		if ds.Limit > 0 && ds.Limit < ds.Portion {
			ds.Portion = ds.Limit
		}
	}
}

// sumOfKnownSizes is the sum of the device sizes, or 0 when one is only known
// at run time or the sum does not make sense (a negative or huge size, which
// Validate refuses).
func sumOfKnownSizes(devices []Device) Size {
	var sum Size
	for _, d := range devices {
		if d.Size <= 0 || d.Size > maxDeviceSize {
			return 0
		}
		sum += d.Size
	}
	return sum
}

func (s *Scenario) ensureWorkloadDefaults() {
	taken := map[string]bool{}
	for _, w := range s.Workloads {
		taken[w.Name] = true
	}
	for i := range s.Workloads {
		w := &s.Workloads[i]
		if w.Name == "" && w.Kind != "" {
			w.Name = uniqueName(string(w.Kind), taken)
			taken[w.Name] = true
		}
		if w.Device == "" && len(s.Devices) > 0 {
			w.Device = s.Devices[0].Name
		}
		setDefault(&w.Pattern, PatternRandom)
		setDefault(&w.BlockSize, DefaultBlockSize)
		setDefault(&w.QueueDepth, DefaultQueueDepth)
		setDefault(&w.Workers, DefaultWorkers)
		if w.Pattern == PatternRandom {
			setDefault(&w.Distribution, DistributionUniform)
		}
		if w.Distribution == DistributionZipf {
			setDefault(&w.ZipfTheta, DefaultZipfTheta)
		}
		if w.Distribution == DistributionHotspot {
			if w.Hotspot == nil {
				w.Hotspot = &Hotspot{}
			}
			setDefault(&w.Hotspot.FractionOfSpace, DefaultHotspot.FractionOfSpace)
			setDefault(&w.Hotspot.FractionOfOps, DefaultHotspot.FractionOfOps)
		}
	}
}

// uniqueName returns base, or base-2, base-3, … whichever is not taken.
func uniqueName(base string, taken map[string]bool) string {
	name := base
	for n := 2; taken[name]; n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	return name
}

// nameFromFile makes a valid scenario name from a file name:
// "dir/My run.yaml" → "My-run". Used when the file has no name key.
func nameFromFile(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	name := []byte(base)
	for i, c := range name {
		if !isNameByte(c) {
			name[i] = '-'
		}
	}
	switch {
	case file == "" || len(name) == 0:
		return "scenario"
	case !isAlnum(name[0]):
		name = append([]byte("scenario"), name...)
	}
	return string(name[:min(len(name), maxNameBytes)])
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

func newBool(b bool) *bool { return &b }
