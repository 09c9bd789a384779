package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/scenarios"
	"github.com/snapring/snapring/ublk"
)

// ErrInvalidConfig is wrapped by every error about a configuration's
// contents; such errors are one line, "file:line: problem".
var ErrInvalidConfig = errors.New("daemon: invalid configuration")

// maxConfigBytes bounds a configuration file.
const maxConfigBytes = 1 << 20

// Size is a byte count written as "64MiB", "4g" or "4096".
type Size int64

// UnmarshalYAML accepts what scenarios.ParseSize accepts.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &configError{line: n.Line, msg: "want a size such as 64MiB"}
	}
	v, err := scenarios.ParseSize(n.Value)
	if err != nil {
		return &configError{line: n.Line, msg: fmt.Sprintf("bad size %q", n.Value)}
	}
	*s = Size(v)
	return nil
}

// Duration is a time.Duration written as "10s" or "1m30s".
type Duration time.Duration

// UnmarshalYAML accepts what time.ParseDuration accepts.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return &configError{line: n.Line, msg: fmt.Sprintf("bad duration %q (want e.g. 10s)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// Config is the daemon's configuration (docs in README and
// dist/snapring.yaml). Zero fields take the defaults of EnsureDefaults.
type Config struct {
	// Socket is the Unix socket of the API; SocketGroup (a name or a gid)
	// may use it besides root (mode 0660, checked again with SO_PEERCRED).
	Socket      string `yaml:"socket"`
	SocketGroup string `yaml:"socket_group"`
	// StateDir holds the state file that lists the ublk devices the daemon
	// owns, so that a successor can remove them after a crash.
	StateDir string `yaml:"state_dir"`
	Log      struct {
		Format string `yaml:"format"` // text or json
		Level  string `yaml:"level"`  // debug, info, warn, error
	} `yaml:"log"`
	// Metrics is the Prometheus listen address (host:port); empty: off.
	Metrics struct {
		Address string `yaml:"address"`
	} `yaml:"metrics"`
	API struct {
		MaxRequestBytes Size     `yaml:"max_request_bytes"`
		MaxConnections  int      `yaml:"max_connections"`
		ReadTimeout     Duration `yaml:"read_timeout"`
		WriteTimeout    Duration `yaml:"write_timeout"`
		IdleTimeout     Duration `yaml:"idle_timeout"`
		ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	} `yaml:"api"`
	Events struct {
		History           int `yaml:"history"`
		SubscriberBacklog int `yaml:"subscriber_backlog"`
		MaxSubscribers    int `yaml:"max_subscribers"`
	} `yaml:"events"`
	Defaults struct {
		Device  DeviceDefaults `yaml:"device"`
		Storage struct {
			Path    string `yaml:"path"`
			Limit   Size   `yaml:"limit"`
			Portion Size   `yaml:"portion"`
		} `yaml:"storage"`
		Policy PolicyConfig `yaml:"policy"`
	} `yaml:"defaults"`
	Hooks   []HookConfig   `yaml:"hooks"`
	Devices []DeviceConfig `yaml:"devices"`

	file  string
	lines map[string]int
}

// DeviceDefaults are the ublk parameters of devices added without them.
type DeviceDefaults struct {
	Queues   int    `yaml:"queues"`
	Depth    int    `yaml:"depth"`
	MaxIO    Size   `yaml:"max_io"`
	UserCopy string `yaml:"user_copy"`
}

// PolicyConfig is the default fill policy (api.Policy).
type PolicyConfig struct {
	AutoextendThreshold int   `yaml:"autoextend_threshold"`
	AutoextendPercent   int   `yaml:"autoextend_percent"`
	AutoextendLimit     Size  `yaml:"autoextend_limit"`
	Warn                []int `yaml:"warn"`
}

// HookConfig runs Argv (no shell) on each event of the given kinds, with
// the event in SNAPRING_EVENT_* environment variables plus Env, killed
// after Timeout; its output is logged.
type HookConfig struct {
	Events  []string          `yaml:"events"`
	Argv    []string          `yaml:"argv"`
	Env     map[string]string `yaml:"env"`
	Timeout Duration          `yaml:"timeout"`
}

// DeviceConfig is a device served from the start.
type DeviceConfig struct {
	Path     string `yaml:"path"`
	Queues   int    `yaml:"queues"`
	Depth    int    `yaml:"depth"`
	MaxIO    Size   `yaml:"max_io"`
	UserCopy string `yaml:"user_copy"`
	// Direct opens Path with O_DIRECT (api.DeviceAddRequest.Direct).
	Direct bool `yaml:"direct"`
}

