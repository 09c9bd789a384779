package results

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Outputs writes a command's files all or nothing: each file is staged
// under a hidden temporary name beside its final path, and Commit renames
// them all into place once the command has succeeded; Abort removes what
// was staged. A command that fails half way (or is stopped) leaves no
// output behind, and never a half-written file under a real name.
type Outputs struct {
	mu     sync.Mutex
	staged []stagedFile
	done   bool
}

type stagedFile struct{ tmp, path string }

// ProbeDir checks that files can be made in dir: it exists, is a
// directory, and a probe file can be created and removed there (an access
// check alone passes /proc and /sys for root).
func ProbeDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("output directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("output directory %s: %v", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("output directory %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".snapring-probe-*")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %v", dir, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("output directory %s: removing a probe file: %v", dir, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the path from a *PathError, which the message names
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Stage writes data to a temporary file beside path; it becomes path on
// Commit.
func (o *Outputs) Stage(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		os.Remove(tmp)
		return fmt.Errorf("%w %s: outputs already committed or aborted", ErrWrite, path)
	}
	o.staged = append(o.staged, stagedFile{tmp: tmp, path: path})
	return nil
}

// StageResult stages a result as JSON.
func (o *Outputs) StageResult(path string, r *Result) error {
	b, err := marshal(r)
	if err != nil {
		return err
	}
	return o.Stage(path, b)
}

// StageHTML stages the HTML report of results.
func (o *Outputs) StageHTML(path string, results []*Result, opts ReportOptions) error {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, results, opts); err != nil {
		return err
	}
	return o.Stage(path, buf.Bytes())
}

// StagePNGs stages the report's plots as PNG files in dir and returns their
// final paths.
func (o *Outputs) StagePNGs(dir string, results []*Result, opts ReportOptions) ([]string, error) {
	pngs, err := renderPNGs(results, opts)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range pngs {
		path := filepath.Join(dir, p.name+".png")
		if err := o.Stage(path, p.data); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// Commit renames every staged file into place. On a failure it removes
// what it has not renamed yet and returns the error.
func (o *Outputs) Commit() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = true
	for i, s := range o.staged {
		if err := os.Rename(s.tmp, s.path); err != nil {
			for _, r := range o.staged[i:] {
				os.Remove(r.tmp)
			}
			o.staged = nil
			return fmt.Errorf("%w %s: %w", ErrWrite, s.path, err)
		}
	}
	o.staged = nil
	return nil
}

// Abort removes every staged file. It is safe to call after Commit (it then
// does nothing) and from another goroutine.
func (o *Outputs) Abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = true
	for _, s := range o.staged {
		os.Remove(s.tmp)
	}
	o.staged = nil
}
