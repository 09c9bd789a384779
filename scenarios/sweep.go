package scenarios

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sweep turns one scenario into a family of runs that differ in one key.
// Key is one of:
//
//	engine.chunk_minimum_shift, engine.chunk_maximum_shift,
//	engine.chunk_maximum_in_queue, engine.free_diff_buffer_pool_size,
//	engine.store_workers,
//	workloads[SEL].block_size, workloads[SEL].queue_depth,
//	workloads[SEL].workers, workloads[SEL].rate
//
// where SEL is * (every workload) or a workload's name. Values are written
// as the key's own values are: integers, sizes or rates.
type Sweep struct {
	Key    string   `yaml:"key" json:"key"`
	Values []string `yaml:"values" json:"values"`
}

// MarshalYAML writes the values as plain scalars (16, 4KiB) rather than the
// quoted strings they are held as, so that shown scenarios read as written.
func (sw Sweep) MarshalYAML() (any, error) {
	values := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range sw.Values {
		values.Content = append(values.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
	}
	return &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "key"},
		{Kind: yaml.ScalarNode, Value: sw.Key},
		{Kind: yaml.ScalarNode, Value: "values"},
		values,
	}}, nil
}

// sweepKey is a parsed Sweep.Key.
type sweepKey struct {
	field    string // "chunk_minimum_shift", "block_size", …
	workload string // "" for an engine key; "*" or a name for a workload key
}

// label names one value of the sweep in an expanded scenario's name:
// "chunk_minimum_shift=16", "block_size=4KiB", "writer.queue_depth=32".
func (k sweepKey) label(value string) string {
	if k.workload != "" && k.workload != "*" {
		return k.workload + "." + k.field + "=" + value
	}
	return k.field + "=" + value
}

// engineSweepFields and workloadSweepFields are the keys a sweep may vary.
var engineSweepFields = map[string]func(*EngineOptions) *int{
	"chunk_minimum_shift":        func(e *EngineOptions) *int { return &e.ChunkMinimumShift },
	"chunk_maximum_shift":        func(e *EngineOptions) *int { return &e.ChunkMaximumShift },
	"chunk_maximum_in_queue":     func(e *EngineOptions) *int { return &e.ChunkMaximumInQueue },
	"free_diff_buffer_pool_size": func(e *EngineOptions) *int { return &e.FreeDiffBufferPoolSize },
	"store_workers":              func(e *EngineOptions) *int { return &e.StoreWorkers },
}

var workloadSweepFields = []string{"block_size", "queue_depth", "workers", "rate"}

const sweepKeysWant = "want engine.chunk_minimum_shift, engine.chunk_maximum_shift, engine.chunk_maximum_in_queue, " +
	"engine.free_diff_buffer_pool_size, engine.store_workers, " +
	"or workloads[*] or workloads[NAME] with .block_size, .queue_depth, .workers or .rate"

func parseSweepKey(key string) (sweepKey, bool) {
	if field, ok := strings.CutPrefix(key, "engine."); ok {
		_, known := engineSweepFields[field]
		return sweepKey{field: field}, known
	}
	rest, ok := strings.CutPrefix(key, "workloads[")
	if !ok {
		return sweepKey{}, false
	}
	sel, field, ok := strings.Cut(rest, "].")
	if !ok || sel == "" || !slices.Contains(workloadSweepFields, field) {
		return sweepKey{}, false
	}
	return sweepKey{field: field, workload: sel}, true
}

// apply sets the swept key of s to value and returns the value in canonical
// form ("4k" → "4KiB") for the expanded scenario's name.
func (k sweepKey) apply(s *Scenario, value string) (string, error) {
	if get, ok := engineSweepFields[k.field]; ok && k.workload == "" {
		n, err := strconv.Atoi(value)
		if err != nil || strings.Trim(value, "0123456789") != "" {
			return "", fmt.Errorf("bad %s %q: want a whole number", k.field, value)
		}
		*get(&s.Engine) = n
		return strconv.Itoa(n), nil
	}
	var set func(w *Workload)
	var canonical string
	switch k.field {
	case "block_size":
		b, problem := parseSize(value)
		if problem != "" {
			return "", fmt.Errorf("bad block_size %q: %s", value, problem)
		}
		set, canonical = func(w *Workload) { w.BlockSize = Size(b) }, Size(b).String()
	case "queue_depth", "workers":
		n, err := strconv.Atoi(value)
		if err != nil || strings.Trim(value, "0123456789") != "" {
			return "", fmt.Errorf("bad %s %q: want a whole number", k.field, value)
		}
		if k.field == "queue_depth" {
			set = func(w *Workload) { w.QueueDepth = n }
		} else {
			set = func(w *Workload) { w.Workers = n }
		}
		canonical = strconv.Itoa(n)
	case "rate":
		r, ok := parseRate(value)
		if !ok {
			return "", fmt.Errorf("bad rate %q: %s", value, rateWant)
		}
		set, canonical = func(w *Workload) { w.Rate = r }, r.String()
	default:
		panic("scenarios: unhandled sweep key " + k.field)
	}
	for i := range s.Workloads {
		if k.workload == "*" || s.Workloads[i].Name == k.workload {
			set(&s.Workloads[i])
		}
	}
	return canonical, nil
}

