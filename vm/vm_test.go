//go:build linux

// Package vm holds the qemu harness that runs the ublk and dm-snapshot tests in a VM
// (see README.md). The real entry point is `make vm-test`; this test only checks, on
// request, that the harness boots and passes its smoke test.
package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestVMSmoke boots the VM with vm/tests/smoke.sh as the payload. It needs `make
// vm-deps` to have run and takes ~15-40 s under TCG, so it only runs with
// SNAPRING_VM_HOST_TEST=1.
func TestVMSmoke(t *testing.T) {
	if os.Getenv("SNAPRING_VM_HOST_TEST") != "1" {
		t.Skip("set SNAPRING_VM_HOST_TEST=1 to boot the VM (after `make vm-deps`)")
	}
	payload := t.TempDir()
	smoke, err := os.ReadFile(filepath.Join("tests", "smoke.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(payload, "smoke.sh"), smoke, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./run.sh", "--timeout", "300", "--", payload, "./smoke.sh")
	out, err := cmd.CombinedOutput()
	t.Logf("vm/run.sh output:\n%s", out)
	if err != nil {
		t.Fatalf("vm/run.sh: %v", err)
	}
}
