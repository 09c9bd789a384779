package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/snapring/snapring/scenarios"
)

// StuckAfter is how long a run of sc may take before a watchdog calls it
// stuck: both sides' phases three times over, the prefill at 20 MB/s, and
// two minutes for setup, teardown and a loaded machine. A run that takes
// longer is a hang (a lost wake-up, a request that never completes), and a
// CI job would otherwise sit until its own limit with nothing to show.
func StuckAfter(sc *scenarios.Scenario) time.Duration {
	var bytes int64
	for _, d := range sc.Devices {
		bytes += int64(d.Size)
	}
	phases := sc.Phases.Total() + time.Duration(sc.Phases.TakeAfter)
	return 2*time.Minute + 3*2*phases + time.Duration(bytes/20e6)*time.Second
}

// Stacks returns every goroutine's stack and a summary of one line per
// goroutine that runs snapring code (its state, its innermost snapring
// frame and what that frame is blocked in), then the process's threads
// (Threads). The summary is short so that it
// survives in the tail of a CI log, which is often all there is of a hang.
func Stacks() (full []byte, summary string) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			full = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return full, summarizeStacks(full) + "threads:\n" + Threads(os.Getpid())
}

const modulePrefix = "github.com/snapring/snapring/"

// summarizeStacks condenses runtime.Stack output (blocks separated by blank
// lines: a "goroutine N [state]:" header, then function and file lines).
func summarizeStacks(full []byte) string {
	var b strings.Builder
	for _, block := range bytes.Split(full, []byte("\n\n")) {
		lines := strings.Split(strings.TrimSpace(string(block)), "\n")
		if len(lines) < 3 || !strings.HasPrefix(lines[0], "goroutine ") {
			continue
		}
		header := strings.TrimSuffix(strings.TrimPrefix(lines[0], "goroutine "), ":")
		top := shortFunc(lines[1])
		if top == "bench.Stacks" {
			continue // the caller itself
		}
		for i := 1; i+1 < len(lines); i += 2 {
			fn := lines[i]
			if strings.HasPrefix(fn, "created by ") {
				break
			}
			if !strings.HasPrefix(fn, modulePrefix) {
				continue
			}
			file := strings.TrimSpace(lines[i+1])
			if sp := strings.IndexByte(file, ' '); sp > 0 {
				file = file[:sp]
			}
			fmt.Fprintf(&b, "  goroutine %s %s %s", header, shortFunc(fn), filepath.Base(file))
			if i > 1 {
				fmt.Fprintf(&b, " in %s", top)
			}
			b.WriteByte('\n')
			break
		}
	}
	return b.String()
}

// shortFunc strips the module path and the arguments from a stack line:
// "github.com/snapring/snapring/engine.(*Queue).Poll(0x1, ...)" becomes
// "engine.(*Queue).Poll".
func shortFunc(line string) string {
	line = strings.TrimPrefix(line, modulePrefix)
	if i := strings.LastIndexByte(line, '('); i > 0 && strings.HasSuffix(line, ")") {
		line = line[:i]
	}
	return line
}

// Threads summarizes the threads of process pid as the kernel sees them:
// how many share a name, a state and the innermost frame of their kernel
// stack ("2× snapring S io_cqring_wait"). A hang inside the kernel (an
// io_uring wait that never ends, an io-wq worker stuck in a file system)
// shows here and not in the goroutine stacks. Kernel stacks need root;
// without them the frame is the wait channel, or nothing.
func Threads(pid int) string {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("  threads: %v\n", err)
	}
	counts := map[string]int{}
	var keys []string
	for _, t := range tasks {
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, t.Name(), name))
			return strings.TrimSpace(string(b))
		}
		comm := read("comm")
		if strings.HasPrefix(comm, "iou-") {
			// iou-wrk-1234, iou-sqp-1234: one line for all of a kind.
			if i := strings.LastIndexByte(comm, '-'); i > 0 {
				comm = comm[:i]
			}
		}
		state := "?"
		if st := read("stat"); st != "" {
			// pid (comm) S ...: the state follows the last ')'.
			if i := strings.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) {
				state = st[i+2 : i+3]
			}
		}
		frame := read("wchan")
		if stack := read("stack"); stack != "" {
			frame = kernelFrame(stack)
		}
		if frame == "0" {
			frame = ""
		}
		k := strings.TrimSpace(comm + " " + state + " " + frame)
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %d× %s\n", counts[k], k)
	}
	return b.String()
}

// kernelFrame picks the first frame of a /proc/*/stack that says what the
// thread waits in, skipping the scheduler's own frames.
func kernelFrame(stack string) string {
	for _, line := range strings.Split(stack, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		fn := f[1]
		if i := strings.IndexByte(fn, '+'); i > 0 {
			fn = fn[:i]
		}
		switch fn {
		case "__schedule", "schedule", "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock",
			"schedule_timeout", "do_syscall_64", "entry_SYSCALL_64_after_hwframe", "__x64_sys_futex":
			continue
		}
		return fn
	}
	return ""
}
