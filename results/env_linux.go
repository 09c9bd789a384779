//go:build linux

package results

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// CollectEnv describes this machine, the file system holding backingPath
// and the given snapring commit. It reads /proc/cpuinfo, uname and statfs;
// whatever cannot be read is left empty.
func CollectEnv(backingPath string, commit string) Env {
	env := Env{
		GoVersion:   runtime.Version(),
		Commit:      commit,
		BackingPath: backingPath,
		UsableCPUs:  runtime.NumCPU(),
	}
	env.Hostname, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		env.KernelRelease = unix.ByteSliceToString(uts.Release[:])
		env.Machine = unix.ByteSliceToString(uts.Machine[:])
	}
	env.CPUModel, env.CPUs = readCPUInfo("/proc/cpuinfo")
	if env.CPUs == 0 {
		env.CPUs = env.UsableCPUs
	}
	if backingPath != "" {
		var st unix.Statfs_t
		if unix.Statfs(backingPath, &st) == nil {
			env.BackingFS = FSName(uint32(st.Type))
		}
	}
	return env
}

// readCPUInfo returns the CPU model and the number of logical CPUs listed in
// a /proc/cpuinfo file.
func readCPUInfo(path string) (model string, cpus int) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0
	}
	defer f.Close()
	return parseCPUInfo(bufio.NewScanner(f))
}

func parseCPUInfo(sc *bufio.Scanner) (model string, cpus int) {
	var fallback string
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			cpus++
		case "model name", "cpu model": // x86, mips
			if model == "" {
				model = val
			}
		case "Hardware", "Model", "cpu": // arm boards, ppc64
			if fallback == "" {
				fallback = val
			}
		}
	}
	if model == "" {
		model = fallback
	}
	return model, cpus
}
