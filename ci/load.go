package ci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/snapring/snapring/results"
)

// Bounds of a results set read from a tarball or git.
const (
	maxArchiveBytes   = 1 << 30
	maxArchiveEntries = 20000
)

// Set is one run of a suite as read back: its manifest and its results by
// scenario.
type Set struct {
	// Source says where the set was read from, for messages.
	Source   string
	Manifest *Manifest
	Results  map[string][]*results.Result
}

// LoadSet reads a results set written by Run from ref: a directory, a
// tarball (.tar, .tar.gz, .tgz) of one, or "git:REV:PATH" naming such a
// directory or tarball committed in the repository of the current directory.
// Every problem wraps ErrInput.
func LoadSet(ref string) (*Set, error) {
	if rest, ok := strings.CutPrefix(ref, "git:"); ok {
		return loadGit(ref, rest)
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: results %s: %v", ErrInput, ref, errors.Unwrap(err))
	}
	if fi.IsDir() {
		return loadDir(ref)
	}
	f, err := os.Open(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: results %s: %v", ErrInput, ref, err)
	}
	defer f.Close()
	return loadTar(ref, f)
}

func loadDir(dir string) (*Set, error) {
	where := filepath.Join(dir, ManifestFile)
	data, err := readBounded(where, maxManifestBytes)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s: not a directory written by snapring ci run", ErrInput, dir, ManifestFile)
		}
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	return newSet(dir, data, func(name string) ([]byte, error) {
		return readBounded(filepath.Join(dir, filepath.FromSlash(name)), maxArchiveBytes)
	})
}

func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return b, nil
}

// loadTar reads a tarball, gzipped or not, whose manifest is at its root or
// in one top-level directory.
func loadTar(where string, r io.Reader) (*Set, error) {
	br := bufio.NewReader(r)
	var rd io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInput, where, err)
		}
		defer zr.Close()
		rd = zr
	}
	files := map[string][]byte{}
	tr := tar.NewReader(io.LimitReader(rd, maxArchiveBytes))
	total := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: not a readable tarball: %v", ErrInput, where, err)
		}
		if len(files) >= maxArchiveEntries {
			return nil, fmt.Errorf("%w: %s: more than %d files", ErrInput, where, maxArchiveEntries)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInput, where, err)
		}
		total += len(b)
		files[path.Clean(strings.TrimPrefix(h.Name, "./"))] = b
	}
	root := ""
	if _, ok := files[ManifestFile]; !ok {
		for name := range files {
			if dir, base := path.Split(name); base == ManifestFile && strings.Count(dir, "/") == 1 {
				root = dir
			}
		}
		if root == "" {
			return nil, fmt.Errorf("%w: %s holds no %s: not a tarball of a snapring ci results directory", ErrInput, where, ManifestFile)
		}
	}
	return newSet(where, files[root+ManifestFile], func(name string) ([]byte, error) {
		b, ok := files[root+name]
		if !ok {
			return nil, fmt.Errorf("%s: no such file in the tarball", name)
		}
		return b, nil
	})
}

// loadGit reads REV:PATH from the repository of the current directory: a
// tree (a committed results directory) through git archive, a blob (a
// committed tarball) through git cat-file.
func loadGit(ref, spec string) (*Set, error) {
	if !strings.Contains(spec, ":") || strings.HasPrefix(spec, "-") {
		return nil, fmt.Errorf("%w: %s: want git:REV:PATH, such as git:origin/main:perf/baseline.tar.gz", ErrInput, ref)
	}
	kind, err := exec.Command("git", "cat-file", "-t", "--", spec).Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: git cannot find %s", ErrInput, ref, spec)
	}
	var cmd *exec.Cmd
	switch strings.TrimSpace(string(kind)) {
	case "tree":
		cmd = exec.Command("git", "archive", "--format=tar", spec)
	case "blob":
		cmd = exec.Command("git", "cat-file", "blob", spec)
	default:
		return nil, fmt.Errorf("%w: %s is a git %s, want a directory or a tarball", ErrInput, ref, strings.TrimSpace(string(kind)))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, ref, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInput, ref, err)
	}
	set, lerr := loadTar(ref, out)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil && lerr == nil {
		return nil, fmt.Errorf("%w: %s: git: %v %s", ErrInput, ref, err, oneLine(stderr.String()))
	}
	return set, lerr
}

// newSet decodes the manifest and every result it lists, and checks that
// each result is of the scenario the manifest says and appears once.
func newSet(where string, manifest []byte, read func(name string) ([]byte, error)) (*Set, error) {
	m, err := decodeManifest(where, manifest)
	if err != nil {
		return nil, err
	}
	set := &Set{Source: where, Manifest: m, Results: map[string][]*results.Result{}}
	hashes := map[string]string{}
	for _, sc := range m.Suite.Scenarios {
		hashes[sc.Name] = sc.Hash
	}
	type runID struct {
		start int64
		index int
	}
	seen := map[runID]string{}
	for _, rec := range m.Runs {
		if rec.File == "" {
			continue
		}
		want, ok := hashes[rec.Scenario]
		if !ok {
			return nil, fmt.Errorf("%w: %s: run of %q, which is not in the suite", ErrInput, where, rec.Scenario)
		}
		b, err := read(rec.File)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: result %s listed in the manifest: %v", ErrInput, where, rec.File, err)
		}
		res, err := results.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s: %v", ErrInput, where, rec.File, err)
		}
		if rawHash(res.Scenario) != want {
			return nil, fmt.Errorf("%w: %s: %s is not a run of scenario %s as the manifest describes it", ErrInput, where, rec.File, rec.Scenario)
		}
		id := runID{res.Start.UnixNano(), res.RunIndex}
		if first, dup := seen[id]; dup {
			return nil, fmt.Errorf("%w: %s: %s and %s are the same run (start %v, run %d): a run counted twice would fake agreement", ErrInput, where, first, rec.File, res.Start, res.RunIndex)
		}
		seen[id] = rec.File
		set.Results[rec.Scenario] = append(set.Results[rec.Scenario], res)
	}
	return set, nil
}
