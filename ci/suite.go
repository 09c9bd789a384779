package ci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/snapring/snapring/results"
	"github.com/snapring/snapring/scenarios"
)

// Bounds of a suite.
const (
	maxSuiteBytes     = 1 << 20
	maxRepeats        = 100
	maxSuiteScenarios = 100
	maxSuiteRuns      = 2000
	maxRules          = 200
	// DefaultRepeats is the repeats per scenario when the suite says none:
	// the fewest for which the U test can reach p < 0.01 on 5+5 runs.
	DefaultRepeats = 5
	// DefaultAlpha is a suite's significance level unless it sets one: a CI
	// gate that fails builds wants fewer false alarms than compare's 0.05.
	DefaultAlpha = 0.01
)

// Order says how the runs of a suite are scheduled.
type Order string

const (
	// Interleaved runs repeat 0 of every scenario, then repeat 1 of every
	// scenario, and so on, so that a drift of the machine's load spreads
	// over all scenarios instead of landing on one.
	Interleaved Order = "interleaved"
	// Sequential runs all repeats of a scenario before the next.
	Sequential Order = "sequential"
)

// Suite is a decoded, validated suite file: which scenarios to run, how
// often, in what order, and how to judge them.
type Suite struct {
	Name string `json:"name"`
	// File is the suite file as given; scenario files are relative to its
	// directory.
	File     string        `json:"file,omitempty"`
	Order    Order         `json:"order"`
	Seed     int64         `json:"seed"`
	Watchdog time.Duration `json:"watchdog_ns,omitempty"`
	Policy   Policy        `json:"policy"`
	// Scenarios holds one entry per scenario to run; a sweep contributes
	// one entry per value.
	Scenarios []SuiteScenario `json:"scenarios"`
}

// SuiteScenario is one scenario of a suite.
type SuiteScenario struct {
	Name string `json:"name"`
	// Source says where it came from: "builtin:default", "file:perf/x.yaml".
	Source  string `json:"source"`
	Repeats int    `json:"repeats"`
	// Hash is the SHA-256 of the resolved scenario's JSON, the same JSON
	// each result stores: two runs with equal hashes ran the same thing.
	Hash     string              `json:"hash"`
	Scenario *scenarios.Scenario `json:"-"`
}

// Policy says which metrics gate and what change counts.
type Policy struct {
	Alpha                  float64 `json:"alpha"`
	LatencyThresholdPct    float64 `json:"latency_threshold_pct"`
	ThroughputThresholdPct float64 `json:"throughput_threshold_pct"`
	// Rules are tried in order; the first whose selectors match a metric
	// decides it. A metric no rule matches gates when it is an
	// engine/baseline ratio, with the suite's alpha and thresholds.
	Rules []Rule `json:"rules,omitempty"`
}

// Rule selects metrics by group, class and metric name (empty matches any)
// and sets whether they gate, their threshold and their alpha (zero: the
// suite's).
type Rule struct {
	Group        results.Group  `json:"group,omitempty"`
	Class        results.Class  `json:"class,omitempty"`
	Metric       results.Metric `json:"metric,omitempty"`
	Gate         *bool          `json:"gate,omitempty"`
	ThresholdPct float64        `json:"threshold_pct,omitempty"`
	Alpha        float64        `json:"alpha,omitempty"`
}

// MetricPolicy is what a Policy decides for one metric.
type MetricPolicy struct {
	Gate         bool
	ThresholdPct float64
	Alpha        float64
}

func (r Rule) matches(g results.Group, c results.Class, m results.Metric) bool {
	return (r.Group == "" || r.Group == g) && (r.Class == "" || r.Class == c) && (r.Metric == "" || r.Metric == m)
}

// For returns the policy of one metric.
func (p Policy) For(g results.Group, c results.Class, m results.Metric) MetricPolicy {
	mp := MetricPolicy{Gate: g == results.GroupRatio, Alpha: p.Alpha, ThresholdPct: p.ThroughputThresholdPct}
	if isLatency(m) {
		mp.ThresholdPct = p.LatencyThresholdPct
	}
	for _, r := range p.Rules {
		if !r.matches(g, c, m) {
			continue
		}
		if r.Gate != nil {
			mp.Gate = *r.Gate
		}
		if r.ThresholdPct > 0 {
			mp.ThresholdPct = r.ThresholdPct
		}
		if r.Alpha > 0 {
			mp.Alpha = r.Alpha
		}
		break
	}
	return mp
}