// Defaults.
const (
	DefaultStateDir          = "/run/snapring"
	DefaultMaxRequestBytes   = 64 << 10
	DefaultMaxConnections    = 256
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 60 * time.Second
	DefaultEventHistory      = 1024
	DefaultSubscriberBacklog = 256
	DefaultMaxSubscribers    = 64
	DefaultHookTimeout       = 10 * time.Second
	// maxHooks and similar caps keep a configuration bounded.
	maxHooks   = 64
	maxDevices = 256
)

// DefaultWarnPercents are LVM's warning levels.
var DefaultWarnPercents = []int{80, 85, 90, 95}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	a := &c.API
	if a.MaxRequestBytes == 0 {
		a.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if a.MaxConnections == 0 {
		a.MaxConnections = DefaultMaxConnections
	}
	setDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	setDur(&a.ReadTimeout, DefaultReadTimeout)
	setDur(&a.WriteTimeout, DefaultWriteTimeout)
	setDur(&a.IdleTimeout, DefaultIdleTimeout)
	setDur(&a.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Events.History == 0 {
		c.Events.History = DefaultEventHistory
	}
	if c.Events.SubscriberBacklog == 0 {
		c.Events.SubscriberBacklog = DefaultSubscriberBacklog
	}
	if c.Events.MaxSubscribers == 0 {
		c.Events.MaxSubscribers = DefaultMaxSubscribers
	}
	d := &c.Defaults.Device
	if d.Queues == 0 {
		d.Queues = ublk.DefaultQueues
	}
	if d.Depth == 0 {
		d.Depth = ublk.DefaultDepth
	}
	if d.MaxIO == 0 {
		d.MaxIO = ublk.DefaultMaxIOBytes
	}
	if d.UserCopy == "" {
		d.UserCopy = "auto"
	}
	p := &c.Defaults.Policy
	if p.AutoextendThreshold == 0 {
		p.AutoextendThreshold = 100 // off, as LVM's default
	}
	if p.AutoextendPercent == 0 {
		p.AutoextendPercent = 20
	}
	if p.Warn == nil {
		p.Warn = slices.Clone(DefaultWarnPercents)
	}
	for i := range c.Hooks {
		setDur(&c.Hooks[i].Timeout, DefaultHookTimeout)
	}
}

var levelNames = []string{"debug", "info", "warn", "error"}

// Validate checks everything after EnsureDefaults; an error names the line
// of the offending key when the configuration came from a file.
func (c *Config) Validate() error {
	if !strings.HasPrefix(c.Socket, "/") {
		return c.errAt("socket", "socket %q: want an absolute path", c.Socket)
	}
	if len(c.Socket) > 107 {
		return c.errAt("socket", "socket path is %d bytes, the limit of a Unix socket address is 107", len(c.Socket))
	}
	if c.SocketGroup != "" {
		if _, err := lookupGroup(c.SocketGroup); err != nil {
			return c.errAt("socket_group", "socket_group %q: %v", c.SocketGroup, err)
		}
	}
	if !strings.HasPrefix(c.StateDir, "/") {
		return c.errAt("state_dir", "state_dir %q: want an absolute path", c.StateDir)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return c.errAt("log.format", "log format %q: want text or json", c.Log.Format)
	}
	if !slices.Contains(levelNames, c.Log.Level) {
		return c.errAt("log.level", "log level %q: want one of %s", c.Log.Level, strings.Join(levelNames, ", "))
	}
	if addr := c.Metrics.Address; addr != "" && !hostPort.MatchString(addr) {
		return c.errAt("metrics.address", "metrics address %q: want host:port, e.g. 127.0.0.1:9477", addr)
	}
	a := c.API
	if a.MaxRequestBytes < 1024 || a.MaxRequestBytes > 16<<20 {
		return c.errAt("api.max_request_bytes", "max_request_bytes %d out of range 1KiB..16MiB", a.MaxRequestBytes)
	}
	if a.MaxConnections < 1 || a.MaxConnections > 65536 {
		return c.errAt("api.max_connections", "max_connections %d out of range 1..65536", a.MaxConnections)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"api.read_timeout", a.ReadTimeout}, {"api.write_timeout", a.WriteTimeout}, {"api.idle_timeout", a.IdleTimeout}, {"api.shutdown_timeout", a.ShutdownTimeout}} {
		if d.v < Duration(10*time.Millisecond) || d.v > Duration(time.Hour) {
			return c.errAt(d.key, "%s %v out of range 10ms..1h", d.key[4:], time.Duration(d.v))
		}
	}
	e := c.Events
	if e.History < 1 || e.History > 1<<20 {
		return c.errAt("events.history", "events history %d out of range 1..1048576", e.History)
	}
	if e.SubscriberBacklog < 1 || e.SubscriberBacklog > 1<<16 {
		return c.errAt("events.subscriber_backlog", "subscriber_backlog %d out of range 1..65536", e.SubscriberBacklog)
	}
	if e.MaxSubscribers < 1 || e.MaxSubscribers > 4096 {
		return c.errAt("events.max_subscribers", "max_subscribers %d out of range 1..4096", e.MaxSubscribers)
	}
	dd := c.Defaults.Device
	if err := validateUblk(dd.Queues, dd.Depth, int(dd.MaxIO), dd.UserCopy); err != nil {
		return c.errAt("defaults.device", "defaults.device: %v", err)
	}
	st := c.Defaults.Storage
	if st.Path != "" && !strings.HasPrefix(st.Path, "/") {
		return c.errAt("defaults.storage.path", "storage path %q: want an absolute path", st.Path)
	}
	if st.Limit < 0 || st.Portion < 0 {
		return c.errAt("defaults.storage", "storage sizes must not be negative")
	}
	if err := validatePolicy(c.Defaults.Policy.api()); err != nil {
		return c.errAt("defaults.policy", "defaults.policy: %v", err)
	}
	if len(c.Hooks) > maxHooks {
		return c.errAt("hooks", "%d hooks, at most %d", len(c.Hooks), maxHooks)
	}
	for i, h := range c.Hooks {
		key := fmt.Sprintf("hooks[%d]", i)
		if len(h.Argv) == 0 || !strings.HasPrefix(h.Argv[0], "/") {
			return c.errAt(key+".argv", "hook argv must start with an absolute path (no shell is used)")
		}
		if len(h.Events) == 0 {
			return c.errAt(key+".events", "hook needs at least one event kind")
		}
		for j, k := range h.Events {
			if !slices.Contains(api.EventKinds, k) {
				return c.errAt(fmt.Sprintf("%s.events[%d]", key, j), "unknown event kind %q (want one of %s)", k, strings.Join(api.EventKinds, ", "))
			}
		}
		for k := range h.Env {
			if !envName.MatchString(k) {
				return c.errAt(key+".env", "environment variable name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
			}
		}
		if h.Timeout < Duration(time.Millisecond) || h.Timeout > Duration(time.Hour) {
			return c.errAt(key+".timeout", "hook timeout %v out of range 1ms..1h", time.Duration(h.Timeout))
		}
	}
	if len(c.Devices) > maxDevices {
		return c.errAt("devices", "%d devices, at most %d", len(c.Devices), maxDevices)
	}
	seen := map[string]bool{}
	for i, d := range c.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		if !strings.HasPrefix(d.Path, "/") {
			return c.errAt(key+".path", "device path %q: want an absolute path", d.Path)
		}
		if seen[d.Path] {
			return c.errAt(key+".path", "device %s listed twice", d.Path)
		}
		seen[d.Path] = true
		q, dp, m, uc := orDefault(d.Queues, dd.Queues), orDefault(d.Depth, dd.Depth), orDefault(int(d.MaxIO), int(dd.MaxIO)), d.UserCopy
		if uc == "" {
			uc = dd.UserCopy
		}
		if err := validateUblk(q, dp, m, uc); err != nil {
			return c.errAt(key, "%s: %v", key, err)
		}
	}
	return nil
}

