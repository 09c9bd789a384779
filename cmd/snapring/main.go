// Command snapring is the CLI of snapring: benchmark runs, comparisons,
// reports, and ublk devices. It binds flags to Config structs and calls the
// packages; the work is done there.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapring/snapring/results"
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
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole command to this file (only when the command succeeds)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if cpuProfile == "" {
			return nil
		}
		f, err := stageFile(cpuProfile)
		if err != nil {
			return &exitError{2, fmt.Errorf("--cpuprofile: %w", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return &exitError{2, fmt.Errorf("--cpuprofile: %w", err)}
		}
		profFile = f
		return nil
	}
	root.SetHelpCommand(helpCmd(root))
	root.AddCommand(runCmd(), compareCmd(), reportCmd(), scenariosCmd(), uringBenchCmd(), deviceCmd(), snapshotCmd(), fioCmd(), ciCmd(), daemonCmd())
	for _, c := range root.Commands() {
		strictGroup(c)
	}
	err := root.Execute()
	if profFile != nil {
		pprof.StopCPUProfile()
		profFile.Close()
		// The profile is an output like any other: it appears only when
		// the command succeeded.
		if err == nil {
			if e := os.Rename(profFile.Name(), cpuProfile); e != nil {
				err = &exitError{2, fmt.Errorf("--cpuprofile: %w", e)}
			}
		}
		os.Remove(profFile.Name())
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

// stageFile makes a hidden temporary file beside path, to be renamed to it.
func stageFile(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	if err := results.ProbeDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
}

// strictGroup makes a command that only groups others (snapring scenarios,
// snapring device) refuse an unknown subcommand with exit 2, where cobra
// would print the help and exit 0; with no argument it prints the help.
func strictGroup(c *cobra.Command) {
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return &exitError{2, fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())}
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	for _, sub := range c.Commands() {
		strictGroup(sub)
	}
}

// helpCmd is "snapring help [COMMAND]", which refuses an unknown topic
// (cobra's prints a line and exits 0).
func helpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return &exitError{2, fmt.Errorf("unknown help topic %q (see snapring --help)", strings.Join(args, " "))}
			}
			return target.Help()
		},
	}
}
