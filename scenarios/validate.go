package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds. Every list, count and size a scenario can name has one, so that a
// typo cannot ask the runner for a million workers or a petabyte of tmpfs.
const (
	sectorSize           = 512
	maxNameBytes         = 128
	maxDescriptionBytes  = 4096
	maxPathBytes         = 4096
	maxDevices           = 16
	maxWorkloads         = 64
	maxSweepValues       = 64
	maxDeviceSize        = 1 << 50 // 1PiB
	maxBlockSize         = 64 * MiB
	maxQueueDepth        = 1024
	maxWorkers           = 64
	maxRate              = 10_000_000
	maxInflightBytes     = GiB // workers × queue_depth × block_size, of one workload and of all together
	minRun               = 100 * time.Millisecond
	minStorageBytes      = MiB // the engine's smallest growth portion
	storageAlign         = 4096
	maxLoops             = 1 << 20
	maxZipfTheta         = 100
	maxRunTotal          = 24 * time.Hour
	minShift             = 12
	maxShift             = 30
	maxChunkMaximumCount = int64(1) << 62
	maxChunksInQueue     = 4096
	maxFreeBufferPool    = 65536
	maxStoreWorkers      = 64
	maxDiffStorageMin    = TiB
)

// Validate checks s, which should have had EnsureDefaults applied, and
// returns the first problem found, wrapping ErrInvalid. Problems it cannot see
// (a missing path, the size of a block device) are the runner's to report.
func (s *Scenario) Validate() error {
	v := validator{s: s}
	v.scenario()
	return v.err
}

// validator keeps the first problem. Checks go on after one fails (and so
// must not assume earlier checks passed), which keeps each check to one line.
type validator struct {
	s   *Scenario
	err error
}

func (v *validator) failf(path, format string, args ...any) {
	if v.err == nil {
		v.err = v.s.errAt(path, format, args...)
	}
}

// intBounds are the ranges of the integer keys, by key; the decoder uses them
// too, to refuse an explicit 0 that EnsureDefaults would replace.
var intBounds = map[string]struct{ lo, hi int64 }{
	"chunk_minimum_shift":        {minShift, maxShift},
	"chunk_maximum_shift":        {minShift, maxShift},
	"chunk_maximum_count":        {1, maxChunkMaximumCount},
	"chunk_maximum_in_queue":     {1, maxChunksInQueue},
	"free_diff_buffer_pool_size": {1, maxFreeBufferPool},
	"store_workers":              {1, maxStoreWorkers},
	"backup_nice":                {1, 19},
	"queue_depth":                {1, maxQueueDepth},
	"workers":                    {1, maxWorkers},
	"loops":                      {0, maxLoops},
}

// intProblem says why got is out of range for the key at path, or "".
func intProblem(path string, got int64) string {
	key := lastKey(path)
	b, ok := intBounds[key]
	if !ok {
		panic("scenarios: no bounds for " + path)
	}
	if got < b.lo || got > b.hi {
		return fmt.Sprintf("%s %d out of range %d..%d", key, got, b.lo, b.hi)
	}
	return ""
}

// intRange checks the integer at path against intBounds.
func (v *validator) intRange(path string, got int64) {
	if problem := intProblem(path, got); problem != "" {
		v.failf(path, "%s", problem)
	}
}

func (v *validator) scenario() {
	s := v.s
	if s.Name == "" {
		v.failf("name", "missing name")
	} else if !validName(s.Name, true) {
		v.failf("name", "bad name %q: %s", s.Name, nameWant)
	}
	switch {
	case len(s.Description) > maxDescriptionBytes:
		v.failf("description", "description too long: %d bytes (at most %d)", len(s.Description), maxDescriptionBytes)
	case hasControl(s.Description, "\n\t"):
		v.failf("description", "bad description: want text without control characters other than newline and tab")
	}
	v.devices()
	// The engine's options before the storage: its portion defaults to
	// engine.diff_storage_minimum, whose problems are reported at that key.
	v.engine()
	v.diffStorage()
	v.phases()
	v.workloads()
	v.sweep()
}

const nameWant = "want letters, digits and . _ + = - (at most 128 bytes), starting with a letter or digit"