var (
	hostPort = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func (p PolicyConfig) api() api.Policy {
	return api.Policy{AutoextendThresholdPercent: p.AutoextendThreshold, AutoextendPercent: p.AutoextendPercent,
		AutoextendLimitBytes: int64(p.AutoextendLimit), WarnPercents: slices.Clone(p.Warn)}
}

// validatePolicy checks a fill policy, from a file or a request.
func validatePolicy(p api.Policy) error {
	if p.AutoextendThresholdPercent < 50 || p.AutoextendThresholdPercent > 100 {
		return fmt.Errorf("autoextend threshold %d%% out of range 50..100 (100: off)", p.AutoextendThresholdPercent)
	}
	if p.AutoextendPercent < 1 || p.AutoextendPercent > 1000 {
		return fmt.Errorf("autoextend percent %d out of range 1..1000", p.AutoextendPercent)
	}
	if p.AutoextendLimitBytes < 0 {
		return fmt.Errorf("autoextend limit must not be negative")
	}
	if len(p.WarnPercents) > 16 {
		return fmt.Errorf("%d warning levels, at most 16", len(p.WarnPercents))
	}
	for i, w := range p.WarnPercents {
		if w < 1 || w > 100 {
			return fmt.Errorf("warning level %d%% out of range 1..100", w)
		}
		if i > 0 && w <= p.WarnPercents[i-1] {
			return fmt.Errorf("warning levels must increase (%d after %d)", w, p.WarnPercents[i-1])
		}
	}
	return nil
}

// validateUblk checks a device's ublk parameters the way ublk.DeviceConfig
// does, before anything is opened.
func validateUblk(queues, depth, maxIO int, userCopy string) error {
	cfg := ublk.DeviceConfig{Queues: queues, Depth: depth, MaxIOBytes: maxIO}
	if _, err := parseUserCopy(userCopy); err != nil {
		return err
	}
	cfg.EnsureDefaults()
	return cfg.Validate()
}

func parseUserCopy(s string) (ublk.UserCopyMode, error) {
	switch s {
	case "", "auto":
		return ublk.UserCopyAuto, nil
	case "on":
		return ublk.UserCopyOn, nil
	case "off":
		return ublk.UserCopyOff, nil
	}
	return 0, fmt.Errorf("user_copy %q: want auto, on or off", s)
}

// lookupGroup resolves a group name or number to a gid.
func lookupGroup(g string) (uint32, error) {
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(n), nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("no such group")
	}
	n, err := strconv.ParseUint(grp.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("gid %q is not a number", grp.Gid)
	}
	return uint32(n), nil
}