func isLatency(m results.Metric) bool {
	return m == results.MetricP50 || m == results.MetricP99 || m == results.MetricMean
}

var (
	groups  = []results.Group{results.GroupEngine, results.GroupRatio, results.GroupBaseline}
	metrics = []results.Metric{results.MetricP50, results.MetricP99, results.MetricMean, results.MetricIOPS, results.MetricMBps}
)

// Hash is the SHA-256 of the suite as resolved (its scenarios' hashes,
// repeats, order, seed and policy), so that two manifests with equal hashes
// ran and judged the same suite, whatever the file's layout or comments.
func (s *Suite) Hash() string {
	c := *s
	c.File = ""
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Runs returns the number of runs the suite makes.
func (s *Suite) Runs() int {
	n := 0
	for _, sc := range s.Scenarios {
		n += sc.Repeats
	}
	return n
}

// LoadSuite reads, decodes and validates the suite file at path. Problems
// with its contents are "file:line: problem" and wrap ErrSuite.
func LoadSuite(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSuite, err)
	}
	return ParseSuite(path, data)
}

// ParseSuite decodes a suite from YAML; file names it in messages and is the
// directory scenario files are relative to.
func ParseSuite(file string, data []byte) (*Suite, error) {
	where := file
	if where == "" {
		where = "<input>"
	}
	d := &suiteDecoder{file: where, dir: filepath.Dir(file), maxLine: bytes.Count(data, []byte("\n")) + 1}
	if len(data) > maxSuiteBytes {
		return nil, d.errorf(1, "file too large: %d bytes (at most %d)", len(data), maxSuiteBytes)
	}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	s := &Suite{File: file, Order: Interleaved, Seed: 1, Policy: Policy{
		Alpha: DefaultAlpha, LatencyThresholdPct: results.DefaultLatencyThresholdPct, ThroughputThresholdPct: results.DefaultThroughputThresholdPct}}
	if err := d.suite(root, s); err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	return s, nil
}

type suiteDecoder struct {
	file    string
	dir     string
	maxLine int
}

func (d *suiteDecoder) errorf(line int, format string, args ...any) error {
	return &suiteError{file: d.file, line: max(1, min(line, d.maxLine)), msg: fmt.Sprintf(format, args...)}
}

func (d *suiteDecoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errorf(1, "empty file: want a mapping with at least scenarios")
		}
		return nil, d.syntaxError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, d.errorf(next.Line, "a second YAML document: a suite file holds one")
	} else if !errors.Is(err, io.EOF) {
		return nil, d.syntaxError(err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, d.errorf(doc.Line, "bad top level: want a mapping with at least scenarios")
	}
	return doc.Content[0], nil
}

var yamlPrefixRE = regexp.MustCompile(`^yaml: (line [0-9]+: )?`)

// syntaxError reports a parser error at its line, without repeating it.
func (d *suiteDecoder) syntaxError(err error) error {
	return d.errorf(yamlLine(err), "bad YAML: %s", yamlPrefixRE.ReplaceAllString(oneLine(err.Error()), ""))
}

// yamlLine pulls "line N" out of a parser error; 1 when it has none.
func yamlLine(err error) int {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		j := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if j > 0 {
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				return n
			}
		}
	}
	return 1
}

// keys walks a mapping whose keys must all be among want, calling each
// key's handler with its value node. Unknown and duplicate keys are errors
// at their line.
func (d *suiteDecoder) keys(n *yaml.Node, what string, want map[string]func(v *yaml.Node) error, required ...string) error {
	if n.Kind != yaml.MappingNode {
		return d.errorf(n.Line, "bad %s: want a mapping, got %s", what, describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			return d.errorf(k.Line, "duplicate key %q in %s (first on line %d)", k.Value, what, first)
		}
		seen[k.Value] = k.Line
		h, ok := want[k.Value]
		if !ok {
			names := make([]string, 0, len(want))
			for name := range want {
				names = append(names, name)
			}
			slices.Sort(names)
			return d.errorf(k.Line, "unknown key %q in %s (want one of %s)", k.Value, what, strings.Join(names, ", "))
		}
		if err := h(v); err != nil {
			return err
		}
	}
	for _, r := range required {
		if _, ok := seen[r]; !ok {
			return d.errorf(n.Line, "missing key %q in %s", r, what)
		}
	}
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	}
	return n.Value
}

func (d *suiteDecoder) str(v *yaml.Node, key string, out *string) error {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" || v.Value == "" {
		return d.errorf(v.Line, "bad %s: want a non-empty string, got %s", key, describe(v))
	}
	*out = v.Value
	return nil
}