func (v *validator) devices() {
	devices := v.s.Devices
	switch {
	case len(devices) == 0:
		v.failf("devices", "no devices: want at least one")
	case len(devices) > maxDevices:
		v.failf("devices", "%s", tooMany(len(devices), "devices", maxDevices))
		return
	}
	for i, d := range devices {
		path := fmt.Sprintf("devices[%d]", i)
		if !validName(d.Name, false) {
			v.failf(path+".name", "bad name %q: %s", d.Name, nameWant)
		}
		if j := slices.IndexFunc(devices[:i], func(o Device) bool { return o.Name == d.Name }); j >= 0 {
			v.failf(path+".name", "duplicate device name %q", d.Name)
		}
		v.backing(path+".backing", d.Backing)
		v.deviceSize(path, d)
	}
}

func (v *validator) backing(path string, b Backing) {
	if !slices.Contains(backingKinds, b.Kind) {
		v.failf(path+".kind", "bad kind %q: want one of %s", b.Kind, list(backingKinds))
	}
	v.fs(path, string(b.Kind), b.Kind == BackingTempfile, b.FS)
	v.path(path, string(b.Kind), b.Kind == BackingTempfile, b.Path)
}

// fs checks the fs key of a backing or the difference storage; only a
// tempfile has one.
func (v *validator) fs(path, kind string, isTempfile bool, fs FS) {
	switch {
	case !isTempfile && fs != "":
		v.failf(path+".fs", "impossible: fs with kind %s (fs is only for tempfile)", kind)
	case isTempfile && !slices.Contains(filesystems, fs):
		v.failf(path+".fs", "bad fs %q: want one of %s", fs, list(filesystems))
	}
}

// path checks the path key: a tempfile makes its own file, every other kind
// needs one.
func (v *validator) path(path, kind string, isTempfile bool, p string) {
	switch {
	case isTempfile && p != "":
		v.failf(path+".path", "impossible: path with kind tempfile (a tempfile makes its own file)")
	case !isTempfile && p == "" && kind != "":
		v.failf(path+".path", "missing path for kind %s", kind)
	case len(p) > maxPathBytes || hasControl(p, ""):
		v.failf(path+".path", "bad path: want at most %d bytes and no control characters", maxPathBytes)
	}
}

func (v *validator) deviceSize(path string, d Device) {
	switch d.Backing.Kind {
	case BackingTempfile:
		if d.Size == 0 {
			v.failf(path+".size", "missing size for a tempfile device")
		}
	case BackingBlockdev:
		if d.Size != 0 {
			v.failf(path+".size", "impossible: size with backing kind blockdev (the size comes from the device)")
		}
	}
	v.sectors(path+".size", d.Size, maxDeviceSize)
}

// sectors checks that a size, when set, is a positive multiple of the sector
// size no larger than limit.
func (v *validator) sectors(path string, sz, limit Size) {
	switch {
	case sz < 0:
		v.failf(path, "%s %s must not be negative", lastKey(path), sz)
	case sz%sectorSize != 0:
		v.failf(path, "%s %s is not a multiple of 512 bytes", lastKey(path), sz)
	case sz > limit:
		v.failf(path, "%s %s larger than %s", lastKey(path), sz, limit)
	}
}

func (v *validator) diffStorage() {
	ds := v.s.DiffStorage
	const path = "diff_storage"
	if !slices.Contains(diffStorageKinds, ds.Kind) {
		v.failf(path+".kind", "bad kind %q: want one of %s", ds.Kind, list(diffStorageKinds))
	}
	v.fs(path, string(ds.Kind), ds.Kind == DiffStorageTempfile, ds.FS)
	v.path(path, string(ds.Kind), ds.Kind == DiffStorageTempfile, ds.Path)
	v.sectors(path+".limit", ds.Limit, maxDevices*maxDeviceSize)
	v.sectors(path+".portion", ds.Portion, maxDevices*maxDeviceSize)
	v.storageSize(path+".limit", ds.Limit)
	v.storageSize(path+".portion", ds.Portion)
	if ds.Overwrite != nil && ds.Kind != DiffStorageFile {
		v.failf(path+".overwrite", "impossible: overwrite with kind %s (only a file storage replaces an existing file)", ds.Kind)
	}
	switch {
	case ds.Portion == 0:
		v.failf(path+".portion", "missing portion")
	case ds.Limit > 0 && ds.Portion > ds.Limit:
		v.failf(path+".portion", "impossible: portion %s larger than limit %s", ds.Portion, ds.Limit)
	}
	if ds.Limit == 0 && sumOfKnownSizes(v.s.Devices) > 0 {
		v.failf(path+".limit", "missing limit")
	}
}