// StorageDefaults returns the configured default difference storage.
func (c *Config) storageDefaults() (string, int64, int64) {
	s := c.Defaults.Storage
	return s.Path, int64(s.Limit), int64(s.Portion)
}

// engineOptions are the engine options of a snapshot request.
func engineOptions(limit, portion int64, shift uint, inQueue int) engine.Options {
	o := engine.Options{ChunkMinimumShift: shift, ChunkMaximumInQueue: inQueue, DiffStorageMinimum: portion}
	if o.DiffStorageMinimum == 0 && limit > 0 {
		o.DiffStorageMinimum = max(4096, min(int64(engine.DefaultDiffStorageMinimum), limit/4/4096*4096))
	}
	return o
}

// configError is the one error type behind ErrInvalidConfig.
type configError struct {
	file string
	line int
	msg  string
}

func (e *configError) Error() string {
	if e.file == "" {
		return "daemon: config: " + e.msg
	}
	return fmt.Sprintf("%s:%d: %s", e.file, max(1, e.line), e.msg)
}

func (e *configError) Unwrap() error { return ErrInvalidConfig }

// errAt reports a problem with the value at key (a dotted path, lists as
// [i]); the line is the key's, or its nearest ancestor's.
func (c *Config) errAt(key, format string, args ...any) error {
	e := &configError{file: c.file, msg: fmt.Sprintf(format, args...)}
	if c.lines != nil {
		for k := key; ; {
			if l, ok := c.lines[k]; ok {
				e.line = l
				break
			}
			i := strings.LastIndexAny(k, ".[")
			if i < 0 {
				e.line = 1
				break
			}
			k = k[:i]
		}
	}
	return e
}

// LoadConfig reads, decodes, defaults and validates the configuration file
// at path. An empty path gives the defaults.
func LoadConfig(path string) (*Config, error) {
	if path == "" {
		c := &Config{}
		c.EnsureDefaults()
		return c, c.Validate()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("daemon: config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("daemon: config: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, &configError{file: path, line: 1, msg: fmt.Sprintf("file is larger than %d bytes", maxConfigBytes)}
	}
	return ParseConfig(path, data)
}

var yamlLine = regexp.MustCompile(`^yaml: (?:unmarshal errors:\s*)?line (\d+): (.*)$`)

// ParseConfig decodes a configuration (file names it in errors), applies
// the defaults and validates it. Unknown keys are errors. Every error is
// one line, "file:line: problem", and wraps ErrInvalidConfig.
func ParseConfig(file string, data []byte) (*Config, error) {
	if file == "" {
		file = "<input>"
	}
	maxLine := bytes.Count(data, []byte("\n")) + 1
	c := &Config{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, maxLine, err)
	}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		if doc.Kind != yaml.MappingNode {
			return nil, &configError{file: file, line: doc.Line, msg: "want a mapping of keys at top level"}
		}
		recordLines(doc, "", c.lines)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, yamlError(file, maxLine, err)
		}
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlError turns the parser's message into "file:line: problem" on one
// line.
func yamlError(file string, maxLine int, err error) error {
	var ce *configError
	if errors.As(err, &ce) {
		return &configError{file: file, line: min(ce.line, maxLine), msg: ce.msg}
	}
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = "yaml: " + te.Errors[0]
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p := strings.ReplaceAll(m[2], " in type daemon.Config", "")
		p = typeNames.ReplaceAllString(p, "")
		return &configError{file: file, line: min(line, maxLine), msg: p}
	}
	return &configError{file: file, line: 1, msg: strings.TrimPrefix(msg, "yaml: ")}
}

var typeNames = regexp.MustCompile(` in type (daemon\.|struct ?\{)[^ ]*`)

// recordLines maps every key path of the document to its line.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	lines[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if path != "" {
				p = path + "." + k
			}
			lines[p] = n.Content[i].Line
			recordLines(n.Content[i+1], p, lines)
			lines[p] = n.Content[i].Line
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			recordLines(c, fmt.Sprintf("%s[%d]", path, i), lines)
		}
	}
}
