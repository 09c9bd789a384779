package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapring/snapring/results"
)

// treeState is every file under dir by relative path: its size and a hash
// of its bytes, so that a test can say "nothing changed, nothing new".
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			state[rel+"/"] = "dir"
			return nil
		}
		if !d.Type().IsRegular() {
			state[rel] = d.Type().String()
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		state[rel] = fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:8]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// shmEntries lists /dev/shm's snapring files (temp devices must never be
// left there).
func shmEntries() []string {
	m, _ := filepath.Glob("/dev/shm/snapring-*")
	return m
}

func diffStates(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if a, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if a != v {
			d = append(d, fmt.Sprintf("changed %s (%s -> %s)", k, v, a))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "new "+k)
		}
	}
	slices.Sort(d)
	return d
}

// badCase is one bad input through the CLI: the files it sets up in dir
// (DIR in the text is replaced by dir), the arguments, and what it must
// say. Every case must exit with code (2 unless set), print exactly one
// line containing want, and leave dir and /dev/shm exactly as they were.
type badCase struct {
	name  string
	files map[string]string // name → contents; "SIZE:n" makes a sparse file of n bytes
	args  []string
	want  string
	code  int
	root  bool     // needs root (as CI runs)
	env   []string // name, value pairs added to the environment (DIR replaced in values)
}

const smallDevice = `name: z
devices: [{name: d, backing: {kind: path, path: DIR/small.img}}]
diff_storage: {limit: 64MiB}
phases: {run: 1s}
`

func scenarioWith(base string, repl ...string) string {
	return strings.NewReplacer(repl...).Replace(base)
}

const okScenario = `name: ok
devices: [{name: d, backing: {kind: path, path: DIR/disk.img}}]
diff_storage: {limit: 64MiB}
phases: {run: 1s}
workloads: [{kind: origin-write}]
`