func (v *validator) engine() {
	e := v.s.Engine
	v.intRange("engine.chunk_minimum_shift", int64(e.ChunkMinimumShift))
	v.intRange("engine.chunk_maximum_shift", int64(e.ChunkMaximumShift))
	if e.ChunkMinimumShift > e.ChunkMaximumShift {
		v.failf("engine.chunk_minimum_shift", "impossible: chunk_minimum_shift %d larger than chunk_maximum_shift %d",
			e.ChunkMinimumShift, e.ChunkMaximumShift)
	}
	v.intRange("engine.chunk_maximum_count", e.ChunkMaximumCount)
	v.intRange("engine.chunk_maximum_in_queue", int64(e.ChunkMaximumInQueue))
	v.intRange("engine.free_diff_buffer_pool_size", int64(e.FreeDiffBufferPoolSize))
	v.intRange("engine.store_workers", int64(e.StoreWorkers))
	v.intRange("engine.backup_nice", int64(e.BackupNice))
	if r := e.ImageReadBytesPerSecond; r < 0 || r > TiB {
		v.failf("engine.image_read_bytes_per_second", "image_read_bytes_per_second %s out of range 0 (no throttle)..1TiB", r)
	}
	if e.DiffStorageMinimum <= 0 {
		v.failf("engine.diff_storage_minimum", "diff_storage_minimum %s must be positive", e.DiffStorageMinimum)
	}
	v.sectors("engine.diff_storage_minimum", e.DiffStorageMinimum, maxDiffStorageMin)
	v.storageSize("engine.diff_storage_minimum", e.DiffStorageMinimum)
}

// storageSize checks a difference-storage size, when set, against the
// engine's own rules (4 KiB multiples, at least 1 MiB), so that they are
// reported here, at the key the user wrote, not by the engine after the
// baseline has run.
func (v *validator) storageSize(path string, sz Size) {
	switch {
	case sz <= 0:
	case sz%storageAlign != 0:
		v.failf(path, "%s %s is not a multiple of 4KiB", lastKey(path), sz)
	case sz < minStorageBytes:
		v.failf(path, "%s %s smaller than 1MiB", lastKey(path), sz)
	}
}

func (v *validator) phases() {
	p := v.s.Phases
	if p.Run <= 0 {
		v.failf("phases.run", "run %s must be positive", p.Run)
	} else if p.Run < Duration(minRun) {
		v.failf("phases.run", "run %s shorter than %s: too short to measure", p.Run, Duration(minRun))
	}
	if p.Warmup < 0 {
		v.failf("phases.warmup", "warmup %s must not be negative", p.Warmup)
	}
	if p.CowCapacity < 0 || p.CowCapacity > Duration(time.Minute) {
		v.failf("phases.cow_capacity", "cow_capacity %s out of range 0..1m", p.CowCapacity)
	} else if p.CowCapacity > 0 && p.CowCapacity < Duration(minRun) {
		v.failf("phases.cow_capacity", "cow_capacity %s shorter than %s: too short to measure", p.CowCapacity, Duration(minRun))
	}
	if p.TakeAfter < 0 {
		v.failf("phases.take_after", "take_after %s must not be negative", p.TakeAfter)
	}
	if p.Run > 0 && p.Warmup >= 0 && p.Total() > maxRunTotal {
		v.failf("phases.run", "warmup %s + run %s longer than %s", p.Warmup, p.Run, Duration(maxRunTotal))
	}
	if p.Run > 0 && p.TakeAfter > 0 && p.TakeAfter >= Duration(p.Total()) {
		v.failf("phases.take_after", "impossible: take_after %s is not before the end of the workloads (warmup %s + run %s)",
			p.TakeAfter, p.Warmup, p.Run)
	}
}

