package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/scenarios"
)

// FuzzPrepare: for any scenario file that passes validation (Parse, then
// Check against this machine), preparing its devices never panics and never
// writes outside the run's temp directory: every file the scenario names is
// unchanged (size and modification time), and the temp directory is empty
// again once the devices are released (temp devices have no names).
func FuzzPrepare(f *testing.F) {
	for _, name := range scenarios.BuiltinNames() {
		src, err := scenarios.BuiltinSource(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte("name: p\ndevices: [{name: d, backing: {kind: path, path: /etc/hostname}}]\ndiff_storage: {limit: 64MiB}\nphases: {run: 1s}\nworkloads: [{kind: origin-write, block_size: 512}]\n"))
	f.Add([]byte("name: p\ndevices: [{name: d, backing: {kind: blockdev, path: /dev/null}}]\nphases: {run: 1s}\nworkloads: [{kind: origin-write}]\n"))
	f.Add([]byte("name: p\ndevices: [{name: d, size: 1MiB}]\ndiff_storage: {kind: file, path: /etc/hostname, overwrite: true}\nphases: {run: 1s}\nworkloads: [{kind: image-read, pattern: sequential, block_size: 1MiB}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scenarios.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		var temp int64
		for _, d := range sc.Devices {
			if d.Backing.Kind == scenarios.BackingTempfile {
				temp += int64(d.Size)
			}
		}
		if temp > 8<<20 {
			return // validation passes huge sizes that fit; filling them is not the point
		}
		dir := t.TempDir()
		cfg := RunConfig{Scenario: sc, TempDir: dir}
		for _, s := range sc.Expand() {
			cfg.Scenario = s
			s.EnsureDefaults()
			if s.Validate() != nil || Check(cfg) != nil {
				return
			}
			named := namedFiles(s)
			before := fileStates(named)
			devs, cleanup, err := prepareDevices(context.Background(), cfg)
			if err == nil {
				if len(devs) != len(s.Devices) {
					t.Fatalf("%d devices prepared for %d", len(devs), len(s.Devices))
				}
				cleanup()
			}
			if after := fileStates(named); !equalStates(before, after) {
				t.Fatalf("prepare changed a named file: %v -> %v", before, after)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("prepare left %d files in the temp directory", len(entries))
			}
		}
	})
}

func namedFiles(sc *scenarios.Scenario) []string {
	var paths []string
	for _, d := range sc.Devices {
		if d.Backing.Path != "" {
			paths = append(paths, d.Backing.Path)
		}
	}
	if sc.DiffStorage.Path != "" {
		paths = append(paths, sc.DiffStorage.Path)
	}
	return paths
}

type fileState struct {
	exists bool
	size   int64
	mtime  time.Time
}

func fileStates(paths []string) map[string]fileState {
	m := map[string]fileState{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			m[p] = fileState{}
			continue
		}
		// /proc and /sys report the time of the call.
		if strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/") {
			m[p] = fileState{exists: true}
			continue
		}
		m[p] = fileState{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	}
	return m
}

func equalStates(a, b map[string]fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