var badCases = []badCase{
	// 1: the difference storage of `snapshot` is created only after the
	// driver and the devices are checked, and an existing file is refused.
	{name: "snapshot existing storage, no ublk", files: map[string]string{"existing.txt": "precious\n", "disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/existing.txt", "--limit", "16MiB", "--force"}, want: "ublk"},
	{name: "snapshot new storage, no ublk", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "16MiB"}, want: "ublk"},
	{name: "snapshot limit under 1MiB", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "100KiB"}, want: "--limit 100KiB"},
	{name: "snapshot portion above limit", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "16MiB", "--portion", "32MiB"}, want: "--portion"},
	// 2: a device smaller than the block size, whatever the distribution.
	{name: "zipf on a device smaller than block_size", files: map[string]string{"small.img": "SIZE:1048576",
		"s.yaml": smallDevice + "workloads: [{kind: origin-write, block_size: 4MiB, distribution: zipf}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:5: impossible: block_size 4MiB larger than device d (1MiB)"},
	{name: "hotspot on a device smaller than block_size", files: map[string]string{"small.img": "SIZE:1048576",
		"s.yaml": smallDevice + "workloads: [{kind: origin-write, block_size: 4MiB, distribution: hotspot}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:5: impossible: block_size 4MiB"},
	{name: "sequential on a device smaller than block_size", files: map[string]string{"small.img": "SIZE:1048576",
		"s.yaml": smallDevice + "workloads: [{kind: origin-write, block_size: 4MiB, pattern: sequential}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:5: impossible: block_size 4MiB"},
	{name: "device smaller than one chunk", files: map[string]string{"small.img": "SIZE:65536",
		"s.yaml": smallDevice + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: device d: 64KiB is smaller than one chunk (256KiB)"},
	// 3: files that are no devices.
	{name: "empty device file", files: map[string]string{"small.img": "",
		"s.yaml": smallDevice + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: device d: DIR/small.img is empty"},
	{name: "/proc file as a device", files: map[string]string{
		"s.yaml": scenarioWith(smallDevice, "DIR/small.img", "/proc/self/status") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: device d: /proc/self/status is empty"},
	{name: "character device as a device", files: map[string]string{
		"s.yaml": scenarioWith(smallDevice, "DIR/small.img", "/dev/null") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "/dev/null is neither a regular file nor a block device"},
	{name: "directory as a device", files: map[string]string{
		"s.yaml": scenarioWith(smallDevice, "DIR/small.img", "DIR") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "is neither a regular file nor a block device"},
	{name: "20-byte file as blockdev", files: map[string]string{"small.img": "12345678901234567890",
		"s.yaml": scenarioWith(smallDevice, "kind: path", "kind: blockdev") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: device d: DIR/small.img is not a block device"},
	{name: "one file as two devices", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": `name: two
devices:
  - {name: a, backing: {kind: path, path: DIR/disk.img}}
  - {name: b, backing: {kind: path, path: DIR/./disk.img}}
diff_storage: {limit: 64MiB}
phases: {run: 1s}
workloads: [{kind: origin-write, device: a}]
`},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:4: impossible: the same file as devices[0].backing.path"},
	// 4: a difference storage that is not what its kind says, or that exists.
	{name: "diff storage dir on a regular file", files: map[string]string{"disk.img": "SIZE:16777216", "existing.txt": "precious\n",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: dir, path: DIR/existing.txt, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: difference storage DIR/existing.txt is not a directory"},
	{name: "diff storage blockdev on a regular file", files: map[string]string{"disk.img": "SIZE:16777216", "existing.txt": "precious\n",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: blockdev, path: DIR/existing.txt, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: difference storage DIR/existing.txt is not a block device"},
	{name: "diff storage file that exists", files: map[string]string{"disk.img": "SIZE:16777216", "existing.txt": "precious\n",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: file, path: DIR/existing.txt, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: difference storage DIR/existing.txt exists: refusing to overwrite it"},
	{name: "diff storage file on a directory", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: file, path: DIR, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: difference storage DIR is a directory"},
	{name: "diff storage file in a missing directory", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: file, path: DIR/nope/store, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "does not exist"},
	{name: "diff storage is the device", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: file, path: DIR/disk.img, overwrite: true, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: impossible: the same file as devices[0].backing.path"},
	{name: "overwrite with kind dir", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: dir, path: DIR, overwrite: true, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: impossible: overwrite with kind dir"},
	// 5, 6: run length and the engine's storage rules at file:line.
	{name: "run 1ns", files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": scenarioWith(okScenario, "run: 1s", "run: 1ns")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:4: run 1ns shorter than 100ms"},
	{name: "portion under 1MiB", files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{limit: 64MiB, portion: 512KiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: portion 512KiB smaller than 1MiB"},
	{name: "limit not a multiple of 4KiB", files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{limit: 67633664B}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "is not a multiple of 4KiB"},
	{name: "diff_storage_minimum not a multiple of 4KiB", files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": okScenario + "engine: {diff_storage_minimum: 2049KiB}\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:6: diff_storage_minimum 2049KiB is not a multiple of 4KiB"},
	// 8: outputs checked before the run, and left only on success.
	{name: "output into /proc", root: true, files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": okScenario},
		args: []string{"run", "DIR/s.yaml", "-o", "/proc"}, want: "output directory /proc is not writable"},
	{name: "output into /sys/kernel", root: true, files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": okScenario},
		args: []string{"run", "DIR/s.yaml", "-o", "/sys/kernel"}, want: "output directory /sys/kernel is not writable"},
	{name: "output is a file", files: map[string]string{"disk.img": "SIZE:16777216", "s.yaml": okScenario, "out": "x"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR/out"}, want: "output directory DIR/out is not a directory"},
	{name: "report --png into a missing directory", files: map[string]string{"r.json": "RESULT"},
		args: []string{"report", "DIR/r.json", "-o", "DIR/report.html", "--png", "DIR/nope"}, want: "--png: output directory DIR/nope does not exist"},
	{name: "report -o a directory", files: map[string]string{"r.json": "RESULT"},
		args: []string{"report", "DIR/r.json", "-o", "DIR"}, want: "is a directory"},
	{name: "zero-copy mode unknown", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"device", "passthrough", "--file", "DIR/disk.img", "--zero-copy", "maybe"}, want: `--zero-copy "maybe": want auto, on or off`},
	{name: "zero-copy on with a user-copy mode", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "16MiB", "--zero-copy", "on", "--user-copy", "on"}, want: "pick one"},
	{name: "fio zero-copy mode unknown", files: map[string]string{},
		args: []string{"fio", "run", "--preset", "randwrite-4k", "--zero-copy", "yes"}, want: `--zero-copy "yes"`},
	{name: "cpuprofile of a failing command", files: map[string]string{},
		args: []string{"--cpuprofile", "DIR/cpu.prof", "run", "no-such-builtin", "-o", "DIR"}, want: "no-such-builtin"},
	{name: "cpuprofile keeps an existing file when the command fails", files: map[string]string{"cpu.prof": "old profile"},
		args: []string{"--cpuprofile", "DIR/cpu.prof", "scenarios", "show", "nope"}, want: "nope"},
	// 7: compare never passes vacuously.
	{name: "compare a run with itself", files: map[string]string{"r.json": "RESULT"},
		args: []string{"compare", "DIR/r.json", "DIR/r.json"}, want: "new result 1 is the same run as base result 1"},
	{name: "compare one run counted four times", files: map[string]string{"r.json": "RESULT", "s.json": "RESULT2"},
		args: []string{"compare", "DIR/r.json,DIR/r.json,DIR/r.json,DIR/r.json", "DIR/s.json,DIR/s.json,DIR/s.json,DIR/s.json"}, want: "base result 2 is the same run as base result 1"},
	{name: "compare a partial run", files: map[string]string{"r.json": "RESULT", "p.json": "PARTIAL"},
		args: []string{"compare", "DIR/r.json", "DIR/p.json"}, want: "new result 1 (run_index 0) is partial (interrupted)"},
	{name: "compare with nothing comparable", files: map[string]string{"r.json": "RESULT", "e.json": "EMPTY"},
		args: []string{"compare", "DIR/r.json", "DIR/e.json"}, want: "no metric that counts toward the verdict is on both sides"},
	{name: "compare with a bad format", files: map[string]string{"r.json": "RESULT", "s.json": "RESULT2"},
		args: []string{"compare", "DIR/r.json", "DIR/s.json", "--format", "xml"}, want: "--format"},
	// 9: unknown commands.
	{name: "scenarios frob", args: []string{"scenarios", "frob"}, want: `unknown command "frob" for "snapring scenarios"`},
	{name: "device frob", args: []string{"device", "frob"}, want: `unknown command "frob" for "snapring device"`},
	{name: "help frob", args: []string{"help", "frob"}, want: `unknown help topic "frob"`},
	// Found trying more bad inputs as a new user would.
	{name: "scenario is /dev/zero", args: []string{"run", "/dev/zero", "-o", "DIR"}, want: "/dev/zero:1: not a regular file"},
	{name: "scenario is a FIFO", files: map[string]string{"fifo": "FIFO"}, args: []string{"run", "DIR/fifo", "-o", "DIR"}, want: "fifo:1: not a regular file"},
	{name: "scenario is a directory", args: []string{"run", "DIR", "-o", "DIR"}, want: "is a directory, not a scenario file"},
	{name: "device is a FIFO", files: map[string]string{"fifo": "FIFO", "s.yaml": scenarioWith(smallDevice, "small.img", "fifo") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: device d: DIR/fifo is neither a regular file nor a block device"},
	{name: "device is a symlink loop", files: map[string]string{"loop1": "LINK:loop2", "loop2": "LINK:loop1", "s.yaml": scenarioWith(smallDevice, "small.img", "loop1") + "workloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "too many levels of symbolic links"},
	{name: "dir storage where O_TMPFILE cannot be made", root: true, files: map[string]string{"disk.img": "SIZE:16777216",
		"s.yaml": scenarioWith(okScenario, "{limit: 64MiB}", "{kind: dir, path: /proc, limit: 64MiB}")},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:3: difference storage: cannot make a temporary file (O_TMPFILE) in /proc"},
	{name: "disk tempfile in a missing TMPDIR", env: []string{"TMPDIR", "DIR/nope"}, files: map[string]string{
		"s.yaml": "name: t\ndevices: [{name: d, size: 16MiB, backing: {kind: tempfile, fs: disk}}]\nphases: {run: 1s}\nworkloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: temporary files in DIR/nope: no such file or directory"},
	{name: "watchdog of 1ns", args: []string{"run", "default", "-o", "DIR", "--watchdog", "1ns"}, want: "--watchdog 1ns: want at least 1s"},
	{name: "empty output directory", args: []string{"run", "default", "-o", ""}, want: "-o: want a directory"},
	{name: "snapshot --queues 0", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "16MiB", "--queues", "0"}, want: "--queues 0: want at least 1"},
	{name: "snapshot --chunk-shift 99", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/new.img", "--limit", "16MiB", "--chunk-shift", "99"}, want: "chunk_minimum_shift 99"},
	{name: "snapshot of a missing origin", args: []string{"snapshot", "run", "--origin", "DIR/missing.img", "--storage", "DIR/new.img", "--limit", "16MiB"}, want: "--origin DIR/missing.img does not exist"},
	{name: "snapshot of /dev/null", args: []string{"snapshot", "run", "--origin", "/dev/null", "--storage", "DIR/new.img", "--limit", "16MiB"}, want: "--origin /dev/null is neither a regular file nor a block device"},
	{name: "snapshot onto an existing file", files: map[string]string{"existing.txt": "precious\n", "disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/existing.txt", "--limit", "16MiB"}, want: "--storage DIR/existing.txt exists: refusing to overwrite it"},
	{name: "snapshot storage in a missing directory", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"snapshot", "run", "--origin", "DIR/disk.img", "--storage", "DIR/nope/s.img", "--limit", "16MiB"}, want: "directory DIR/nope does not exist"},
	{name: "passthrough --depth 0", files: map[string]string{"disk.img": "SIZE:16777216"},
		args: []string{"device", "passthrough", "--file", "DIR/disk.img", "--depth", "0"}, want: "--depth 0: want at least 1"},
	{name: "passthrough of a missing file", args: []string{"device", "passthrough", "--file", "DIR/missing.img"}, want: "--file DIR/missing.img does not exist"},
	{name: "uring-bench of 1PiB on tmpfs", args: []string{"uring-bench", "--size", "1125899906842624", "--runtime", "1s"}, want: "does not fit in"},
	{name: "uring-bench file smaller than a block", args: []string{"uring-bench", "--size", "1024", "--runtime", "1s"}, want: "--size 1024: smaller than --bs 4096"},
	{name: "uring-bench on /dev/null", args: []string{"uring-bench", "--file", "/dev/null", "--runtime", "1s"}, want: "--file /dev/null is neither a regular file nor a block device"},
	// 12: bounds for the whole run.
	{name: "a 1PiB tmpfs device", files: map[string]string{"s.yaml": "name: huge\ndevices: [{name: d, size: 1024TiB}]\nphases: {run: 1s}\nworkloads: [{kind: origin-write}]\n"},
		args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:2: temporary files in"},
	{name: "in flight over all workloads", files: map[string]string{"s.yaml": `name: inflight
devices: [{name: d, size: 64MiB}]
phases: {run: 1s}
workloads:
  - {name: a, kind: origin-write, block_size: 16MiB, queue_depth: 33}
  - {name: b, kind: origin-write, block_size: 16MiB, queue_depth: 33}
`}, args: []string{"run", "DIR/s.yaml", "-o", "DIR"}, want: "s.yaml:4: workers × queue_depth × block_size of all workloads together is 1056MiB"},
}

// TestBadInputNeverHarms runs every bad input of the bad-input issue
// through the CLI: exit 2, one line naming the problem (file:line for
// scenario files), and every file in the directory byte for byte as it
// was, nothing new, nothing left in /dev/shm.
func TestBadInputNeverHarms(t *testing.T) {
	results := realResults(t)
	for _, c := range badCases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("needs root (an access check alone passes these for root)")
			}
			dir := t.TempDir()
			for name, content := range c.files {
				path := filepath.Join(dir, name)
				switch {
				case content == "FIFO":
					if err := syscall.Mkfifo(path, 0o644); err != nil {
						t.Fatal(err)
					}
				case strings.HasPrefix(content, "LINK:"):
					os.Symlink(strings.TrimPrefix(content, "LINK:"), path)
				case strings.HasPrefix(content, "SIZE:"):
					var n int64
					fmt.Sscan(strings.TrimPrefix(content, "SIZE:"), &n)
					f, err := os.Create(path)
					if err != nil {
						t.Fatal(err)
					}
					f.Truncate(n)
					f.Close()
				case results[content] != nil:
					os.WriteFile(path, results[content], 0o644)
				default:
					os.WriteFile(path, []byte(strings.ReplaceAll(content, "DIR", dir)), 0o644)
				}
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "DIR", dir)
			}
			shm := shmEntries()
			before := treeState(t, dir)
			var env []string
			for i := 0; i+1 < len(c.env); i += 2 {
				env = append(env, c.env[i]+"="+strings.ReplaceAll(c.env[i+1], "DIR", dir))
			}
			out, code := cliEnv(t, env, args...)
			want := strings.ReplaceAll(c.want, "DIR", dir)
			wantCode := c.code
			if wantCode == 0 {
				wantCode = 2
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != wantCode || len(lines) != 1 || !strings.Contains(lines[0], want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and one line containing %q", code, out, wantCode, want)
			}
			if d := diffStates(before, treeState(t, dir)); len(d) > 0 {
				t.Errorf("the command changed the user's files: %v", d)
			}
			if after := shmEntries(); !slices.Equal(shm, after) {
				t.Errorf("/dev/shm before %v, after %v", shm, after)
			}
		})
	}
}

// realResults makes the result files the compare and report cases read:
// two real tiny runs, one of them also marked partial and one with no
// classes (what a run interrupted in its baseline used to write).
func realResults(t *testing.T) map[string][]byte {
	dir := t.TempDir()
	sc := filepath.Join(dir, "tiny.yaml")
	os.WriteFile(sc, []byte(tiny), 0o644)
	out, code := cli(t, "run", sc, "-o", dir, "-q", "--repeat", "2")
	if code != 0 {
		t.Fatalf("tiny run: exit %d\n%s", code, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tiny-*-r*.json"))
	if len(files) != 2 {
		t.Fatalf("want 2 results, got %v", files)
	}
	slices.Sort(files)
	m := map[string][]byte{}
	for i, key := range []string{"RESULT", "RESULT2"} {
		b, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		m[key] = b
	}
	r, err := results.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	r.Partial = true
	r.Start = r.Start.Add(time.Second)
	m["PARTIAL"] = encode(t, r)
	r.Partial = false
	r.Start = r.Start.Add(time.Second)
	r.Engine.Classes = map[results.Class]results.ClassResult{}
	r.Baseline.Classes = map[results.Class]results.ClassResult{}
	r.Ratios = nil
	m["EMPTY"] = encode(t, r)
	return m
}

func encode(t *testing.T, r *results.Result) []byte {
	t.Helper()
	var sb strings.Builder
	if err := results.Encode(&sb, r); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(sb.String()), &v); err != nil {
		t.Fatal(err)
	}
	return []byte(sb.String())
}

// TestInterruptBeforeResult: Ctrl-C while the devices are prefilled (or in
// the baseline) stops at once with exit 130 and writes nothing.
func TestInterruptBeforeResult(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "big.yaml")
	os.WriteFile(sc, []byte("name: big\ndevices: [{name: d, size: 2GiB, backing: {kind: tempfile, fs: disk}}]\nphases: {run: 20s}\nworkloads: [{kind: origin-write}]\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cmd := exec.Command(binary, "run", sc, "-o", out, "-q")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != interrupted || !strings.Contains(buf.String(), "interrupted before any result") {
		t.Errorf("exit %d (%v), output %q; want %d, interrupted before any result", code, err, buf.String(), interrupted)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v to stop after SIGINT", took)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("an interrupted run left %v", entries)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "snapring-*")); len(entries) != 0 {
		t.Errorf("temp devices left behind: %v", entries)
	}
}

// TestKillLeavesNoTempFiles: temp devices have no name from the start, so
// SIGKILL in the middle of a run leaves nothing in the temp directory.
func TestKillLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	os.WriteFile(sc, []byte("name: s\ndevices: [{name: d, size: 64MiB, backing: {kind: tempfile, fs: disk}}]\ndiff_storage: {kind: tempfile, fs: disk}\nphases: {run: 20s}\nworkloads: [{kind: origin-write}]\n"), 0o644)
	cmd := exec.Command(binary, "run", sc, "-o", dir, "-q")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"s.yaml"}) {
		t.Errorf("after SIGKILL the directory holds %v; want only s.yaml", names)
	}
}

// cliEnv is cli with more environment variables.
func cliEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	if len(env) == 0 {
		return cli(t, args...)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}
