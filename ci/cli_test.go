package ci

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The CLI tests run the real binary on real runs of testdata/tiny.yaml (a
// 32MiB device, 600 ms per side), as a CI job would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "snapring-ci-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "snapring")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/snapring").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// cli runs the binary with extra environment, for at most 5 minutes.
func cli(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out), 0
}

// gateSuite gates on the origin-write p50 engine/baseline ratio alone, at a
// strict alpha and a threshold (+100%) that a same-build set on a shared
// 2-vCPU machine does not reach, while the injected delay (at least 200us
// on each of 8 queued writes, against ~40us per write) multiplies it
// tenfold or more.
func gateSuite(t *testing.T, dir string) string {
	tiny, err := filepath.Abs("testdata/tiny.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "suite.yaml")
	os.WriteFile(path, []byte(`name: gate
repeats: 10
alpha: 0.001
scenarios:
  - file: `+tiny+`
metrics:
  - {group: ratio, class: origin-write, metric: p50, gate: true, threshold: 100%}
  - {gate: false}
`), 0o644)
	return path
}

func ciRun(t *testing.T, suite, out string, env ...string) {
	t.Helper()
	if o, code := cli(t, env, "ci", "run", suite, "-o", out, "-q"); code != 0 {
		t.Fatalf("ci run %v: exit %d\n%s", env, code, o)
	}
}

var pRE = regexp.MustCompile(`ratio/origin-write/p50 .*`)

func TestCLIRegressionGate(t *testing.T) {
	dir := t.TempDir()
	suite := gateSuite(t, dir)
	a, b, slow := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "slow")
	ciRun(t, suite, a)
	ciRun(t, suite, slow, "SNAPRING_INJECT_ENGINE_DELAY=200us")
	ciRun(t, suite, b)
	if o, code := cli(t, nil, "ci", "noise", a); code != 0 || !strings.Contains(o, "ratio/origin-write/p50") {
		t.Errorf("ci noise: exit %d\n%s", code, o)
	} else {
		t.Logf("noise guard, same build:\n%s", o)
	}

	// Two sets of the same build are not flagged.
	out, code := cli(t, nil, "ci", "compare", a, b)
	t.Logf("same build: %s", pRE.FindString(out))
	if code != 0 || !strings.Contains(out, "no regression") {
		t.Errorf("same build: exit %d; want 0\n%s", code, out)
	}

	// The injected regression is flagged, in every output.
	junit, md, js, ba := filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.md"), filepath.Join(dir, "r.json"), filepath.Join(dir, "ba.json")
	out, code = cli(t, nil, "ci", "compare", a, slow, "--junit", junit, "--markdown", md, "--json", js, "--benchmark-action", ba,
		"--benchmark-action-bigger", filepath.Join(dir, "bb.json"), "--html", filepath.Join(dir, "html"), "--png")
	t.Logf("injected regression: %s", pRE.FindString(out))
	if code != 1 || !strings.Contains(out, "REGRESSION") {
		t.Fatalf("injected regression: exit %d; want 1\n%s", code, out)
	}
	x, _ := os.ReadFile(junit)
	if !regexp.MustCompile(`<testcase name="ratio/origin-write/p50"[^>]*>\s*<failure message="regression \+[0-9.]+%, p=[0-9.e-]+" type="regression">`).Match(x) {
		t.Errorf("the regression is not a JUnit failure with change and p-value:\n%s", x)
	}
	xsd, _ := os.ReadFile("testdata/junit.xsd")
	sch, err := loadSchema(xsd)
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.validate(x); err != nil {
		t.Errorf("JUnit output does not validate: %v", err)
	}
	xmllint(t, "cli", x)
	for _, f := range []string{md, js, ba, filepath.Join(dir, "html", "index.html"), filepath.Join(dir, "html", "tiny-new-png", "latency.png")} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("output %s: %v", f, err)
		}
	}
	// Under --bisect a regression is still "bad".
	if _, code := cli(t, nil, "ci", "compare", "--bisect", "--baseline-ref", a, slow); code != 1 {
		t.Errorf("--bisect regression: exit %d; want 1", code)
	}

	// A suite whose every run failed: exit 2 (125 under --bisect), and no
	// comparison with it passes.
	failed, failed2 := filepath.Join(dir, "failed"), filepath.Join(dir, "failed2")
	bogus := "SNAPRING_INJECT_ENGINE_DELAY=lots"
	if o, code := cli(t, []string{bogus}, "ci", "run", suite, "-o", failed, "-q"); code != 2 || !strings.Contains(o, "no result for tiny") {
		t.Errorf("every run failed: exit %d; want 2\n%s", code, o)
	}
	if _, code := cli(t, []string{bogus}, "ci", "run", suite, "-o", failed2, "-q", "--bisect"); code != 125 {
		t.Errorf("every run failed, --bisect: exit %d; want 125", code)
	}
	if o, code := cli(t, nil, "ci", "compare", a, failed); code != 2 || !strings.Contains(o, "every new run failed") {
		t.Errorf("compare with a failed set: exit %d; want 2\n%s", code, o)
	}
	if _, code := cli(t, nil, "ci", "compare", "--bisect", a, failed); code != 125 {
		t.Errorf("compare with a failed set, --bisect: exit %d; want 125", code)
	}
}

