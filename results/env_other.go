//go:build !linux

package results

import (
	"os"
	"runtime"
)

// CollectEnv describes this machine as far as a non-Linux build can: the Go
// version, CPU count and host name. Results are normally produced on Linux;
// this lets the compare and report side build elsewhere.
func CollectEnv(backingPath string, commit string) Env {
	env := Env{
		GoVersion:   runtime.Version(),
		Commit:      commit,
		BackingPath: backingPath,
		CPUs:        runtime.NumCPU(),
		UsableCPUs:  runtime.NumCPU(),
		Machine:     runtime.GOARCH,
	}
	env.Hostname, _ = os.Hostname()
	return env
}