func (v *validator) workloads() {
	workloads := v.s.Workloads
	switch {
	case len(workloads) == 0:
		v.failf("workloads", "no workloads: want at least one")
	case len(workloads) > maxWorkloads:
		v.failf("workloads", "%s", tooMany(len(workloads), "workloads", maxWorkloads))
		return
	}
	for i, w := range workloads {
		path := fmt.Sprintf("workloads[%d]", i)
		if !validName(w.Name, false) {
			v.failf(path+".name", "bad name %q: %s", w.Name, nameWant)
		}
		if j := slices.IndexFunc(workloads[:i], func(o Workload) bool { return o.Name == w.Name }); j >= 0 {
			v.failf(path+".name", "duplicate workload name %q", w.Name)
		}
		v.workload(path, w)
	}
	var inflight int64
	for _, w := range workloads {
		if w.QueueDepth > 0 && w.Workers > 0 && w.BlockSize > 0 && w.QueueDepth <= maxQueueDepth && w.Workers <= maxWorkers && w.BlockSize <= maxBlockSize {
			inflight += int64(w.Workers) * int64(w.QueueDepth) * int64(w.BlockSize)
		}
	}
	if inflight > int64(maxInflightBytes) {
		v.failf("workloads", "workers × queue_depth × block_size of all workloads together is %s in flight, more than %s",
			Size(inflight), maxInflightBytes)
	}
}

func (v *validator) workload(path string, w Workload) {
	if w.Kind == "" {
		v.failf(path+".kind", "missing kind: want one of %s", list(workloadKinds))
	} else if !slices.Contains(workloadKinds, w.Kind) {
		v.failf(path+".kind", "bad kind %q: want one of %s", w.Kind, list(workloadKinds))
	}
	dev := v.s.Device(w.Device)
	if dev == nil {
		v.failf(path+".device", "impossible: device %q not found (have %s)", w.Device, deviceNames(v.s.Devices))
	}
	if !slices.Contains(patterns, w.Pattern) {
		v.failf(path+".pattern", "bad pattern %q: want one of %s", w.Pattern, list(patterns))
	}
	v.blockSize(path, w, dev)
	v.intRange(path+".queue_depth", int64(w.QueueDepth))
	v.intRange(path+".workers", int64(w.Workers))
	if w.Rate < 0 || w.Rate > maxRate {
		v.failf(path+".rate", "rate %d out of range 0..%d (0 is unlimited)", w.Rate, maxRate)
	}
	v.distribution(path, w, dev)
	switch {
	case !(w.DiscardShare >= 0 && w.DiscardShare <= 1):
		v.failf(path+".discard_share", "discard_share %v out of range 0..1", w.DiscardShare)
	case w.DiscardShare != 0 && w.Kind != OriginWrite:
		v.failf(path+".discard_share", "impossible: discard_share with kind %s (only origin-write discards)", w.Kind)
	}
	v.intRange(path+".loops", int64(w.Loops))
	if w.Loops != 0 && w.Pattern != PatternSequential {
		v.failf(path+".loops", "impossible: loops with pattern %s (only sequential workloads make passes)", w.Pattern)
	}
}

func (v *validator) blockSize(path string, w Workload, dev *Device) {
	path += ".block_size"
	switch {
	case w.BlockSize <= 0 || w.BlockSize%sectorSize != 0:
		v.failf(path, "block_size %s is not a positive multiple of 512 bytes", w.BlockSize)
	case w.BlockSize > maxBlockSize:
		v.failf(path, "block_size %s larger than %s", w.BlockSize, maxBlockSize)
	case dev != nil && dev.Size > 0 && w.BlockSize > dev.Size:
		v.failf(path, "impossible: block_size %s larger than device size %s", w.BlockSize, dev.Size)
	case w.QueueDepth > 0 && w.Workers > 0 && w.QueueDepth <= maxQueueDepth && w.Workers <= maxWorkers &&
		int64(w.Workers)*int64(w.QueueDepth)*int64(w.BlockSize) > int64(maxInflightBytes):
		v.failf(path, "workers %d × queue_depth %d × block_size %s in flight is more than %s",
			w.Workers, w.QueueDepth, w.BlockSize, maxInflightBytes)
	}
}