func (d *suiteDecoder) integer(v *yaml.Node, key string, lo, hi int64, out *int64) error {
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil || n < lo || n > hi {
		return d.errorf(v.Line, "bad %s: want a whole number from %d to %d, got %s", key, lo, hi, describe(v))
	}
	*out = n
	return nil
}

// alpha decodes a significance level, strictly between 0 and 1.
func (d *suiteDecoder) alpha(v *yaml.Node, key string, out *float64) error {
	f, err := strconv.ParseFloat(v.Value, 64)
	if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") || err != nil || !(f > 0 && f < 1) {
		return d.errorf(v.Line, "bad %s: want a significance level between 0 and 1 (such as 0.01), got %s", key, describe(v))
	}
	*out = f
	return nil
}

// percent decodes a threshold: "10%", 10 or 12.5, above 0 and at most 1000.
func (d *suiteDecoder) percent(v *yaml.Node, key string, out *float64) error {
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v.Value), "%"))
	f, err := strconv.ParseFloat(s, 64)
	if v.Kind != yaml.ScalarNode || err != nil || !(f > 0 && f <= 1000) || math.IsNaN(f) {
		return d.errorf(v.Line, "bad %s: want a change in percent above 0 and at most 1000 (such as 10%%), got %s", key, describe(v))
	}
	*out = f
	return nil
}

