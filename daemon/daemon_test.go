package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/snapring/snapring/client"
	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/ublk"
)

// The test binary doubles as a child process: a daemon to SIGTERM, or a
// client with another uid.
func TestMain(m *testing.M) {
	switch os.Getenv("SNAPRING_TEST_CHILD") {
	case "daemon":
		cfg := &Config{Socket: os.Getenv("SNAPRING_TEST_SOCKET"), StateDir: os.Getenv("SNAPRING_TEST_STATE")}
		cfg.EnsureDefaults()
		if err := Run(Options{Config: cfg}); err != nil {
			fmt.Fprintln(os.Stderr, "daemon:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "client":
		c := client.New(os.Getenv("SNAPRING_TEST_SOCKET"))
		_, err := c.Health(context.Background())
		fmt.Println(err)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

type running struct {
	socket string
	state  string
	sig    chan os.Signal
	done   chan error
	c      *client.Client
	log    *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a daemon in this process on a temporary socket.
func start(t testing.TB, inProcess bool, edit func(*Config)) *running {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{Socket: filepath.Join(dir, "s.sock"), StateDir: filepath.Join(dir, "state")}
	cfg.Log.Level = "debug"
	if edit != nil {
		edit(cfg)
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &running{socket: cfg.Socket, state: cfg.StateDir, sig: make(chan os.Signal, 1), done: make(chan error, 1), log: &syncBuf{}}
	go func() {
		r.done <- Run(Options{Config: cfg, Signals: r.sig, Log: r.log, inProcess: inProcess, tick: 50 * time.Millisecond})
	}()
	r.c = client.New(cfg.Socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.c.Health(context.Background()); err == nil {
			break
		}
		select {
		case err := <-r.done:
			t.Fatalf("daemon ended: %v\n%s", err, r.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not serving after 10 s\n%s", r.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	if r.sig == nil {
		return
	}
	r.c.Close()
	r.sig <- syscall.SIGTERM
	r.sig = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop\n%s", r.log)
	}
	if _, err := os.Lstat(r.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s left behind (%v)", r.socket, err)
	}
}

func rawRequest(t *testing.T, socket, method, path, body string) (int, api.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &e)
	return resp.StatusCode, e
}

func TestServesAndRefusesDevicesWithoutUblk(t *testing.T) {
	if _, err := ublk.ProbeFeatures(); err == nil {
		t.Skip("ublk is available here: the refusal cannot be shown")
	}
	r := start(t, false, func(c *Config) { c.Metrics.Address = "127.0.0.1:0" })
	ctx := context.Background()
	v, err := r.c.Version(ctx)
	if err != nil || v.API != "v1" {
		t.Fatalf("version %+v, %v", v, err)
	}
	img := filepath.Join(t.TempDir(), "d.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	_, err = r.c.AddDevice(ctx, api.DeviceAddRequest{Path: img})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeUblkUnavailable || ae.Message != ublk.ErrNoDriver.Error() {
		t.Fatalf("device add: %v; want %s: %s", err, api.CodeUblkUnavailable, ublk.ErrNoDriver)
	}
	if ds, err := r.c.Devices(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("devices %v, %v", ds, err)
	}
	if fi, _ := os.Stat(img); fi.Size() != 1<<20 {
		t.Fatalf("the refused device's file changed size: %d", fi.Size())
	}
	fi, err := os.Stat(r.socket)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v; want 0660", fi.Mode(), err)
	}
}

func TestMetricsServed(t *testing.T) {
	addr := freeAddr(t)
	r := start(t, true, func(c *Config) { c.Metrics.Address = addr })
	dev := addFileDevice(t, r, 4<<20)
	_ = dev
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"snapring_build_info{", "snapring_devices 1", `snapring_events_total{kind="device-added"} 1`, "snapring_iowq_kicks_total", "snapring_api_requests_total{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func addFileDevice(t testing.TB, r *running, size int64) api.Device {
	t.Helper()
	p := filepath.Join(t.TempDir(), "origin.img")
	if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := r.c.AddDevice(context.Background(), api.DeviceAddRequest{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadRequestsKeepServing(t *testing.T) {
	r := start(t, true, func(c *Config) {
		c.API.ReadTimeout = Duration(300 * time.Millisecond)
		c.API.MaxRequestBytes = 4096
	})
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed", "POST", "/v1/devices", `{"path": `, 400, api.CodeInvalidRequest},
		{"unknown field", "POST", "/v1/devices", `{"path": "/x", "colour": 1}`, 400, api.CodeInvalidRequest},
		{"trailing", "POST", "/v1/devices", `{"path": "/x"} {}`, 400, api.CodeInvalidRequest},
		{"empty", "POST", "/v1/snapshots", ``, 400, api.CodeInvalidRequest},
		{"oversized", "POST", "/v1/devices", `{"path": "` + strings.Repeat("a", 8192) + `"}`, 413, api.CodeRequestTooLarge},
		{"wrong type", "POST", "/v1/snapshots", `{"devices": "1"}`, 400, api.CodeInvalidRequest},
		{"relative path", "POST", "/v1/devices", `{"path": "x.img"}`, 400, api.CodeInvalidRequest},
		{"missing file", "POST", "/v1/devices", `{"path": "/nonexistent/x.img"}`, 400, api.CodeInvalidRequest},
		{"no route", "GET", "/v2/health", ``, 404, api.CodeNotFound},
		{"no snapshot", "GET", "/v1/snapshots/42", ``, 404, api.CodeNotFound},
		{"bad since", "GET", "/v1/events/wait?since=x", ``, 400, api.CodeInvalidRequest},
		{"bad kind", "GET", "/v1/events?kinds=nope", ``, 400, api.CodeInvalidRequest},
		{"no devices", "POST", "/v1/snapshots", `{"devices": [], "storage": {"path": "/tmp", "limit_bytes": 4096}}`, 400, api.CodeInvalidRequest},
	}
	for _, tc := range cases {
		st, e := rawRequest(t, r.socket, tc.method, tc.path, tc.body)
		if st != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%s: HTTP %d %+v; want %d %s", tc.name, st, e, tc.status, tc.code)
		}
	}
	// An engine option out of range is named (not refused as an unknown field).
	st, e := rawRequest(t, r.socket, "POST", "/v1/snapshots", `{"devices": [1], "storage": {"path": "/tmp", "limit_bytes": 1048576}, "backup_nice": 20}`)
	if st != 400 || e.Code != api.CodeInvalidRequest || !strings.Contains(e.Message, "backup_nice 20") {
		t.Errorf("backup_nice 20: HTTP %d %+v; want 400 naming backup_nice 20", st, e)
	}
	// A slow client: headers never finished. The server drops it after
	// the read timeout and goes on serving others.
	c, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/devices HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 512))
	if err == nil && n > 0 {
		// Go answers a timed-out request with nothing or a 408; either way
		// the connection ends.
		_, err = c.Read(make([]byte, 512))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a slow client was kept for 5 s (read timeout 300 ms)")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatalf("slow client dropped only after %v", time.Since(start))
	}
	if _, err := r.c.Health(context.Background()); err != nil {
		t.Fatalf("not serving after the bad requests: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	r := start(t, true, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(r.socket)
			defer c.Close()
			for j := 0; j < 5; j++ {
				if _, err := c.Health(context.Background()); err != nil {
					errs <- err
					return
				}
				if _, err := c.Snapshots(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOtherUIDRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child with another uid")
	}
	r := start(t, true, nil)
	// The mode keeps others from connecting at all; open it up so that the
	// SO_PEERCRED check is what refuses them.
	os.Chmod(r.socket, 0o666)
	for p := filepath.Dir(r.socket); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	// The child runs this test binary, which lives in a private build
	// directory: copy it where uid 65534 can execute it.
	binDir, err := os.MkdirTemp("", "snapring-uid-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "daemon.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "SNAPRING_TEST_CHILD=client", "SNAPRING_TEST_SOCKET="+r.socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), api.CodePermissionDenied) {
		t.Fatalf("uid 65534 got %q; want %s", out, api.CodePermissionDenied)
	}
	if !strings.Contains(r.log.String(), "connection refused") {
		t.Fatalf("refusal not logged:\n%s", r.log)
	}
	if _, err := r.c.Health(context.Background()); err != nil {
		t.Fatalf("root refused after: %v", err)
	}
}

func TestSlowSubscriberBounded(t *testing.T) {
	const backlog = 32
	r := start(t, true, func(c *Config) { c.Events.SubscriberBacklog = backlog; c.Events.History = 64 })
	conn, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
	// Find the daemon's subscriber, then flood it without reading.
	var d *Daemon
	deadline := time.Now().Add(5 * time.Second)
	for d == nil && time.Now().Before(deadline) {
		d = testDaemon.Load()
		time.Sleep(5 * time.Millisecond)
	}
	for d.events.subscribers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no subscriber")
		}
		time.Sleep(5 * time.Millisecond)
	}
	const total = 20000
	big := strings.Repeat("x", 200)
	for i := 0; i < total; i++ {
		d.events.publish(api.Event{Kind: api.EventFillWarning, Message: big})
	}
	d.events.mu.Lock()
	for s := range d.events.subs {
		if n := s.pending(); n > backlog {
			t.Errorf("backlog %d > %d", n, backlog)
		}
	}
	d.events.mu.Unlock()
	// Now read: the events the socket held, then a dropped marker, then
	// the backlog; seen + dropped accounts for every event.
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var seen, dropped, last uint64
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for last < total && sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == api.EventDropped {
			dropped += e.Dropped
			continue
		}
		seen++
		last = e.Seq
	}
	if dropped == 0 {
		t.Fatalf("no dropped count reported (seen %d)", seen)
	}
	// Seq 1 is device... none here: the history starts at the flood.
	if seen+dropped != last {
		t.Fatalf("seen %d + dropped %d != last seq %d", seen, dropped, last)
	}
}

func TestSIGTERMExitsZeroAndRemovesSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SNAPRING_TEST_CHILD=daemon", "SNAPRING_TEST_SOCKET="+sock, "SNAPRING_TEST_STATE="+filepath.Join(dir, "state"))
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := client.New(sock)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Health(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child daemon not serving:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "state", stateName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file left after a clean stop: %v", err)
	}
}

// freeAddr is a loopback address with a free port for the metrics server
// (a fixed port would collide).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAddDeviceDirect: "direct" reaches the engine (the device reports it
// over the API); without it the original is buffered.
func TestAddDeviceDirect(t *testing.T) {
	r := start(t, true, nil)
	p := filepath.Join(t.TempDir(), "origin.img")
	if err := os.WriteFile(p, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := r.c.AddDevice(context.Background(), api.DeviceAddRequest{Path: p, Direct: true})
	if err != nil && strings.Contains(err.Error(), "O_DIRECT") {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !d.Direct {
		t.Fatalf("device %+v: want direct", d)
	}
	plain := addFileDevice(t, r, 4<<20)
	if plain.Direct {
		t.Fatalf("device %+v added without direct reports it", plain)
	}
}
