package ci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// isTarball reports whether a path names a tarball by its suffix.
func isTarball(p string) bool {
	return strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar")
}

// UpdateBaseline makes the results set in src the baseline at dest: a
// directory, or a tarball when dest ends in .tar.gz, .tgz or .tar (to
// commit, or to store as a CI artifact). src must be a complete suite run
// with no failed run. dest is replaced only if it is a baseline already (or
// does not exist): anything else there is left alone and is an error. The
// replacement is a rename, so a reader sees the old baseline or the new one.
func UpdateBaseline(src, dest string) (*Set, error) {
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory: baseline update reads the output of snapring ci run", ErrInput, src)
	}
	set, err := LoadSet(src)
	if err != nil {
		return nil, err
	}
	m := set.Manifest
	if !m.Complete {
		return nil, fmt.Errorf("%w: %s is incomplete (%s): not a baseline", ErrInput, src, m.Problem)
	}
	for _, r := range m.Runs {
		if r.Error != "" {
			return nil, fmt.Errorf("%w: %s: run %d of %s failed (%s): a baseline needs every run", ErrInput, src, r.Repeat, r.Scenario, r.Error)
		}
	}
	if missing := scenariosWithoutResults(m); len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s: no results for %s", ErrInput, src, strings.Join(missing, ", "))
	}
	if _, err := os.Stat(dest); err == nil {
		if _, err := LoadSet(dest); err != nil {
			return nil, fmt.Errorf("%w: %s exists and is not a snapring ci baseline, so it is left alone (%v)", ErrOutput, dest, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: %v", ErrOutput, dest, err)
	}
	files, err := setFiles(src, m)
	if err != nil {
		return nil, err
	}
	if isTarball(dest) {
		return set, writeTarball(dest, files)
	}
	return set, replaceDir(dest, files)
}

type namedFile struct {
	name string
	data []byte
}

// setFiles reads the manifest and the results it lists: only those go into
// a baseline.
func setFiles(src string, m *Manifest) ([]namedFile, error) {
	manifest, err := m.encode()
	if err != nil {
		return nil, err
	}
	files := []namedFile{{ManifestFile, manifest}}
	read := func(name string) ([]byte, error) {
		return readBounded(filepath.Join(src, filepath.FromSlash(name)), maxArchiveBytes)
	}
	for _, r := range m.Runs {
		if r.File == "" {
			continue
		}
		b, err := read(r.File)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		files = append(files, namedFile{r.File, b})
	}
	return files, nil
}

func writeTarball(dest string, files []namedFile) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	now := time.Now().UTC().Truncate(time.Second)
	dirs := map[string]bool{}
	for _, f := range files {
		if dir := filepath.ToSlash(filepath.Dir(f.name)); dir != "." && !dirs[dir] {
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now}); err != nil {
				return fmt.Errorf("%w: %v", ErrOutput, err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: now}); err != nil {
			return fmt.Errorf("%w: %v", ErrOutput, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("%w: %v", ErrOutput, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrOutput, err)
	}
	return writeFileAtomic(dest, buf.Bytes())
}

// replaceDir writes files into a new sibling directory of dest and swaps it
// in with renames.
func replaceDir(dest string, files []namedFile) error {
	parent := filepath.Dir(filepath.Clean(dest))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".new*")
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrOutput, dest, err)
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return fmt.Errorf("%w: %s: %v", ErrOutput, dest, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return fail(err)
		}
	}
	old := ""
	if _, err := os.Stat(dest); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dest, old); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return fail(err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