func (d *suiteDecoder) suite(root *yaml.Node, s *Suite) error {
	var scenarioNode *yaml.Node
	repeats := int64(DefaultRepeats)
	err := d.keys(root, "suite", map[string]func(v *yaml.Node) error{
		"name":        func(v *yaml.Node) error { return d.str(v, "name", &s.Name) },
		"description": func(v *yaml.Node) error { var x string; return d.str(v, "description", &x) },
		"repeats":     func(v *yaml.Node) error { return d.integer(v, "repeats", 1, maxRepeats, &repeats) },
		"seed":        func(v *yaml.Node) error { return d.integer(v, "seed", math.MinInt64, math.MaxInt64, &s.Seed) },
		"order": func(v *yaml.Node) error {
			if v.Value != string(Interleaved) && v.Value != string(Sequential) {
				return d.errorf(v.Line, "bad order: want interleaved or sequential, got %s", describe(v))
			}
			s.Order = Order(v.Value)
			return nil
		},
		"watchdog": func(v *yaml.Node) error {
			w, err := time.ParseDuration(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || w <= 0 || w > 24*time.Hour {
				return d.errorf(v.Line, "bad watchdog: want a duration such as 10m (at most 24h), got %s", describe(v))
			}
			s.Watchdog = w
			return nil
		},
		"alpha": func(v *yaml.Node) error { return d.alpha(v, "alpha", &s.Policy.Alpha) },
		"thresholds": func(v *yaml.Node) error {
			return d.keys(v, "thresholds", map[string]func(v *yaml.Node) error{
				"latency": func(v *yaml.Node) error { return d.percent(v, "thresholds.latency", &s.Policy.LatencyThresholdPct) },
				"throughput": func(v *yaml.Node) error {
					return d.percent(v, "thresholds.throughput", &s.Policy.ThroughputThresholdPct)
				},
			})
		},
		"metrics":   func(v *yaml.Node) error { return d.rules(v, &s.Policy) },
		"scenarios": func(v *yaml.Node) error { scenarioNode = v; return nil },
	}, "scenarios")
	if err != nil {
		return err
	}
	// Scenarios last: their repeats default to the suite's, wherever in the
	// file that is.
	return d.scenarios(scenarioNode, int(repeats), s)
}

func (d *suiteDecoder) rules(v *yaml.Node, p *Policy) error {
	if v.Kind != yaml.SequenceNode {
		return d.errorf(v.Line, "bad metrics: want a list of rules, got %s", describe(v))
	}
	if len(v.Content) > maxRules {
		return d.errorf(v.Line, "too many metrics rules: %d (at most %d)", len(v.Content), maxRules)
	}
	for i, item := range v.Content {
		var r Rule
		what := fmt.Sprintf("metrics[%d]", i)
		err := d.keys(item, what, map[string]func(v *yaml.Node) error{
			"group": func(v *yaml.Node) error {
				if !slices.Contains(groups, results.Group(v.Value)) {
					return d.errorf(v.Line, "bad group: want engine, ratio or baseline, got %s", describe(v))
				}
				r.Group = results.Group(v.Value)
				return nil
			},
			"class": func(v *yaml.Node) error {
				if !results.Class(v.Value).Known() {
					return d.errorf(v.Line, "bad class: want one of %s, got %s", classNames(), describe(v))
				}
				r.Class = results.Class(v.Value)
				return nil
			},
			"metric": func(v *yaml.Node) error {
				if !slices.Contains(metrics, results.Metric(v.Value)) {
					return d.errorf(v.Line, "bad metric: want p50, p99, mean, iops or mb/s, got %s", describe(v))
				}
				r.Metric = results.Metric(v.Value)
				return nil
			},
			"gate": func(v *yaml.Node) error {
				if v.ShortTag() != "!!bool" {
					return d.errorf(v.Line, "bad gate: want true or false, got %s", describe(v))
				}
				g := v.Value == "true"
				r.Gate = &g
				return nil
			},
			"threshold": func(v *yaml.Node) error { return d.percent(v, what+".threshold", &r.ThresholdPct) },
			"alpha":     func(v *yaml.Node) error { return d.alpha(v, what+".alpha", &r.Alpha) },
		})
		if err != nil {
			return err
		}
		if r.Gate == nil && r.ThresholdPct == 0 && r.Alpha == 0 {
			return d.errorf(item.Line, "%s sets nothing: want at least one of gate, threshold, alpha", what)
		}
		p.Rules = append(p.Rules, r)
	}
	return nil
}

func classNames() string {
	names := make([]string, len(results.Classes))
	for i, c := range results.Classes {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

func (d *suiteDecoder) scenarios(v *yaml.Node, repeats int, s *Suite) error {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return d.errorf(v.Line, "bad scenarios: want a list of at least one scenario, got %s", describe(v))
	}
	if len(v.Content) > maxSuiteScenarios {
		return d.errorf(v.Line, "too many scenarios: %d (at most %d)", len(v.Content), maxSuiteScenarios)
	}
	names := map[string]int{}
	for i, item := range v.Content {
		what := fmt.Sprintf("scenarios[%d]", i)
		var builtin, file, fio string
		n := int64(repeats)
		err := d.keys(item, what, map[string]func(v *yaml.Node) error{
			"builtin": func(v *yaml.Node) error { return d.str(v, "builtin", &builtin) },
			"file":    func(v *yaml.Node) error { return d.str(v, "file", &file) },
			"fio":     func(v *yaml.Node) error { return d.str(v, "fio", &fio) },
			"repeats": func(v *yaml.Node) error { return d.integer(v, "repeats", 1, maxRepeats, &n) },
		})
		if err != nil {
			return err
		}
		var sc *scenarios.Scenario
		var source string
		switch {
		case boolCount(builtin != "", file != "", fio != "") != 1:
			return d.errorf(item.Line, "%s: want exactly one of builtin, file, fio", what)
		case fio != "":
			return d.errorf(item.Line, "%s: fio jobs are not supported by this build (no `snapring fio` yet); use a scenario file", what)
		case builtin != "":
			sc, err = scenarios.Builtin(builtin)
			if err != nil {
				return d.errorf(item.Line, "%s: %s (snapring scenarios list names them)", what, oneLine(err.Error()))
			}
			source = "builtin:" + builtin
		default:
			path := file
			if !filepath.IsAbs(path) {
				path = filepath.Join(d.dir, path)
			}
			sc, err = scenarios.Load(path)
			if err != nil {
				return d.errorf(item.Line, "%s: %s", what, oneLine(err.Error()))
			}
			source = "file:" + file
		}
		for _, x := range sc.Expand() {
			x.EnsureDefaults()
			if first, dup := names[x.Name]; dup {
				return d.errorf(item.Line, "%s: scenario %q already in the suite (line %d); each scenario once, with repeats", what, x.Name, first)
			}
			names[x.Name] = item.Line
			hash, err := scenarioHash(x)
			if err != nil {
				return d.errorf(item.Line, "%s: %v", what, err)
			}
			s.Scenarios = append(s.Scenarios, SuiteScenario{Name: x.Name, Source: source, Repeats: int(n), Hash: hash, Scenario: x})
		}
		if s.Runs() > maxSuiteRuns {
			return d.errorf(item.Line, "too many runs: %d (at most %d)", s.Runs(), maxSuiteRuns)
		}
	}
	return nil
}

func boolCount(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// scenarioHash hashes a scenario's JSON as bench.Run stores it in results.
func scenarioHash(sc *scenarios.Scenario) (string, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	return rawHash(b), nil
}

func rawHash(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}
