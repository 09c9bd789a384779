package bench

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
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
// goroutine that runs snapring code: its state, its innermost snapring
// frame and what that frame is blocked in. The summary is short so that it
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
	return full, summarizeStacks(full)
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
