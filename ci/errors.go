package ci

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The CLI maps every one of them to exit status 2 (125
// under --bisect): they mean "could not measure or could not decide", never
// "no regression".
var (
	// ErrSuite reports a bad suite file: syntax, unknown keys, bad values.
	ErrSuite = errors.New("ci: invalid suite")
	// ErrInput reports a results directory, tarball or manifest that is
	// missing, unreadable or inconsistent.
	ErrInput = errors.New("ci: bad input")
	// ErrMismatch reports a base and new set that did not run the same
	// suite: a scenario added, removed or changed.
	ErrMismatch = errors.New("ci: mismatched suites")
	// ErrNothingCompared reports a comparison in which no gating metric was
	// compared: it would otherwise pass vacuously.
	ErrNothingCompared = errors.New("ci: nothing compared")
	// ErrUndecided reports gating metrics the noise guard or a lack of runs
	// left without a verdict, and no regression elsewhere.
	ErrUndecided = errors.New("ci: undecided")
	// ErrRunsFailed reports a suite run in which a scenario got no result
	// at all.
	ErrRunsFailed = errors.New("ci: runs failed")
	// ErrOutput reports an output path that cannot or must not be written.
	ErrOutput = errors.New("ci: bad output")
)

// suiteError is a problem in a suite file, printed as "file:line: msg" like a
// compiler (the style of package scenarios), always on one line.
type suiteError struct {
	file string
	line int
	msg  string
}

func (e *suiteError) Error() string { return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg) }

func (e *suiteError) Unwrap() error { return ErrSuite }

// oneLine keeps quoted foreign text (the YAML parser's, a scenario's) on one
// line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
