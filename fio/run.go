package fio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/results"
)

// Errors. Every error Run returns wraps one of these (or ErrOutput,
// ErrHistLog) and is one line.
var (
	// ErrConfig is a bad option, job file or target choice, found before
	// anything is set up.
	ErrConfig = errors.New("fio")
	// ErrUnsupported is a target this host cannot set up.
	ErrUnsupported = errors.New("fio: target not available here")
	// ErrFio is fio missing, rejecting the job, or exiting non-zero.
	ErrFio = errors.New("fio")
	// ErrHost is a fio server that does not answer.
	ErrHost = errors.New("fio: host")
	// ErrSetup is a device that could not be set up.
	ErrSetup = errors.New("fio: setup")
)

// Limits.
const (
	MaxJobFileBytes = 1 << 20
	MaxRounds       = 100
	MaxHosts        = 64
	// DefaultPort is fio's server port.
	DefaultPort = 8765
	// dialTimeout bounds the check that every host answers.
	dialTimeout = 5 * time.Second
	// maxCapture bounds how much of fio's stdout and stderr is kept for
	// error messages.
	maxCapture = 64 << 10
	// logIntervalMs is log_hist_msec: one point a second.
	logIntervalMs = 1000
)

// Config is one `snapring fio run`.
type Config struct {
	// JobFile is a fio job file; Preset names a preset instead (exactly one).
	JobFile string
	Preset  string
	// Targets to run; empty means the preset's targets, or raw for a job
	// file. Raw is always run (first in the first round): the others'
	// ratios are against it.
	Targets []Kind
	// Hosts runs the job through fio's client/server on these fio servers
	// ("host" or "host:port", default port 8765) instead of locally.
	Hosts []string
	// OutDir receives one result per target and round.
	OutDir string
	// Dir holds the backing file and the difference stores (default
	// os.TempDir()). RemoteDir is where the fio servers put their files
	// in a multi-host run (default /tmp).
	Dir       string
	RemoteDir string
	// Size is the size of the backing (and of every device), Runtime the
	// runtime of time-based presets (${RUNTIME}).
	Size    int64
	Runtime time.Duration
	// Rounds repeats every target; the order rotates from round to round.
	Rounds int
	// Loop is "auto" (a loop device over the backing file when possible),
	// "on" or "off".
	Loop    string
	Devices DeviceOptions
	// Fio is the fio binary (default "fio" from PATH).
	Fio string
	// Timeout bounds each fio invocation (default: 10 times the runtime
	// plus 5 minutes).
	Timeout time.Duration
	// Progress, when set (a terminal), shows what runs and fio's status.
	Progress io.Writer
	// Commit is snapring's commit, recorded in every result.
	Commit string
}