// Expand returns the runs a scenario stands for: s itself when it has no
// sweep, otherwise one copy per sweep value, without the sweep, named
// "NAME/KEY=VALUE" (e.g. "chunk-size-sweep/chunk_minimum_shift=16"). s must
// be valid: Expand panics on a sweep that Validate would refuse.
func (s *Scenario) Expand() []*Scenario {
	if s.Sweep == nil {
		return []*Scenario{s}
	}
	runs, err := s.expand()
	if err != nil {
		panic("scenarios: Expand of an invalid scenario: " + err.Error())
	}
	return runs
}

func (s *Scenario) expand() ([]*Scenario, error) {
	key, ok := parseSweepKey(s.Sweep.Key)
	if !ok {
		return nil, fmt.Errorf("bad sweep key %q", s.Sweep.Key)
	}
	runs := make([]*Scenario, 0, len(s.Sweep.Values))
	for _, value := range s.Sweep.Values {
		run := s.clone()
		run.Sweep = nil
		canonical, err := key.apply(run, value)
		if err != nil {
			return nil, err
		}
		run.Name = s.Name + "/" + key.label(canonical)
		runs = append(runs, run)
	}
	return runs, nil
}

// clone is a deep copy; the copy shares only the read-only source lines.
func (s *Scenario) clone() *Scenario {
	c := *s
	c.Devices = slices.Clone(s.Devices)
	c.Workloads = slices.Clone(s.Workloads)
	for i, w := range c.Workloads {
		if w.Hotspot != nil {
			h := *w.Hotspot
			c.Workloads[i].Hotspot = &h
		}
	}
	c.Phases.Prefill = clonePtr(s.Phases.Prefill)
	c.Phases.Destroy = clonePtr(s.Phases.Destroy)
	if s.Sweep != nil {
		sw := Sweep{Key: s.Sweep.Key, Values: slices.Clone(s.Sweep.Values)}
		c.Sweep = &sw
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// sweep checks the key and every value: each expanded run must be valid on
// its own, and the problem is reported at the value.
func (v *validator) sweep() {
	sw := v.s.Sweep
	if sw == nil {
		return
	}
	key, ok := parseSweepKey(sw.Key)
	switch {
	case !ok:
		v.failf("sweep.key", "bad sweep key %q: %s", sw.Key, sweepKeysWant)
		return
	case key.workload != "" && key.workload != "*" &&
		!slices.ContainsFunc(v.s.Workloads, func(w Workload) bool { return w.Name == key.workload }):
		v.failf("sweep.key", "impossible: sweep key %q names no workload (have %s)", sw.Key, workloadNames(v.s.Workloads))
		return
	case len(sw.Values) == 0:
		v.failf("sweep.values", "no sweep values: want at least one")
	case len(sw.Values) > maxSweepValues:
		v.failf("sweep.values", "%s", tooMany(len(sw.Values), "values", maxSweepValues))
		return
	}
	seen := map[string]bool{}
	for i, value := range sw.Values {
		path := fmt.Sprintf("sweep.values[%d]", i)
		run := v.s.clone()
		run.Sweep, run.src = nil, nil
		canonical, err := key.apply(run, value)
		if err != nil {
			v.failf(path, "%s", err)
			continue
		}
		if seen[canonical] {
			v.failf(path, "duplicate sweep value %s", canonical)
		}
		seen[canonical] = true
		run.Name = v.s.Name + "/" + key.label(canonical)
		var se *scenarioError
		if err := run.Validate(); errors.As(err, &se) {
			v.failf(path, "with %s: %s", key.label(canonical), se.msg)
		}
	}
}

func workloadNames(workloads []Workload) string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = fmt.Sprintf("%q", w.Name)
	}
	return strings.Join(names, ", ")
}
