package scenarios

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a bad scenario: a syntax
// error, an unknown key, a bad unit, a wrong type or an impossible combination.
// The CLI tests for it with errors.Is to exit with status 2.
var ErrInvalid = errors.New("scenarios: invalid scenario")

// ErrNoBuiltin is wrapped by Builtin and BuiltinSource when no built-in
// scenario has the requested name.
var ErrNoBuiltin = errors.New("scenarios: no such built-in scenario")

// scenarioError is the one error type behind ErrInvalid. When the scenario came
// from a file it prints as "file:line: msg", like a compiler, so that editors
// can jump to it; otherwise as "scenarios: path: msg". It is always one line.
type scenarioError struct {
	file string // "" when the scenario was built in Go
	line int    // 1-based; meaningful only with file
	path string // the offending key, e.g. "workloads[1].block_size"; may be ""
	msg  string
}

func (e *scenarioError) Error() string {
	if e.file != "" {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	// The message names the field itself, so print only where the field
	// lives: "scenarios: workloads[0]: queue_depth 0 out of range 1..1024".
	if parent := parentPath(e.path); parent != "" {
		return "scenarios: " + parent + ": " + e.msg
	}
	return "scenarios: " + e.msg
}

func (e *scenarioError) Unwrap() error { return ErrInvalid }

// oneLine keeps messages that quote foreign text (the YAML parser's) on one
// line; everything this package writes itself is one line already.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// parentPath strips the last component of a key path:
// "workloads[1].hotspot.fraction_of_ops" → "workloads[1].hotspot" →
// "workloads[1]" → "workloads" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// source remembers where each key of a decoded scenario was, so that Validate
// can name the line of a value it rejects. Scenarios built in Go have none.
type source struct {
	file    string
	lines   map[string]int // key path → 1-based line of the key (or list item)
	maxLine int            // the last line of the file
}

// lineOf returns the line of path, or of its nearest ancestor present in the
// file: a missing key is reported at the mapping that should have held it.
func (src *source) lineOf(path string) int {
	for {
		if line, ok := src.lines[path]; ok {
			return max(1, min(line, src.maxLine))
		}
		if path == "" {
			return 1
		}
		path = parentPath(path)
	}
}

// errAt builds the error for a problem with the value at path.
func (s *Scenario) errAt(path, format string, args ...any) error {
	e := &scenarioError{path: path, msg: fmt.Sprintf(format, args...)}
	if s.src != nil {
		e.file = s.src.file
		e.line = s.src.lineOf(path)
	}
	return e
}

// ErrorAt returns a problem with the value at path (a key path such as
// "devices[0].backing.path") that only the runner could see: wrapping
// ErrInvalid, printed as "file:line: msg" when the scenario came from a file.
func (s *Scenario) ErrorAt(path, format string, args ...any) error {
	return s.errAt(path, format, args...)
}