// Meta is what a fio result keeps in its "scenario" field: how it was made.
type Meta struct {
	Tool       string `json:"tool"`
	FioVersion string `json:"fio_version"`
	Target     Kind   `json:"target"`
	// Baseline is the target of the result's baseline side ("raw"), empty
	// for the raw target itself.
	Baseline Kind   `json:"baseline,omitempty"`
	Preset   string `json:"preset,omitempty"`
	// JobFile is the job file's path, empty for a preset; Job is the job
	// text fio ran, after substitution.
	JobFile string `json:"job_file,omitempty"`
	Job     string `json:"job"`
	Round   int    `json:"round"`
	Rounds  int    `json:"rounds"`
	// Order is the order the targets ran in this round.
	Order     []Kind `json:"order"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
	Backing   string `json:"backing,omitempty"`
	// DataPath is how the target's ublk device moved data: "zero copy
	// (AUTO_BUF_REG)", "copy (USER_COPY)" or "copy (buffer address)"; empty
	// for raw and dm-snapshot.
	DataPath string `json:"data_path,omitempty"`
	// Original is how our engine opened the original (origin and image):
	// "buffered" or "O_DIRECT".
	Original string `json:"original,omitempty"`
	// Classes says what the result's classes mean for fio.
	Classes string `json:"classes"`
	// Conversion states the error of the histograms.
	Conversion string `json:"conversion"`
	// Hosts holds each fio server's own classes, with histograms, in a
	// multi-host run; the result's classes merge them exactly.
	Hosts []HostResult `json:"hosts,omitempty"`
}

const classesNote = "image-read = fio's reads, origin-write = fio's writes (image-write on the image target); on the baseline side the same on the raw target"

const conversionNote = "fio json+ bins recorded at their midpoints in an HdrHistogram (3 significant digits): within 1/128 (fio bin error) plus 1/1024 of the true latencies; p50..p99.99 are fio own percentiles of its bins (equal to what fio prints; over hosts, of the pooled samples); min, max, mean are fio exact figures"

// Written is one result file Run wrote.
type Written struct {
	Path   string
	Target Kind
	Round  int
}

type runPlan struct {
	cfg     Config
	fio     string
	version string
	name    string
	job     string
	targets []Kind
	hosts   []string
	work    string
}

// Run runs the job against every target, Rounds times, and writes one
// result per target and round into cfg.OutDir. Everything is checked
// before the first device is set up; results are written to temporary
// names and renamed only when every run succeeded, so a failure leaves no
// result behind.
func Run(ctx context.Context, cfg Config) ([]Written, error) {
	p, err := plan(cfg)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "snapring-fio-*")
	if err != nil {
		return nil, fmt.Errorf("%w: work directory: %v", ErrSetup, err)
	}
	defer os.RemoveAll(work)
	p.work = work
	// fio parses the job here, before any device exists.
	if err := p.parseOnly(ctx); err != nil {
		return nil, err
	}
	var res []*results.Result
	if len(p.hosts) > 0 {
		res, err = p.runHosts(ctx)
	} else {
		res, err = p.runLocal(ctx)
	}
	if err != nil {
		return nil, err
	}
	return p.write(res)
}

func plan(cfg Config) (*runPlan, error) {
	p := &runPlan{cfg: cfg}
	c := &p.cfg
	if (c.JobFile == "") == (c.Preset == "") {
		return nil, fmt.Errorf("%w: give a job file or --preset NAME (one of them)", ErrConfig)
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Rounds < 1 || c.Rounds > MaxRounds {
		return nil, fmt.Errorf("%w: --rounds %d: want 1..%d", ErrConfig, c.Rounds, MaxRounds)
	}
	if c.Size == 0 {
		c.Size = 256 << 20
	}
	if c.Devices.ChunkShift == 0 {
		c.Devices.ChunkShift = 12
	}
	if c.Devices.ChunkShift < 12 || c.Devices.ChunkShift > 20 {
		return nil, fmt.Errorf("%w: --chunk-shift %d: want 12..20", ErrConfig, c.Devices.ChunkShift)
	}
	if c.Size < 64<<20 || c.Size > 1<<40 || c.Size%(1<<c.Devices.ChunkShift) != 0 {
		return nil, fmt.Errorf("%w: --size %d: want 64 MiB..1 TiB, a multiple of the chunk size %d", ErrConfig, c.Size, 1<<c.Devices.ChunkShift)
	}
	if c.Runtime == 0 {
		c.Runtime = 10 * time.Second
	}
	if c.Runtime < time.Second || c.Runtime > 24*time.Hour || c.Runtime%time.Second != 0 {
		return nil, fmt.Errorf("%w: --runtime %v: want whole seconds, 1s..24h", ErrConfig, c.Runtime)
	}
	if c.Timeout == 0 {
		c.Timeout = 10*c.Runtime + 5*time.Minute
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("%w: --timeout %v is negative", ErrConfig, c.Timeout)
	}
	switch c.Loop {
	case "":
		c.Loop = "auto"
	case "auto", "on", "off":
	default:
		return nil, fmt.Errorf("%w: --loop %q: want auto, on or off", ErrConfig, c.Loop)
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.RemoteDir == "" {
		c.RemoteDir = "/tmp"
	}
	if c.OutDir == "" {
		return nil, fmt.Errorf("%w: --out DIR is required", ErrConfig)
	}
	if err := checkDir(c.OutDir, "--out"); err != nil {
		return nil, err
	}
	if len(c.Hosts) == 0 {
		if err := checkDir(c.Dir, "--dir"); err != nil {
			return nil, err
		}
	}

	// The job.
	var defaults []Kind
	if c.Preset != "" {
		pr, err := FindPreset(c.Preset)
		if err != nil {
			return nil, err
		}
		p.name, p.job, defaults = pr.Name, pr.Job, pr.Targets
	} else {
		job, err := readJobFile(c.JobFile)
		if err != nil {
			return nil, err
		}
		p.job = job
		p.name = strings.TrimSuffix(filepath.Base(c.JobFile), filepath.Ext(c.JobFile))
		defaults = []Kind{Raw}
	}
	p.name = sanitizeName(p.name)

	// The targets: raw first, each once.
	ts := c.Targets
	if len(ts) == 0 {
		ts = defaults
	}
	p.targets = []Kind{Raw}
	for _, k := range ts {
		if _, err := ParseKind(string(k)); err != nil {
			return nil, err
		}
		if !slices.Contains(p.targets, k) {
			p.targets = append(p.targets, k)
		}
	}

	// The hosts.
	if len(c.Hosts) > MaxHosts {
		return nil, fmt.Errorf("%w: %d hosts: at most %d", ErrConfig, len(c.Hosts), MaxHosts)
	}
	for _, h := range c.Hosts {
		hp, err := normalizeHost(h)
		if err != nil {
			return nil, err
		}
		if slices.Contains(p.hosts, hp) {
			return nil, fmt.Errorf("%w: --hosts: %s given twice", ErrConfig, hp)
		}
		p.hosts = append(p.hosts, hp)
	}
	if len(p.hosts) > 0 && len(p.targets) > 1 {
		return nil, fmt.Errorf("%w: --hosts runs the job on files of the fio servers: only --target raw (got %s)", ErrConfig, kindList(p.targets))
	}

	// fio itself.
	name := c.Fio
	if name == "" {
		name = "fio"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not found: install fio (apt-get install fio, or make deps-host)", ErrFio, name)
	}
	p.fio = path
	out, err := exec.Command(path, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "fio-") {
		return nil, fmt.Errorf("%w: %s --version did not print fio-N.N: is it fio?", ErrFio, path)
	}
	p.version = strings.TrimSpace(string(out))

	// What this host can set up, before anything is.
	if len(p.hosts) == 0 {
		hs := probeHost()
		for _, k := range p.targets {
			if m := hs.missing(k); m != "" {
				return nil, fmt.Errorf("%w: target %s needs %s", ErrUnsupported, k, m)
			}
		}
		if c.Loop == "on" && hs.loop != "" {
			return nil, fmt.Errorf("%w: --loop on needs %s", ErrUnsupported, hs.loop)
		}
	}
	// Every host answers.
	for _, h := range p.hosts {
		conn, err := net.DialTimeout("tcp", h, dialTimeout)
		if err != nil {
			return nil, fmt.Errorf("%w %s does not answer: %v (is `fio --server` running there?)", ErrHost, h, unwrapNetError(err))
		}
		conn.Close()
	}
	return p, nil
}

func unwrapNetError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func kindList(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func checkDir(dir, flag string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %s %s: directory does not exist", ErrConfig, flag, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s %s: not a directory", ErrConfig, flag, dir)
	}
	if unix.Access(dir, unix.W_OK) != nil {
		return fmt.Errorf("%w: %s %s: directory is not writable", ErrConfig, flag, dir)
	}
	return nil
}

// readJobFile reads a job file and checks what fio cannot: that it names
// the device under test.
func readJobFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: job file %s: %v", ErrConfig, path, errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJobFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%w: job file %s: %v", ErrConfig, path, err)
	}
	if len(data) > MaxJobFileBytes {
		return "", fmt.Errorf("%w: job file %s: larger than %d bytes", ErrConfig, path, MaxJobFileBytes)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return "", fmt.Errorf("%w: job file %s: not a text file", ErrConfig, path)
	}
	job := string(data)
	if !strings.Contains(job, "${TARGET}") && !strings.Contains(job, "${ORIGIN}") && !strings.Contains(job, "${IMAGE}") {
		return "", fmt.Errorf("%w: job file %s: no filename=${TARGET} (or ${ORIGIN}, ${IMAGE}): the job must name the device under test that way", ErrConfig, path)
	}
	for i, line := range strings.Split(job, "\n") {
		l := strings.TrimSpace(line)
		for _, opt := range []string{"write_hist_log", "log_hist_msec", "output", "output-format"} {
			if strings.HasPrefix(l, opt+"=") || strings.HasPrefix(l, opt+" ") {
				return "", fmt.Errorf("%w: %s:%d: %s is set by snapring fio; remove it", ErrConfig, path, i+1, opt)
			}
		}
	}
	return job, nil
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "job"
	}
	return string(b)
}

// normalizeHost turns "host" or "host:port" into "host:port".
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: --hosts: empty host", ErrConfig)
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = h, strconv.Itoa(DefaultPort)
	}
	if host == "" || strings.ContainsAny(host, ", /") {
		return "", fmt.Errorf("%w: --hosts: %q is not host or host:port", ErrConfig, h)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%w: --hosts: %q: port %q is not 1..65535", ErrConfig, h, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// substitute fills in the job's variables and adds the histogram log.
func (p *runPlan) substitute(d *devices, logPrefix string) string {
	r := strings.NewReplacer(
		"${TARGET}", d.target, "${ORIGIN}", d.origin, "${IMAGE}", d.image,
		"${SIZE}", strconv.FormatInt(p.cfg.Size, 10),
		"${RUNTIME}", strconv.FormatInt(int64(p.cfg.Runtime/time.Second), 10),
	)
	// A [global] section first applies to every job; the job's own
	// sections follow unchanged.
	return fmt.Sprintf("[global]\nwrite_hist_log=%s\nlog_hist_msec=%d\n\n", logPrefix, logIntervalMs) + r.Replace(p.job)
}

// parseOnly has fio check the job (fio --parse-only), on placeholder
// devices, before anything is set up.
func (p *runPlan) parseOnly(ctx context.Context) error {
	d := &devices{target: "/dev/null", origin: "/dev/null", image: "/dev/null"}
	job := filepath.Join(p.work, "check.fio")
	if err := os.WriteFile(job, []byte(p.substitute(d, "check")), 0o644); err != nil {
		return fmt.Errorf("%w: %v", ErrSetup, err)
	}
	if _, err := p.exec(ctx, []string{"--parse-only", job}, nil); err != nil {
		var fe *fioError
		if !errors.As(err, &fe) {
			return err
		}
		what := "preset " + p.cfg.Preset
		if p.cfg.JobFile != "" {
			what = "job file " + p.cfg.JobFile
		}
		return fmt.Errorf("%w: %s rejected: %s", ErrFio, what, fe.line)
	}
	return nil
}

// fioError is fio exiting non-zero, with the line of its output that says
// why.
type fioError struct{ line string }

func (e *fioError) Error() string { return "fio: " + e.line }
func (e *fioError) Unwrap() error { return ErrFio }

// exec runs fio in the work directory and returns its stdout (bounded).
// fio's status goes to cfg.Progress when it is set.
func (p *runPlan) exec(ctx context.Context, args []string, progress io.Writer) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.fio, args...)
	cmd.Dir = p.work
	// fio stops its jobs and reports on SIGINT; it gets 10 s before SIGKILL.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stdout := &tailBuffer{max: maxCapture}
	stderr := &tailBuffer{max: maxCapture}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if progress != nil {
		cmd.Stdout = io.MultiWriter(stdout, progress)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: fio did not finish within %v (--timeout)", ErrFio, p.cfg.Timeout)
		}
		return nil, fmt.Errorf("%w: interrupted", ErrFio)
	}
	if err != nil {
		line := fioErrorLine(stderr.Bytes(), stdout.Bytes())
		if line == "" {
			line = err.Error()
		}
		return nil, &fioError{line}
	}
	return stdout.Bytes(), nil
}

// fioErrorLine picks the line of fio's output that says what went wrong.
func fioErrorLine(outs ...[]byte) string {
	for _, out := range outs {
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			// In client mode fio prefixes its lines with "<host> ".
			if strings.HasPrefix(l, "<") {
				if i := strings.IndexByte(l, '>'); i > 0 {
					l = strings.TrimSpace(l[i+1:])
				}
			}
			if strings.HasPrefix(l, "fio: ") || strings.Contains(l, "error") || strings.Contains(l, "failed") {
				return strings.TrimPrefix(l, "fio: ")
			}
		}
	}
	for _, out := range outs {
		if l := firstLine(string(out)); l != "" {
			return l
		}
	}
	return ""
}

// tailBuffer keeps the first max bytes written to it.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte { return b.buf.Bytes() }

// runOnce runs fio once on devices d (or on the hosts) and returns each
// host's data.
func (p *runPlan) runOnce(ctx context.Context, tag string, d *devices, remote []*devices) ([]hostData, string, error) {
	outFile := "out-" + tag + ".json"
	args := []string{"--output-format=json+", "--output=" + outFile}
	if p.cfg.Progress != nil {
		args = append(args, "--eta=always")
	} else {
		args = append(args, "--eta=never")
	}
	var job string
	prefixes := []string{}
	if remote == nil {
		prefix := "hist-" + tag
		job = p.substitute(d, prefix)
		name := filepath.Join(p.work, "job-"+tag+".fio")
		if err := os.WriteFile(name, []byte(job), 0o644); err != nil {
			return nil, "", fmt.Errorf("%w: %v", ErrSetup, err)
		}
		args = append(args, name)
		prefixes = append(prefixes, prefix)
	} else {
		for i, rd := range remote {
			prefix := fmt.Sprintf("hist-%s-h%d", tag, i)
			j := p.substitute(rd, prefix)
			if i == 0 {
				job = j
			}
			name := filepath.Join(p.work, fmt.Sprintf("job-%s-h%d.fio", tag, i))
			if err := os.WriteFile(name, []byte(j), 0o644); err != nil {
				return nil, "", fmt.Errorf("%w: %v", ErrSetup, err)
			}
			host, port, _ := net.SplitHostPort(p.hosts[i])
			if strings.Contains(host, ":") {
				args = append(args, "--client=ip6:"+host+","+port, name)
			} else {
				args = append(args, "--client="+host+","+port, name)
			}
			prefixes = append(prefixes, prefix)
		}
	}
	if _, err := p.exec(ctx, args, p.cfg.Progress); err != nil {
		return nil, "", err
	}
	if p.cfg.Progress != nil {
		fmt.Fprintln(p.cfg.Progress)
	}
	data, err := readBounded(filepath.Join(p.work, outFile), MaxOutputBytes)
	if err != nil {
		return nil, "", err
	}
	out, err := Parse(data)
	if err != nil {
		return nil, "", err
	}
	hosts, err := p.splitHosts(out, prefixes)
	if err != nil {
		return nil, "", err
	}
	return hosts, job, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: fio wrote no output: %v", ErrOutput, errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrOutput, filepath.Base(path), limit)
	}
	return data, nil
}

// splitHosts groups the jobs by host and reads each host's histogram logs.
func (p *runPlan) splitHosts(out *Output, prefixes []string) ([]hostData, error) {
	if len(p.hosts) == 0 {
		h := hostData{Jobs: out.Jobs, IntervalMs: logIntervalMs}
		s, err := p.readLogs(prefixes[0])
		if err != nil {
			return nil, err
		}
		h.Samples = s
		return []hostData{h}, nil
	}
	hosts := make([]hostData, len(p.hosts))
	for i, hp := range p.hosts {
		hosts[i] = hostData{Host: hp, IntervalMs: logIntervalMs}
		s, err := p.readLogs(prefixes[i])
		if err != nil {
			return nil, err
		}
		hosts[i].Samples = s
	}
	for _, j := range out.Jobs {
		idx := -1
		for i, hp := range p.hosts {
			host, port, _ := net.SplitHostPort(hp)
			if strconv.Itoa(j.Port) == port && (j.Host == host || resolvesTo(host, j.Host)) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%w: job %q from %s:%d, which is not one of --hosts", ErrOutput, j.Name, j.Host, j.Port)
		}
		hosts[idx].Jobs = append(hosts[idx].Jobs, j)
	}
	for _, h := range hosts {
		if len(h.Jobs) == 0 {
			return nil, fmt.Errorf("%w: no results from host %s", ErrOutput, h.Host)
		}
	}
	return hosts, nil
}

// resolvesTo reports whether name resolves to the address fio reported.
func resolvesTo(name, addr string) bool {
	ips, err := net.LookupHost(name)
	return err == nil && slices.Contains(ips, addr)
}

// readLogs reads every histogram log fio wrote with this prefix (one per
// job, "<prefix>_clat_hist.N.log", and in client mode with ".<host>"
// appended).
func (p *runPlan) readLogs(prefix string) ([]HistSample, error) {
	matches, err := filepath.Glob(filepath.Join(p.work, prefix+"_*lat_hist.*.log*"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHistLog, err)
	}
	slices.Sort(matches)
	var all []HistSample
	for _, m := range matches {
		f, err := os.Open(m)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrHistLog, err)
		}
		s, err := ParseHistLog(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(m), err)
		}
		all = append(all, s...)
	}
	return all, nil
}

// runLocal sets up the backing, then for every round every target in
// rotated order: set up, run fio, tear down.
func (p *runPlan) runLocal(ctx context.Context) (_ []*results.Result, err error) {
	c := &p.cfg
	b := &backing{dir: c.Dir, size: c.Size, chunkKiB: 1 << c.Devices.ChunkShift >> 10}
	useLoop := c.Loop == "on" || (c.Loop == "auto" && probeHost().loop == "")
	p.progressf("fio: preparing a %d MiB backing in %s\n", c.Size>>20, c.Dir)
	if err := b.setup(useLoop); err != nil {
		b.teardown()
		return nil, err
	}
	defer func() {
		if terr := b.teardown(); terr != nil && err == nil {
			err = fmt.Errorf("%w: backing: %v", ErrSetup, terr)
		}
	}()
	env := results.CollectEnv(b.file, c.Commit)
	env.BackingPath = b.base
	dmName := dmPrefix()
	var out []*results.Result
	for round := 0; round < c.Rounds; round++ {
		order := rotate(p.targets, round)
		sides := make(map[Kind]*results.Side)
		jobs := make(map[Kind]string)
		paths := make(map[Kind][2]string)
		starts := make(map[Kind]time.Time)
		for i, k := range order {
			p.progressf("fio: round %d/%d: %s (%d/%d)\n", round+1, c.Rounds, k, i+1, len(order))
			d, err := setupTarget(k, b, c.Devices, dmName)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", k, err)
			}
			start := time.Now()
			hosts, job, err := p.runOnce(ctx, fmt.Sprintf("r%d-%s", round+1, k), d, nil)
			if terr := d.teardown(); terr != nil && err == nil {
				err = fmt.Errorf("%w: tearing down: %v", ErrSetup, terr)
			}
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", k, err)
			}
			side, _, err := buildSide(hosts, k, start)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", k, err)
			}
			for _, e := range d.events {
				e.Offset, e.Device = side.Duration, d.origin
				side.Events = append(side.Events, e)
			}
			sides[k], jobs[k], starts[k], paths[k] = &side, job, start, [2]string{d.dataPath, d.original}
		}
		for _, k := range p.targets {
			r, err := p.result(k, round, order, sides, jobs[k], starts[k], env, nil, paths[k])
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// runHosts runs the job through fio's client/server, Rounds times.
func (p *runPlan) runHosts(ctx context.Context) ([]*results.Result, error) {
	c := &p.cfg
	env := results.CollectEnv(c.OutDir, c.Commit)
	env.BackingPath, env.BackingFS = "", ""
	var out []*results.Result
	remote := make([]*devices, len(p.hosts))
	for i := range p.hosts {
		// Each server gets its own file (loopback servers share a disk);
		// it is the servers' to keep or remove.
		path := filepath.Join(c.RemoteDir, fmt.Sprintf("snapring-fio-%s-%d.dat", p.name, i))
		remote[i] = &devices{target: path, origin: path, image: path}
	}
	for round := 0; round < c.Rounds; round++ {
		p.progressf("fio: round %d/%d on %d hosts\n", round+1, c.Rounds, len(p.hosts))
		start := time.Now()
		hosts, job, err := p.runOnce(ctx, fmt.Sprintf("r%d", round+1), nil, remote)
		if err != nil {
			return nil, err
		}
		side, perHost, err := buildSide(hosts, Raw, start)
		if err != nil {
			return nil, err
		}
		sides := map[Kind]*results.Side{Raw: &side}
		r, err := p.result(Raw, round, []Kind{Raw}, sides, job, start, env, perHost, [2]string{})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func rotate(ks []Kind, n int) []Kind {
	out := make([]Kind, len(ks))
	for i := range ks {
		out[i] = ks[(i+n)%len(ks)]
	}
	return out
}

func (p *runPlan) progressf(format string, args ...any) {
	if p.cfg.Progress != nil {
		fmt.Fprintf(p.cfg.Progress, format, args...)
	}
}

// result makes target k's result of one round: its side as the engine
// side, raw's side of the same round as the baseline.
func (p *runPlan) result(k Kind, round int, order []Kind, sides map[Kind]*results.Side, job string, start time.Time, env results.Env, perHost []HostResult, path [2]string) (*results.Result, error) {
	meta := Meta{
		Tool: "fio", FioVersion: p.version, Target: k, Preset: p.cfg.Preset, JobFile: p.cfg.JobFile,
		Job: job, Round: round + 1, Rounds: p.cfg.Rounds, Order: order, Classes: classesNote,
		Conversion: conversionNote, Hosts: perHost, DataPath: path[0], Original: path[1],
	}
	if len(p.hosts) == 0 {
		meta.SizeBytes = p.cfg.Size
		meta.Backing = env.BackingPath
	}
	r := &results.Result{
		Schema: results.SchemaV1,
		Env:    env,
		// fio counts latency from the actual submission, also under
		// rate_iops: closed loop in our terms.
		LoadMode: results.ClosedLoop,
		RunIndex: round,
		Start:    start,
		Engine:   *sides[k],
	}
	r.Duration = r.Engine.Duration
	if k != Raw {
		r.Baseline = sides[Raw]
		meta.Baseline = Raw
	}
	var err error
	if r.Scenario, err = json.Marshal(meta); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	results.ComputeRatios(r)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("target %s: %w", k, err)
	}
	return r, nil
}

// write encodes every result into a temporary file in OutDir, then renames
// them all into place: either every result appears, or none.
func (p *runPlan) write(res []*results.Result) ([]Written, error) {
	type pending struct {
		tmp string
		w   Written
	}
	var done []pending
	cleanup := func() {
		for _, d := range done {
			os.Remove(d.tmp)
		}
	}
	for i, r := range res {
		var meta Meta
		_ = json.Unmarshal(r.Scenario, &meta)
		name := fmt.Sprintf("fio-%s-%s.json", p.name, meta.Target)
		if p.cfg.Rounds > 1 {
			name = fmt.Sprintf("fio-%s-%s-r%d.json", p.name, meta.Target, meta.Round)
		}
		path := filepath.Join(p.cfg.OutDir, name)
		f, err := os.CreateTemp(p.cfg.OutDir, "."+name+".tmp*")
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%w: %s: %v", results.ErrWrite, path, err)
		}
		done = append(done, pending{tmp: f.Name(), w: Written{Path: path, Target: meta.Target, Round: meta.Round}})
		err = results.Encode(f, res[i])
		if err == nil {
			err = f.Chmod(0o644)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%w: %s: %v", results.ErrWrite, path, err)
		}
	}
	var out []Written
	for i, d := range done {
		if err := os.Rename(d.tmp, d.w.Path); err != nil {
			// Take back what was already renamed: no partial set.
			for _, r := range done[:i] {
				os.Remove(r.w.Path)
			}
			cleanup()
			return nil, fmt.Errorf("%w: %s: %v", results.ErrWrite, d.w.Path, err)
		}
		out = append(out, d.w)
	}
	return out, nil
}

// dmPrefix names this process's device-mapper devices.
func dmPrefix() string { return fmt.Sprintf("snapring-fio-%d", os.Getpid()) }
