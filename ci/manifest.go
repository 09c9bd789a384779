package ci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapring/snapring/results"
)

// ManifestSchema identifies the manifest format this package writes and
// reads.
const ManifestSchema = "snapring.ci-manifest/v1"

// ManifestFile is the manifest's name in a results directory or tarball.
const ManifestFile = "manifest.json"

// maxManifestBytes bounds a manifest; a 2,000-run suite's is ~300 KB.
const maxManifestBytes = 8 << 20

// Manifest describes one run of a suite: what ran, on which commit and
// machine, which result files it wrote and which runs failed.
type Manifest struct {
	Schema    string      `json:"schema"`
	Suite     Suite       `json:"suite"`
	SuiteHash string      `json:"suite_hash"`
	Commit    string      `json:"commit"`
	Env       results.Env `json:"env"`
	Started   time.Time   `json:"started"`
	Finished  time.Time   `json:"finished"`
	// Complete is false when the suite was interrupted or a run hung: the
	// set is then not a baseline and compare refuses it.
	Complete bool `json:"complete"`
	// Problem says why the set is incomplete ("interrupted", "run 3 of x
	// hung: not done after 2m").
	Problem string `json:"problem,omitempty"`
	// Runs lists every run in the order it ran.
	Runs []RunRecord `json:"runs"`
}

// RunRecord is one run of one scenario.
type RunRecord struct {
	Scenario string `json:"scenario"`
	Repeat   int    `json:"repeat"`
	// File is the result, relative to the manifest; empty when the run
	// failed.
	File     string        `json:"file,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

func (m *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeManifest reads a manifest and checks what compare relies on.
func decodeManifest(where string, data []byte) (*Manifest, error) {
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%w: %s: manifest too large (%d bytes)", ErrInput, where, len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: not a snapring ci manifest: %s", ErrInput, where, oneLine(err.Error()))
	}
	if m.Schema != ManifestSchema {
		return nil, fmt.Errorf("%w: %s: schema %q, want %q", ErrInput, where, m.Schema, ManifestSchema)
	}
	for _, r := range m.Runs {
		if r.File != "" && !safeRelPath(r.File) {
			return nil, fmt.Errorf("%w: %s: result path %q leaves the results directory", ErrInput, where, r.File)
		}
	}
	return &m, nil
}

// safeRelPath reports whether p names a file inside the directory it is
// relative to: no absolute paths, no "..".
func safeRelPath(p string) bool {
	return p != "" && !filepath.IsAbs(p) && !strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.HasPrefix(p, "../") && p != ".." && p != "."
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that a reader (or a crash) never sees half a
// file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrOutput, path, err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("%w: %s: %v", ErrOutput, path, err)
	}
	return nil
}
