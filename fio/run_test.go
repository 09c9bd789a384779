package fio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snapring/snapring/results"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func needFio(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("fio"); err != nil {
		t.Fatal("fio is not installed: make deps-host installs it (the Makefile runs it before the tests)")
	}
}

// quickJob is a short job that runs anywhere (psync, buffered).
const quickJob = `[global]
ioengine=psync
size=${SIZE}
runtime=${RUNTIME}
time_based=1

[rw]
filename=${TARGET}
rw=randrw
bs=4k
`

func writeJob(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "quick.fio")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func baseConfig(t *testing.T, job string) Config {
	return Config{JobFile: writeJob(t, job), OutDir: t.TempDir(), Dir: t.TempDir(), Size: 64 << 20, Runtime: 2 * time.Second, Loop: "off"}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// A real fio run on the raw target: one result in our schema, percentiles
// equal to what fio printed for the same run (checked against a second
// parse of the same output), series adding up, and compare and report
// reading it.
func TestRunRawRealFio(t *testing.T) {
	needFio(t)
	cfg := baseConfig(t, quickJob)
	cfg.Rounds = 2
	ws, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Target != Raw || ws[1].Round != 2 {
		t.Fatalf("written %+v", ws)
	}
	if got := listDir(t, cfg.OutDir); len(got) != 2 {
		t.Fatalf("out dir holds %v", got)
	}
	if got := listDir(t, cfg.Dir); len(got) != 0 {
		t.Fatalf("backing dir not cleaned up: %v", got)
	}
	var rs []*results.Result
	for _, w := range ws {
		r, err := results.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		var meta Meta
		if err := json.Unmarshal(r.Scenario, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Tool != "fio" || !strings.HasPrefix(meta.FioVersion, "fio-") || meta.Target != Raw || !strings.Contains(meta.Job, "filename=") || strings.Contains(meta.Job, "${TARGET}") {
			t.Fatalf("meta %+v", meta)
		}
		for _, c := range []results.Class{results.ImageRead, results.OriginWrite} {
			cr, ok := r.Engine.Classes[c]
			if !ok || cr.Count == 0 || cr.IOPS <= 0 || cr.MBps <= 0 || cr.P50Ns <= 0 || cr.P99Ns < cr.P50Ns || cr.Histogram == "" {
				t.Fatalf("class %s: %+v", c, cr)
			}
			var ops int64
			for _, p := range r.Engine.Series {
				ops += p.ClassOps[c]
			}
			if ops != cr.Count {
				t.Fatalf("class %s: series holds %d ops, the histogram %d", c, ops, cr.Count)
			}
		}
		if r.Engine.Duration < 1900*time.Millisecond || len(r.Engine.Series) < 2 {
			t.Fatalf("duration %v, %d series points", r.Engine.Duration, len(r.Engine.Series))
		}
	}
	// compare and report take fio results unchanged.
	c := results.Compare(rs[:1], rs[1:], results.CompareOptions{})
	var buf bytes.Buffer
	if err := c.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "image-read p99") || !strings.Contains(buf.String(), "origin-write iops") {
		t.Fatalf("compare output lacks the fio classes:\n%s", buf.String())
	}
	html := filepath.Join(t.TempDir(), "r.html")
	if err := results.WriteHTMLFile(html, rs, results.ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	files, err := WriteReports(ws)
	if err != nil || len(files) != 1 || !strings.HasSuffix(files[0], "fio-quick-raw.html") {
		t.Fatalf("reports %v %v", files, err)
	}
	buf.Reset()
	if err := WriteSummary(&buf, ws); err != nil || !strings.Contains(buf.String(), "origin-write") {
		t.Fatalf("summary %q %v", buf.String(), err)
	}
}

// fio's printed percentiles of a real run are the result's, and the
// converted histogram's own percentiles are within fio's bin error of them.
func TestConvertedPercentilesRealFio(t *testing.T) {
	needFio(t)
	dir := t.TempDir()
	job := strings.NewReplacer("${SIZE}", "32m", "${RUNTIME}", "2", "${TARGET}", filepath.Join(dir, "f")).Replace(quickJob)
	cmd := exec.Command("fio", "--output-format=json+", "--eta=never", "-")
	cmd.Stdin = strings.NewReader(job)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fio: %v", err)
	}
	parsed, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	side, _, err := buildSide([]hostData{{Jobs: parsed.Jobs}}, Raw, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	splits := checkPercentiles(t, "read", parsed.Jobs[0].Read, side.Classes[results.ImageRead])
	splits += checkPercentiles(t, "write", parsed.Jobs[0].Write, side.Classes[results.OriginWrite])
	// Not a bound: sparse tails make the two rank rules pick different
	// samples often; those percentiles are fio's in the result anyway.
	t.Logf("%d of 10 percentiles: fio's and HdrHistogram's rank rules picked different samples", splits)
}

// fioServer is a real `fio --server` on a loopback port.
type fioServer struct {
	addr string
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServers(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for i := 0; i < n; i++ {
		port := freePort(t)
		cmd := exec.Command("fio", fmt.Sprintf("--server=ip:127.0.0.1,%d", port))
		cmd.Dir = t.TempDir()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s := &fioServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}
		t.Cleanup(func() {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", s.addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fio server on %s did not come up: %v", s.addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		addrs = append(addrs, s.addr)
	}
	return addrs
}

// Three fio servers on loopback: the result keeps each host's histogram
// and merges them exactly.
func TestRunHostsLoopback(t *testing.T) {
	needFio(t)
	if os.Getenv("SNAPRING_VM") == "1" {
		t.Skip("the VM has no network interface up; this runs on the host")
	}
	hosts := startServers(t, 3)
	cfg := baseConfig(t, quickJob)
	cfg.Hosts = hosts
	cfg.RemoteDir = t.TempDir()
	ws, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("written %+v", ws)
	}
	r, err := results.ReadFile(ws[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	var meta Meta
	if err := json.Unmarshal(r.Scenario, &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Hosts) != 3 {
		t.Fatalf("%d hosts in the result", len(meta.Hosts))
	}
	for _, c := range []results.Class{results.ImageRead, results.OriginWrite} {
		merged := r.Engine.Classes[c]
		sum := results.NewHistogram()
		var count int64
		var iops float64
		for i, hr := range meta.Hosts {
			if hr.Host != hosts[i] {
				t.Fatalf("host %d is %q, want %q", i, hr.Host, hosts[i])
			}
			cr := hr.Classes[c]
			if cr.Count == 0 {
				t.Fatalf("host %s class %s: no operations", hr.Host, c)
			}
			count += cr.Count
			iops += cr.IOPS
			sum.Merge(mustDecode(t, cr))
		}
		if merged.Count != count || !mustDecode(t, merged).Equals(sum) || merged.IOPS != iops {
			t.Fatalf("class %s: merged count %d iops %v, hosts %d %v", c, merged.Count, merged.IOPS, count, iops)
		}
		var ops int64
		for _, p := range r.Engine.Series {
			ops += p.ClassOps[c]
		}
		if ops != count {
			t.Fatalf("class %s: series %d ops, hosts %d", c, ops, count)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	needFio(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cases := []struct {
		name string
		cfg  func(*Config)
		is   error
		want string
	}{
		{"fio rejects the job", func(c *Config) { c.JobFile = writeJob(t, strings.Replace(quickJob, "rw=randrw", "rw=sideways", 1)) }, ErrFio, "rejected"},
		{"fio missing", func(c *Config) { c.Fio = "/nonexistent/fio" }, ErrFio, "not found"},
		{"fio exits non-zero", func(c *Config) {
			c.JobFile = writeJob(t, quickJob+"\n[broken]\nfilename=/proc/version\nrw=write\nbs=4k\nsize=1m\n")
		}, ErrFio, "error="},
		{"no ${TARGET}", func(c *Config) { c.JobFile = writeJob(t, strings.Replace(quickJob, "${TARGET}", "/tmp/x", 1)) }, ErrConfig, "${TARGET}"},
		{"job sets output", func(c *Config) { c.JobFile = writeJob(t, quickJob+"write_hist_log=x\n") }, ErrConfig, ":11: write_hist_log"},
		{"job file missing", func(c *Config) { c.JobFile = "/nonexistent.fio" }, ErrConfig, "/nonexistent.fio"},
		{"out dir missing", func(c *Config) { c.OutDir = filepath.Join(t.TempDir(), "missing") }, ErrConfig, "--out"},
		{"unknown preset", func(c *Config) { c.JobFile, c.Preset = "", "nope" }, ErrConfig, "randwrite-4k"},
		{"host does not answer", func(c *Config) { c.Hosts = []string{dead} }, ErrHost, dead + " does not answer"},
		{"bad host", func(c *Config) { c.Hosts = []string{"h:99999"} }, ErrConfig, "port"},
		{"hosts with device targets", func(c *Config) { c.Hosts = []string{dead}; c.Targets = []Kind{Origin} }, ErrConfig, "only --target raw"},
		{"small size", func(c *Config) { c.Size = 1 << 20 }, ErrConfig, "--size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, quickJob)
			tc.cfg(&cfg)
			_, err := Run(context.Background(), cfg)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %v containing %q", err, tc.is, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if _, serr := os.Stat(cfg.OutDir); serr == nil {
				if got := listDir(t, cfg.OutDir); len(got) != 0 {
					t.Fatalf("partial result left: %v", got)
				}
			}
		})
	}
}

// Targets this host cannot set up are refused before anything runs, with
// what is missing.
func TestRunRefusesMissingFeatures(t *testing.T) {
	needFio(t)
	hs := probeHost()
	for _, k := range []Kind{Passthrough, Origin, Image, DMSnapshot} {
		m := hs.missing(k)
		if m == "" {
			continue
		}
		cfg := baseConfig(t, quickJob)
		cfg.Targets = []Kind{k}
		_, err := Run(context.Background(), cfg)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), m) || !strings.Contains(err.Error(), string(k)) {
			t.Fatalf("%s: %v", k, err)
		}
		if got := listDir(t, cfg.Dir); len(got) != 0 {
			t.Fatalf("%s: something was set up: %v", k, got)
		}
	}
}
