// Command snapring is the CLI of snapring: benchmark runs, comparisons,
// reports, and ublk devices. It binds flags to Config structs and calls the
// packages; the work is done there.
package main

import (
	"errors"
	"fmt"
	"os"

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
	root.AddCommand(runCmd(), compareCmd(), reportCmd(), scenariosCmd(), uringBenchCmd(), deviceCmd(), snapshotCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "snapring:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(2)
	}
}
