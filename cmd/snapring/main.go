// Command snapring is the CLI of snapring: benchmark runs, comparisons,
// reports, and ublk devices. It binds flags to Config structs and calls the
// packages; the work is done there.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	root := &cobra.Command{
		Use:           "snapring",
		Short:         "Copy-on-write block snapshots on io_uring, and the harness that measures them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	var profFile *os.File
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole command to this file")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return &exitError{2, fmt.Errorf("--cpuprofile: %w", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			os.Remove(cpuProfile)
			return &exitError{2, fmt.Errorf("--cpuprofile: %w", err)}
		}
		profFile = f
		return nil
	}
	root.AddCommand(runCmd(), compareCmd(), reportCmd(), scenariosCmd(), uringBenchCmd(), deviceCmd(), snapshotCmd(), daemonCmd())
	err := root.Execute()
	if profFile != nil {
		pprof.StopCPUProfile()
		profFile.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapring:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(2)
	}
}
