package fio

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/ublk"
)

// stepLog passes the progress lines of Run ("fio: round ...") to t.Log,
// so that a slow VM shows where it is.
type stepLog struct{ t *testing.T }

func (w stepLog) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		if strings.HasPrefix(l, "fio: ") {
			w.t.Log(l)
		}
	}
	return len(p), nil
}

// needDevices skips (fails in the VM, SNAPRING_VM=1) unless this host can
// set up every target.
func needDevices(t *testing.T) {
	t.Helper()
	needFio(t)
	hs := probeHost()
	for _, k := range Kinds {
		if m := hs.missing(k); m != "" {
			if os.Getenv("SNAPRING_VM") == "1" {
				t.Fatalf("target %s needs %s, in the VM", k, m)
			}
			t.Skipf("target %s needs %s (runs in the VM: make vm-test VM_TEST_PKGS=./fio/...)", k, m)
		}
	}
}

// Every target on real devices, two rounds, interleaved: one result per
// target and round, ratios against raw of the same round, everything torn
// down.
func TestVMAllTargets(t *testing.T) {
	needDevices(t)
	cfg := Config{
		JobFile: writeJob(t, strings.Replace(strings.Replace(quickJob, "psync", "io_uring", 1), "[rw]", "direct=1\niodepth=8\n\n[rw]", 1)),
		OutDir:  t.TempDir(), Dir: t.TempDir(), Size: 64 << 20, Runtime: 2 * time.Second, Rounds: 2, Loop: "on",
		Targets: Kinds, Progress: stepLog{t},
	}
	ws, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2*len(Kinds) {
		t.Fatalf("%d results, want %d", len(ws), 2*len(Kinds))
	}
	orders := map[int]string{}
	for _, w := range ws {
		r, err := results.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		var meta Meta
		if err := json.Unmarshal(r.Scenario, &meta); err != nil {
			t.Fatal(err)
		}
		orders[meta.Round] = kindList(meta.Order)
		if !strings.HasPrefix(meta.Backing, "/dev/loop") {
			t.Fatalf("%s: backing %q, want a loop device", w.Target, meta.Backing)
		}
		for _, c := range []results.Class{results.ImageRead} {
			if r.Engine.Classes[c].Count == 0 {
				t.Fatalf("%s round %d: no %s", w.Target, w.Round, c)
			}
		}
		// Zero copy by default where the driver has it, for the targets
		// that take it; null and the image always copy.
		want := map[Kind]string{Passthrough: zeroCopyPath(t), Origin: zeroCopyPath(t), Null: "copy (buffer address)", Image: "copy (buffer address)"}[w.Target]
		if meta.DataPath != want {
			t.Fatalf("%s: data path %q, want %q", w.Target, meta.DataPath, want)
		}
		if w.Target == Raw {
			if r.Baseline != nil {
				t.Fatal("raw has a baseline")
			}
			continue
		}
		if r.Baseline == nil || meta.Baseline != Raw || r.Ratios[results.ImageRead].IOPS <= 0 {
			t.Fatalf("%s: no ratios against raw: %+v", w.Target, r.Ratios)
		}
		t.Logf("%s round %d: read IOPS %.0f (%.2fx raw)", w.Target, w.Round, r.Engine.Classes[results.ImageRead].IOPS, r.Ratios[results.ImageRead].IOPS)
	}
	if orders[1] == orders[2] {
		t.Fatalf("rounds ran in the same order %s", orders[1])
	}
	if got := listDir(t, cfg.Dir); len(got) != 0 {
		t.Fatalf("backing dir not cleaned up: %v", got)
	}
	if _, err := os.Stat("/dev/mapper/" + dmPrefix() + "-origin"); err == nil {
		t.Fatal("dm-snapshot devices left behind")
	}
}

// The verify preset: fio writes with crc32c and reads back on the origin
// with an active snapshot, ours and dm-snapshot's; fio fails (and so the
// run) if a block reads back wrong.
func TestVMPresetVerify(t *testing.T) {
	needDevices(t)
	cfg := Config{Preset: "verify", OutDir: t.TempDir(), Dir: t.TempDir(), Size: 64 << 20, Loop: "on", Progress: stepLog{t}}
	ws, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("%d results", len(ws))
	}
}

// The backup preset: image reads while the origin takes writes at a fixed
// rate, both recorded.
func TestVMPresetBackup(t *testing.T) {
	needDevices(t)
	cfg := Config{Preset: "backup", OutDir: t.TempDir(), Dir: t.TempDir(), Size: 64 << 20, Runtime: 2 * time.Second, Loop: "on", Targets: []Kind{Origin}, Progress: stepLog{t}}
	ws, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		r, err := results.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		if r.Engine.Classes[results.ImageRead].Count == 0 || r.Engine.Classes[results.OriginWrite].Count == 0 {
			t.Fatalf("%s: %+v", w.Target, r.Engine.Classes)
		}
	}
}

// zeroCopyPath is the data path passthrough and origin take by default here.
func zeroCopyPath(t *testing.T) string {
	t.Helper()
	f, err := ublk.ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	if f&ublk.FeatureAutoBufReg != 0 {
		return "zero copy (AUTO_BUF_REG)"
	}
	return "copy (buffer address)"
}
