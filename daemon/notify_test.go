package daemon

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapring/snapring/client"
	"github.com/snapring/snapring/daemon/api"
)

// TestSystemdNotify: READY=1 only once the socket answers, STATUS lines,
// WATCHDOG=1 pings under WATCHDOG_USEC, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	ns := filepath.Join(dir, "notify")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SNAPRING_TEST_CHILD=daemon", "SNAPRING_TEST_SOCKET="+sock,
		"SNAPRING_TEST_STATE="+filepath.Join(dir, "state"), "NOTIFY_SOCKET="+ns, "WATCHDOG_USEC=200000")
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	got := map[string]bool{}
	buf := make([]byte, 4096)
	read := func(until string) {
		t.Helper()
		nl.SetReadDeadline(time.Now().Add(15 * time.Second))
		for !got[until] {
			n, err := nl.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v (got %v)\n%s", until, err, got, out.String())
			}
			msg := string(buf[:n])
			if msg == "READY=1" {
				// The socket must already answer.
				c := client.New(sock)
				if _, err := c.Health(context.Background()); err != nil {
					t.Fatalf("READY=1 before the API serves: %v", err)
				}
				c.Close()
			}
			key, _, _ := strings.Cut(msg, "=")
			got[key+"="] = true
			got[msg] = true
		}
	}
	read("READY=1")
	read("WATCHDOG=1")
	read("STATUS=")
	cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit %v\n%s", err, out.String())
	}
}

// TestReload: SIGHUP applies hooks and the log level, and says what needs
// a restart.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	sock := filepath.Join(dir, "s.sock")
	write := func(extra string) {
		os.WriteFile(path, []byte("socket: "+sock+"\nstate_dir: "+filepath.Join(dir, "st")+"\nlog: {level: info}\n"+extra), 0o600)
	}
	write("")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	done := make(chan error, 1)
	log := &syncBuf{}
	go func() { done <- Run(Options{ConfigPath: path, Config: cfg, Signals: sig, Log: log, inProcess: true}) }()
	c := client.New(sock)
	defer c.Close()
	for i := 0; ; i++ {
		if _, err := c.Health(context.Background()); err == nil {
			break
		}
		if i > 500 {
			t.Fatalf("not serving\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	write("metrics: {address: 127.0.0.1:9477}\nhooks:\n  - {events: [device-added], argv: [/bin/true]}\n")
	sig <- syscall.SIGHUP
	res, err := c.WaitEvent(context.Background(), 0, clientFilter(api.EventConfigReloaded, 0), 5*time.Second)
	if err != nil || res.TimedOut {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(res.Event.Message, "needing a restart") || !strings.Contains(res.Event.Message, "metrics.address") {
		t.Fatalf("reload message %q", res.Event.Message)
	}
	d := testDaemon.Load()
	if len(d.config().Hooks) != 1 || d.config().Metrics.Address != "" {
		t.Fatalf("after reload: hooks %v metrics %q", d.config().Hooks, d.config().Metrics.Address)
	}
	write("colour: blue\n")
	sig <- syscall.SIGHUP
	res, err = c.WaitEvent(context.Background(), res.Event.Seq, clientFilter(api.EventConfigReloaded, 0), 5*time.Second)
	if err != nil || res.TimedOut || !strings.Contains(res.Event.Message, "not reloaded") || !strings.Contains(res.Event.Message, "c.yaml:4:") {
		t.Fatalf("bad config reload: %+v %v", res, err)
	}
	c.Close()
	sig <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