func (v *validator) distribution(path string, w Workload, dev *Device) {
	if w.Pattern == PatternSequential {
		if w.Distribution != "" {
			v.failf(path+".distribution", "impossible: distribution %s with pattern sequential (only random offsets have a distribution)", w.Distribution)
		}
	} else if !slices.Contains(distributions, w.Distribution) {
		v.failf(path+".distribution", "bad distribution %q: want one of %s", w.Distribution, list(distributions))
	}
	switch {
	case w.Distribution != DistributionZipf && w.ZipfTheta != 0:
		v.failf(path+".zipf_theta", "impossible: zipf_theta without distribution zipf")
	case w.Distribution == DistributionZipf && zipfThetaProblem(w.ZipfTheta) != "":
		v.failf(path+".zipf_theta", "%s", zipfThetaProblem(w.ZipfTheta))
	}
	h := w.Hotspot
	switch {
	case w.Distribution != DistributionHotspot && h != nil:
		v.failf(path+".hotspot", "impossible: hotspot without distribution hotspot")
	case w.Distribution != DistributionHotspot:
	case h == nil:
		v.failf(path+".hotspot", "missing hotspot for distribution hotspot")
	case fractionOfSpaceProblem(h.FractionOfSpace) != "":
		v.failf(path+".hotspot.fraction_of_space", "%s", fractionOfSpaceProblem(h.FractionOfSpace))
	case fractionOfOpsProblem(h.FractionOfOps) != "":
		v.failf(path+".hotspot.fraction_of_ops", "%s", fractionOfOpsProblem(h.FractionOfOps))
	case dev != nil && dev.Size > 0 && w.BlockSize > 0 && float64(dev.Size)*h.FractionOfSpace < float64(w.BlockSize):
		v.failf(path+".hotspot.fraction_of_space", "impossible: hot area %v of device size %s is smaller than block_size %s",
			h.FractionOfSpace, dev.Size, w.BlockSize)
	}
}

// The float checks are shared with the decoder, which refuses an explicit 0
// that EnsureDefaults would replace. The comparisons are written so that NaN
// fails them.

func zipfThetaProblem(theta float64) string {
	if theta > 1 && theta <= maxZipfTheta {
		return ""
	}
	return fmt.Sprintf("zipf_theta %v out of range: want more than 1 (Go's rand.Zipf needs s > 1) and at most %d", theta, maxZipfTheta)
}

func fractionOfSpaceProblem(f float64) string {
	if f > 0 && f < 1 {
		return ""
	}
	return fmt.Sprintf("fraction_of_space %v out of range: want more than 0 and less than 1", f)
}

func fractionOfOpsProblem(f float64) string {
	if f > 0 && f <= 1 {
		return ""
	}
	return fmt.Sprintf("fraction_of_ops %v out of range: want more than 0 and at most 1", f)
}

// hasControl reports whether s holds an ASCII control character other than
// those in allowed.
func hasControl(s, allowed string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return (r < 0x20 || r == 0x7f) && !strings.ContainsRune(allowed, r)
	}) >= 0
}

// tooMany is the message for a list longer than its bound.
func tooMany(n int, what string, maxLen int) string {
	return fmt.Sprintf("%d %s: at most %d", n, what, maxLen)
}

// validName reports whether name is 1..128 bytes of letters, digits and
// . _ + = -, starting with a letter or digit; with slashes, each part between
// them must be such a name (expanded sweep names look like
// "chunk-size-sweep/chunk_minimum_shift=16").
func validName(name string, slashes bool) bool {
	if len(name) == 0 || len(name) > maxNameBytes {
		return false
	}
	parts := []string{name}
	if slashes {
		parts = strings.Split(name, "/")
	}
	for _, part := range parts {
		if part == "" || !isAlnum(part[0]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isNameByte(part[i]) {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isNameByte(c byte) bool { return isAlnum(c) || strings.IndexByte("._+=-", c) >= 0 }

// lastKey is the last key of a path: "workloads[0].queue_depth" → "queue_depth".
func lastKey(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

// list formats enum values for a message: "a, b, c".
func list[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func deviceNames(devices []Device) string {
	if len(devices) == 0 {
		return "none"
	}
	names := make([]string, len(devices))
	for i, d := range devices {
		names[i] = fmt.Sprintf("%q", d.Name)
	}
	return strings.Join(names, ", ")
}
