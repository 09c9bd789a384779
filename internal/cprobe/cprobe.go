// Package cprobe checks Go declarations of kernel ABI against the C
// headers: it compiles a small C program with gcc that prints each C
// expression (a sizeof, an offsetof, a constant) and compares the values
// with what Go has. Layout tests in uring/ and ublk/ use it.
package cprobe

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Check is one C expression and the value Go has for it.
type Check struct {
	Expr string
	Got  int64
}

// Sizeof checks sizeof(struct name).
func Sizeof(name string, got uintptr) Check {
	return Check{fmt.Sprintf("sizeof(struct %s)", name), int64(got)}
}

// Offsetof checks offsetof(struct name, field).
func Offsetof(name, field string, got uintptr) Check {
	return Check{fmt.Sprintf("offsetof(struct %s, %s)", name, field), int64(got)}
}

// Const checks a constant expression.
func Const(expr string, got int64) Check { return Check{expr, got} }

// Run compiles the probe against headers (as in #include <h>) and reports
// every mismatch. It skips when gcc or the first header is missing.
func Run(t testing.TB, headers []string, checks []Check) {
	t.Helper()
	if p := "/usr/include/" + headers[0]; !exists(p) {
		t.Skipf("no %s (install linux-libc-dev)", p)
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot compile the layout probe")
	}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n")
	for _, h := range headers {
		fmt.Fprintf(&src, "#include <%s>\n", h)
	}
	src.WriteString("int main(void) {\n")
	for _, c := range checks {
		fmt.Fprintf(&src, "printf(\"%%lld\\n\", (long long)(%s));\n", c.Expr)
	}
	src.WriteString("return 0;\n}\n")
	dir := t.TempDir()
	cfile, bin := filepath.Join(dir, "probe.c"), filepath.Join(dir, "probe")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("compiling the layout probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the layout probe: %v", err)
	}
	var want []int64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		v, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("probe output %q: %v", sc.Text(), err)
		}
		want = append(want, v)
	}
	if len(want) != len(checks) {
		t.Fatalf("probe printed %d values, want %d", len(want), len(checks))
	}
	for i, c := range checks {
		if c.Got != want[i] {
			t.Errorf("%s: Go has %d (%#x), C has %d (%#x)", c.Expr, c.Got, c.Got, want[i], want[i])
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