func TestCLIHang(t *testing.T) {
	dir := t.TempDir()
	suite := gateSuite(t, dir)
	hung := filepath.Join(dir, "hung")
	out, code := cli(t, nil, "ci", "run", suite, "-o", hung, "-q", "--watchdog", "300ms", "--bisect")
	if code != 125 || !strings.Contains(out, "run 0 of tiny hung: not done after 300ms") {
		t.Fatalf("hung run, --bisect: exit %d; want 125 and the hang\n%s", code, out)
	}
	if o, code := cli(t, nil, "ci", "compare", hung, hung); code != 2 || !strings.Contains(o, "incomplete: run 0 of tiny hung") {
		t.Errorf("compare with a hung set: exit %d; want 2 naming the hang\n%s", code, o)
	}
	if _, code := cli(t, nil, "ci", "run", suite, "-o", filepath.Join(dir, "hung2"), "-q", "--watchdog", "300ms"); code != 3 {
		t.Errorf("hung run: exit %d; want 3", code)
	}
}

func TestCLIBadInput(t *testing.T) {
	dir := t.TempDir()
	s := testSuite(t, testSuiteYAML)
	base := writeSet(t, filepath.Join(dir, "base"), synthSet(t, s, "base", 1, 10, steady))
	other := writeSet(t, filepath.Join(dir, "other"), synthSet(t, changedSuite(t), "new", 2, 10, steady))
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nscenarios:\n  - builtin: nope\n"), 0o644)
	full := filepath.Join(dir, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ci", "run", bad, "-o", filepath.Join(dir, "out")}, "bad.yaml:3:"},
		{[]string{"ci", "run", filepath.Join(dir, "none.yaml"), "-o", filepath.Join(dir, "out")}, "none.yaml"},
		{[]string{"ci", "run", gateSuite(t, dir), "-o", full}, "is not empty"},
		{[]string{"ci", "compare", filepath.Join(dir, "nobase"), base}, "nobase"},
		{[]string{"ci", "compare", "--baseline-ref", filepath.Join(dir, "nobase.tar.gz"), base}, "nobase.tar.gz"},
		{[]string{"ci", "compare", base, other}, "scenario tiny changed between base and new"},
		{[]string{"ci", "compare", base, base}, "in both base and new"},
		{[]string{"ci", "compare", base, other, "--junit", filepath.Join(other, "r.xml")}, "inside the input"},
		{[]string{"ci", "compare", base}, "want BASE_DIR NEW_DIR"},
		{[]string{"ci", "baseline", "update", other, full}, "is not a snapring ci baseline"},
	} {
		out, code := cli(t, nil, c.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 2 || !strings.Contains(out, c.want) || len(lines) != 1 {
			t.Errorf("%v: exit %d, output %q; want exit 2, one line naming %q", c.args[1:], code, out, c.want)
		}
	}
	if _, code := cli(t, nil, "ci", "compare", "--bisect", base, other); code != 125 {
		t.Errorf("mismatch under --bisect: exit %d; want 125", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Errorf("a bad suite created its output directory")
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep")); string(b) != "mine" {
		t.Errorf("a user's file was touched")
	}
}

// TestCLIInterrupted: Ctrl-C ends the suite with a manifest that says so,
// exit 2, and no comparison accepts the set.
func TestCLIInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cmd := exec.Command(binary, "ci", "run", gateSuite(t, dir), "-o", out, "-q")
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the first run is recorded, interrupt the second.
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(buf.String(), "run tiny r0") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(buf.String(), "interrupted after") {
		t.Fatalf("interrupted suite: %v; want exit 2\n%s", err, buf.String())
	}
	set, err := LoadSet(out)
	if err != nil {
		t.Fatal(err)
	}
	if set.Manifest.Complete || set.Manifest.Problem != "interrupted" || len(set.Results["tiny"]) == 0 {
		t.Errorf("manifest: complete %v, problem %q, %d results", set.Manifest.Complete, set.Manifest.Problem, len(set.Results["tiny"]))
	}
	if o, code := cli(t, nil, "ci", "compare", out, out); code != 2 || !strings.Contains(o, "incomplete: interrupted") {
		t.Errorf("compare with an interrupted set: exit %d\n%s", code, o)
	}
}

// syncBuffer is a buffer a command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
