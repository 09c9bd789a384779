package ci

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSetAndBaselines(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	dir := t.TempDir()
	src := writeSet(t, filepath.Join(dir, "run"), synthSet(t, s, "base", 1, 10, steady))
	fromDir, err := LoadSet(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromDir.Results["tiny"]) != 10 || fromDir.Manifest.SuiteHash != s.Hash() {
		t.Fatalf("read %d results", len(fromDir.Results["tiny"]))
	}

	// Baselines: a tarball and a directory, each readable as a set.
	tarball := filepath.Join(dir, "baseline.tar.gz")
	if _, err := UpdateBaseline(src, tarball); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "baseline")
	if _, err := UpdateBaseline(src, bdir); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{tarball, bdir} {
		set, err := LoadSet(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if len(set.Results["tiny"]) != 10 {
			t.Errorf("%s: %d results", ref, len(set.Results["tiny"]))
		}
	}
	// Updating again replaces them.
	src2 := writeSet(t, filepath.Join(dir, "run2"), synthSet(t, s, "new", 2, 10, steady))
	for _, dest := range []string{tarball, bdir} {
		if _, err := UpdateBaseline(src2, dest); err != nil {
			t.Fatal(err)
		}
		if set, err := LoadSet(dest); err != nil || set.Manifest.Commit != "new-commit" {
			t.Errorf("%s after update: %v", dest, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("update left files behind: %v", entries)
	}

	// From git: a committed tarball (blob) and a committed directory (tree).
	repo := filepath.Join(dir, "repo")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.MkdirAll(filepath.Join(repo, "perf"), 0o755)
	git("init", "-q")
	copyFile(t, tarball, filepath.Join(repo, "perf", "baseline.tar.gz"))
	if _, err := UpdateBaseline(src, filepath.Join(repo, "perf", "dir")); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-qm", "baseline")
	wd, _ := os.Getwd()
	os.Chdir(repo)
	defer os.Chdir(wd)
	for _, ref := range []string{"git:HEAD:perf/baseline.tar.gz", "git:HEAD:perf/dir"} {
		set, err := LoadSet(ref)
		if err != nil || len(set.Results["tiny"]) != 10 {
			t.Errorf("%s: %v", ref, err)
		}
	}
	for _, ref := range []string{"git:HEAD:perf/none", "git:HEAD", "git:nosuchrev:perf/dir"} {
		if _, err := LoadSet(ref); !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v; want ErrInput", ref, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSetErrors(t *testing.T) {
	s := testSuite(t, testSuiteYAML)
	dir := t.TempDir()
	good := writeSet(t, filepath.Join(dir, "good"), synthSet(t, s, "base", 1, 10, steady))
	os.WriteFile(filepath.Join(dir, "junk.tar.gz"), []byte("not a tarball"), 0o644)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)

	dup := writeSet(t, filepath.Join(dir, "dup"), synthSet(t, s, "base", 1, 10, steady))
	copyFile(t, filepath.Join(dup, "results", "tiny-r00.json"), filepath.Join(dup, "results", "tiny-r01.json"))

	missing := writeSet(t, filepath.Join(dir, "missing"), synthSet(t, s, "base", 1, 10, steady))
	os.Remove(filepath.Join(missing, "results", "tiny-r03.json"))

	other := testSuite(t, testSuiteYAML)
	other.Scenarios[0].Hash = "feed"
	foreign := writeSet(t, filepath.Join(dir, "foreign"), synthSet(t, other, "base", 1, 10, steady))

	escape := writeSet(t, filepath.Join(dir, "escape"), synthSet(t, s, "base", 1, 10, steady))
	b, _ := os.ReadFile(filepath.Join(escape, ManifestFile))
	os.WriteFile(filepath.Join(escape, ManifestFile), []byte(strings.Replace(string(b), `"results/tiny-r00.json"`, `"../good/results/tiny-r00.json"`, 1)), 0o644)

	for _, c := range []struct{ ref, want string }{
		{filepath.Join(dir, "nope"), "no such file"},
		{filepath.Join(dir, "empty"), "has no manifest.json"},
		{filepath.Join(dir, "junk.tar.gz"), "not a readable tarball"},
		{dup, "are the same run"},
		{missing, "tiny-r03.json listed in the manifest"},
		{foreign, "is not a run of scenario tiny"},
		{escape, "leaves the results directory"},
	} {
		if _, err := LoadSet(c.ref); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line with %q", c.ref, err, c.want)
		}
	}

	// Baseline update leaves a destination that is not a baseline alone,
	// and refuses incomplete or failed runs as a baseline.
	user := filepath.Join(dir, "user")
	os.MkdirAll(user, 0o755)
	os.WriteFile(filepath.Join(user, "notes.txt"), []byte("mine"), 0o644)
	if _, err := UpdateBaseline(good, user); !errors.Is(err, ErrOutput) {
		t.Errorf("update over a user directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(user, "notes.txt")); string(b) != "mine" {
		t.Errorf("the user's file was touched")
	}
	os.WriteFile(filepath.Join(dir, "user.tar.gz"), []byte("mine"), 0o644)
	if _, err := UpdateBaseline(good, filepath.Join(dir, "user.tar.gz")); !errors.Is(err, ErrOutput) {
		t.Errorf("update over a user file: %v", err)
	}
	failed := synthSet(t, s, "new", 2, 10, steady)
	failed.Manifest.Runs = append(failed.Manifest.Runs, RunRecord{Scenario: "tiny", Repeat: 10, Error: "boom"})
	if _, err := UpdateBaseline(writeSet(t, filepath.Join(dir, "failed"), failed), filepath.Join(dir, "b1")); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a run with a failed run as baseline: %v", err)
	}
	hung := synthSet(t, s, "new", 2, 10, steady)
	hung.Manifest.Complete, hung.Manifest.Problem = false, "run 3 of tiny hung"
	if _, err := UpdateBaseline(writeSet(t, filepath.Join(dir, "hung"), hung), filepath.Join(dir, "b2")); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "hung") {
		t.Errorf("a hung run as baseline: %v", err)
	}
}

func TestOutputsCheck(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "new")
	os.MkdirAll(in, 0o755)
	os.MkdirAll(filepath.Join(dir, "html"), 0o755)
	os.WriteFile(filepath.Join(dir, "html", "x"), nil, 0o644)
	for _, c := range []struct {
		o    Outputs
		want string
	}{
		{Outputs{Markdown: filepath.Join(dir, "no", "r.md")}, "does not exist"},
		{Outputs{Markdown: filepath.Join(dir, "r.md"), JUnit: filepath.Join(dir, "r.md")}, "name the same file"},
		{Outputs{JSON: filepath.Join(in, "r.json")}, "inside the input"},
		{Outputs{JUnit: dir}, "not a regular file"},
		{Outputs{HTMLDir: filepath.Join(dir, "html")}, "not empty"},
		{Outputs{PNG: true}, "--png needs --html"},
	} {
		if err := c.o.Check(in); !errors.Is(err, ErrOutput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.o, err, c.want)
		}
	}
	if err := (Outputs{Markdown: filepath.Join(dir, "r.md"), HTMLDir: filepath.Join(dir, "h2"), PNG: true}).Check(in); err != nil {
		t.Errorf("good outputs: %v", err)
	}
}
