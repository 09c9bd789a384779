package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// TestDaemonCLI: `snapring daemon` serves, the client commands speak to it
// (tables and -o json, errors on one line, exit 2 for bad input), and
// SIGTERM stops it with exit 0.
func TestDaemonCLI(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("socket: "+sock+"\nstate_dir: "+filepath.Join(dir, "st")+"\n"), 0o644)
	d := exec.Command(binary, "daemon", "--config", cfg)
	var log strings.Builder
	d.Stderr = &log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Process.Kill()
	t.Setenv("SNAPRING_SOCKET", sock)
	for i := 0; ; i++ {
		if _, code := cli(t, "device", "list"); code == 0 {
			break
		}
		if i > 100 {
			t.Fatalf("daemon not serving\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, code := cli(t, "snapshot", "list", "-o", "json")
	var l api.SnapshotList
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || l.Snapshots == nil {
		t.Fatalf("snapshot list -o json: exit %d %q", code, out)
	}
	if out, code := cli(t, "snapshot", "list"); code != 0 || !strings.HasPrefix(out, "ID  NAME  STATE") {
		t.Fatalf("snapshot list: exit %d %q", code, out)
	}
	out, code = cli(t, "daemon", "health", "-o", "json")
	var h api.Health
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || h.Status != "ok" || h.Goroutines <= 0 || h.OpenFDs <= 0 || h.RSSBytes <= 0 {
		t.Fatalf("daemon health -o json: exit %d %q", code, out)
	}
	if out, code := cli(t, "daemon", "health"); code != 0 || !strings.HasPrefix(out, "STATUS  DEVICES") || !strings.Contains(out, "\nok ") {
		t.Fatalf("daemon health: exit %d %q", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "info", "9"}, `not_found: no snapshot "9"`},
		{[]string{"snapshot", "create", "--device", "1", "--storage", dir, "--limit", "4 parsecs"}, "--limit"},
		{[]string{"snapshot", "list", "-o", "yaml"}, "-o"},
		{[]string{"device", "add", "relative.img"}, "invalid_request"},
		{[]string{"snapshot", "list", "--socket", filepath.Join(dir, "none.sock")}, "none.sock"},
	} {
		out, code := cli(t, c.args...)
		if code != 2 || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d %q; want exit 2, one line naming %q", c.args, code, out, c.want)
		}
	}
	d.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(); err != nil {
		t.Fatalf("daemon after SIGTERM: %v\n%s", err, log.String())
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Fatal("socket left after SIGTERM")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("socket: /x.sock\nlog: {format: xml}\n"), 0o644)
	if out, code := cli(t, "daemon", "--config", bad); code != 2 || !strings.HasPrefix(out, "snapring: "+bad+":2: log format") {
		t.Fatalf("bad config: exit %d %q", code, out)
	}
}

// TestSnapshotDeviceRows: snapshot info's per-device table shows each
// device's own chunk counters and whether its image is corrupted.
func TestSnapshotDeviceRows(t *testing.T) {
	var b strings.Builder
	table(&b, snapshotDeviceHeader, snapshotDeviceRows([]api.SnapshotDevice{
		{Device: 1, Path: "/a", Origin: "/dev/ublkb0", Image: "/dev/ublkb2", ChunkSizeBytes: 65536, Chunks: api.Chunks{Copied: 3, Stored: 2, InMemory: 1}},
		{Device: 2, Path: "/b", Origin: "/dev/ublkb1", ChunkSizeBytes: 65536, Chunks: api.Chunks{Copied: 5, Stored: 4, Failed: 1}, Corrupted: true},
	}))
	want := "" +
		"DEVICE  PATH  ORIGIN       IMAGE        CHUNK  COPIED  STORED  IN-MEMORY  FAILED  IMAGE-STATE\n" +
		"1       /a    /dev/ublkb0  /dev/ublkb2  65536  3       2       1          0       ok\n" +
		"2       /b    /dev/ublkb1  -            65536  5       4       0          1       corrupted\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
