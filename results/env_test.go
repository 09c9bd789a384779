package results

import (
	"runtime"
	"testing"
)

func TestFSName(t *testing.T) {
	tests := []struct {
		magic uint32
		want  string
	}{
		{0x01021994, "tmpfs"},
		{0xef53, "ext4"},
		{0x58465342, "xfs"},
		{0x9123683e, "btrfs"},
		{0x794c7630, "overlay"},
		{0x12345678, "unknown (0x12345678)"},
	}
	for _, tt := range tests {
		if got := FSName(tt.magic); got != tt.want {
			t.Errorf("FSName(%#x) = %q, want %q", tt.magic, got, tt.want)
		}
	}
}

func TestCollectEnv(t *testing.T) {
	env := CollectEnv(t.TempDir(), "deadbeef")
	if env.GoVersion != runtime.Version() || env.Commit != "deadbeef" {
		t.Errorf("go version %q commit %q", env.GoVersion, env.Commit)
	}
	if env.CPUs < 1 || env.UsableCPUs < 1 || env.UsableCPUs > env.CPUs {
		t.Errorf("cpus %d usable %d", env.CPUs, env.UsableCPUs)
	}
	if runtime.GOOS != "linux" {
		return
	}
	if env.KernelRelease == "" || env.Machine == "" {
		t.Errorf("uname not read: %+v", env)
	}
	if env.BackingFS == "" {
		t.Errorf("backing file system not read: %+v", env)
	}
	t.Logf("%+v", env)
	if got := CollectEnv("/nonexistent/path", ""); got.BackingFS != "" {
		t.Errorf("file system of a missing path: %q", got.BackingFS)
	}
}
