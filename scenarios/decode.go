package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileBytes bounds a scenario file; real ones are a few hundred bytes.
const maxFileBytes = 1 << 20

// Load reads, decodes, defaults and validates the scenario file at path.
// Errors about the file's contents name path and a line and wrap ErrInvalid;
// an error reading the file does not.
func Load(path string) (*Scenario, error) {
	// Stat first: opening a FIFO would block, and /dev/zero would be read
	// forever.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	if fi.IsDir() {
		return nil, &scenarioError{file: path, line: 1, msg: "is a directory, not a scenario file"}
	}
	if !fi.Mode().IsRegular() {
		return nil, &scenarioError{file: path, line: 1, msg: "not a regular file"}
	}
	if fi.Size() > maxFileBytes {
		return nil, &scenarioError{file: path, line: 1, msg: fmt.Sprintf("file too large: %d bytes (at most %d)", fi.Size(), maxFileBytes)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	defer f.Close()
	// One byte more than Parse accepts (a file may grow, or be in /proc), so
	// that Parse can say it is too large.
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a scenario from YAML, applies the defaults and validates it.
// file names the source in error messages ("file:line: problem"; "<input>"
// when empty) and, without a name key, gives the scenario its name. Every
// error is one line and wraps ErrInvalid.
func Parse(file string, data []byte) (*Scenario, error) {
	where := file
	if where == "" {
		where = "<input>"
	}
	s, err := decode(where, data)
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = nameFromFile(file)
	}
	s.EnsureDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// decoder turns a yaml.Node tree into a Scenario, checking keys and types and
// recording the line of every key for Validate. It stops at the first problem.
type decoder struct {
	file    string
	lines   map[string]int // key path → line
	maxLine int            // the last line of the file
}

// errorf reports a problem at a line. The parser places an empty value (a
// key with nothing after it, a lone "---") on the line after it, which may be
// past the end of the file; such lines are pulled back to the last one.
func (d *decoder) errorf(line int, format string, args ...any) error {
	return &scenarioError{file: d.file, line: max(1, min(line, d.maxLine)), msg: fmt.Sprintf(format, args...)}
}

func decode(file string, data []byte) (*Scenario, error) {
	d := &decoder{file: file, lines: map[string]int{}, maxLine: bytes.Count(data, []byte("\n")) + 1}
	root, err := d.document(data)
	if err != nil {
		return nil, err
	}
	s := &Scenario{src: &source{file: file, lines: d.lines, maxLine: d.maxLine}}
	d.lines[""] = root.Line
	if err := d.mapping(root, "", "at top level", d.scenarioFields(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// document parses data as exactly one YAML document and returns its top node.
func (d *decoder) document(data []byte) (*yaml.Node, error) {
	if len(data) > maxFileBytes {
		return nil, d.errorf(1, "file too large: %d bytes (at most %d)", len(data), maxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, d.errorf(1, "empty file: want a mapping with at least devices, phases and workloads")
		}
		return nil, d.syntaxError(data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, d.syntaxError(data, err)
	default:
		return nil, d.errorf(next.Line, "a second YAML document: a scenario file holds one")
	}
	if len(doc.Content) != 1 {
		return nil, d.errorf(doc.Line, "empty file: want a mapping with at least devices, phases and workloads")
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, d.errorf(root.Line, "bad top level: want a mapping, got %s", describe(root))
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: (line [0-9]+: )?`)

// syntaxError reports a YAML parser error. The parser's own line is often
// that of the enclosing block rather than of the mistake, and some errors
// (bad UTF-8, a control character, an unknown alias, anything on line 1) have
// none, so the line is found by parsing ever longer prefixes of the file.
func (d *decoder) syntaxError(data []byte, err error) error {
	msg := yamlLineRE.ReplaceAllString(oneLine(err.Error()), "")
	return d.errorf(firstFailingLine(data, err.Error()), "bad YAML: %s", msg)
}

// firstFailingLine returns the first line k such that the first k lines of
// data fail to parse with the message want, by bisection. Prefixes of a file
// that fails on line k usually parse up to k-1; when they do not, the answer
// is still a line of the file.
func firstFailingLine(data []byte, want string) int {
	ends := []int{} // ends[k-1] is the offset just past line k
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(k int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[k-1]]))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err != nil {
				return !errors.Is(err, io.EOF) && err.Error() == want
			}
		}
	}
	lo, hi := 1, len(ends)
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// resolve follows an alias to the node it names. The decoder walks the schema,
// not the node graph, so a self-referencing anchor cannot make it loop.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe names the kind of a node for messages: "a mapping", "a list", …
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!str":
			return "a string"
		}
		return fmt.Sprintf("a value tagged %q", n.Tag)
	}
	return "something else"
}

// show quotes a scalar for a message: numbers and booleans as written,
// anything else quoted and cut short.
func show(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!int", "!!float", "!!bool":
		if len(n.Value) <= 40 {
			return n.Value
		}
	}
	v := n.Value
	if len(v) > 40 {
		return strconv.Quote(v[:40]) + "…"
	}
	return strconv.Quote(v)
}

// field decodes the value of one key of a mapping; path is the key's path.
type field struct {
	key      string
	required bool
	decode   func(n *yaml.Node, path string) error
}

// mapping decodes a mapping node whose keys must all be among fields. what
// places the mapping in messages: "in workload", "at top level".
func (d *decoder) mapping(n *yaml.Node, path, what string, fields []field) error {
	line := n.Line
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return d.errorf(line, "bad %s: want a mapping, got %s", lastKey(path), describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errorf(n.Content[i].Line, "bad key %s: want a name, got %s", what, describe(k))
		}
		if first, dup := seen[k.Value]; dup {
			return d.errorf(n.Content[i].Line, "duplicate key %q %s (first on line %d)", k.Value, what, first)
		}
		seen[k.Value] = n.Content[i].Line
		f := findField(fields, k.Value)
		if f == nil {
			return d.errorf(n.Content[i].Line, "unknown key %s %s (%s)", show(k), what, suggest(k.Value, fields))
		}
		p := joinPath(path, k.Value)
		d.lines[p] = n.Content[i].Line
		if err := f.decode(v, p); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			return d.errorf(line, "missing key %q %s", f.key, what)
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func findField(fields []field, key string) *field {
	for i := range fields {
		if fields[i].key == key {
			return &fields[i]
		}
	}
	return nil
}

// suggest names the closest known key when one is close enough to be a
// typo, and lists them all otherwise.
func suggest(key string, fields []field) string {
	best, bestDist := "", len(key)
	for _, f := range fields {
		if dist := editDistance(strings.ToLower(key), f.key); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	if best != "" && bestDist <= max(1, min(len(key), len(best))/3) {
		return fmt.Sprintf("did you mean %q?", best)
	}
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return "want one of " + strings.Join(keys, ", ")
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list decodes a sequence of at most maxLen elements, calling item for each
// with its path ("devices[2]") after recording the element's line. The bound
// is Validate's, checked here too so that a huge list costs nothing.
func (d *decoder) list(n *yaml.Node, path string, maxLen int, item func(n *yaml.Node, path string) error) error {
	line := n.Line
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		return d.errorf(line, "bad %s: want a list, got %s", lastKey(path), describe(n))
	}
	if len(n.Content) > maxLen {
		return d.errorf(line, "%s", tooMany(len(n.Content), lastKey(path), maxLen))
	}
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = e.Line
		if err := item(e, p); err != nil {
			return err
		}
	}
	return nil
}

// scalar returns n (resolved) if it is a scalar with one of tags; otherwise
// an error saying that the key at path wants what.
func (d *decoder) scalar(n *yaml.Node, path, want string, tags ...string) (*yaml.Node, error) {
	line := n.Line
	n = resolve(n)
	key := lastKey(path)
	switch {
	case n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null":
		return nil, d.errorf(line, "bad %s: want %s, got %s", key, want, describe(n))
	case !contains(tags, n.ShortTag()):
		return nil, d.errorf(line, "bad %s %s: want %s", key, show(n), want)
	}
	return n, nil
}

func contains(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "a string", "!!str")
		if err != nil {
			return err
		}
		*dst = v.Value
		return nil
	}
}

// enum decodes a string into a string type; Validate checks the value.
func enum[T ~string](d *decoder, dst *T) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		var s string
		if err := d.str(&s)(n, path); err != nil {
			return err
		}
		*dst = T(s)
		return nil
	}
}

func (d *decoder) boolean(dst **bool) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "true or false", "!!bool")
		if err != nil {
			return err
		}
		var b bool
		if err := v.Decode(&b); err != nil {
			return d.errorf(n.Line, "bad %s %s: want true or false", lastKey(path), show(v))
		}
		*dst = &b
		return nil
	}
}

// integer decodes an int key. An explicit 0 is refused when 0 is out of the
// key's range, since EnsureDefaults would silently replace it.
func integer[T ~int | ~int64](d *decoder, dst *T) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "an integer", "!!int")
		if err != nil {
			return err
		}
		var i int64
		if err := v.Decode(&i); err != nil {
			return d.errorf(n.Line, "bad %s %s: want an integer", lastKey(path), show(v))
		}
		if problem := intProblem(path, i); i == 0 && problem != "" {
			return d.errorf(n.Line, "%s", problem)
		}
		*dst = T(i)
		return nil
	}
}

// float decodes a number key; check, when not nil, refuses an explicit 0 that
// EnsureDefaults would replace, with Validate's message.
func (d *decoder) float(dst *float64, check func(float64) string) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "a number", "!!int", "!!float")
		if err != nil {
			return err
		}
		var f float64
		if err := v.Decode(&f); err != nil {
			return d.errorf(n.Line, "bad %s %s: want a number", lastKey(path), show(v))
		}
		if check != nil && f == 0 {
			return d.errorf(n.Line, "%s", check(f))
		}
		*dst = f
		return nil
	}
}

// size decodes a size key. No size key has a meaningful 0: leaving the key
// out is how to ask for the default.
func (d *decoder) size(dst *Size) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "a size such as 4KiB", "!!int", "!!str")
		if err != nil {
			return err
		}
		b, problem := parseSize(v.Value)
		switch {
		case problem != "":
			return d.errorf(n.Line, "bad %s %s: %s", lastKey(path), show(v), problem)
		case b == 0:
			return d.errorf(n.Line, "%s 0 must be positive (leave the key out for the default)", lastKey(path))
		}
		*dst = Size(b)
		return nil
	}
}

func (d *decoder) duration(dst *Duration) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "a duration such as 10s", "!!str", "!!int")
		if err != nil {
			return err
		}
		dur, perr := parseDuration(v.Value)
		if perr != nil {
			return d.errorf(n.Line, "bad %s %s: %s", lastKey(path), show(v), durationWant)
		}
		*dst = dur
		return nil
	}
}

func (d *decoder) rate(dst *Rate) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		v, err := d.scalar(n, path, "operations per second or unlimited", "!!int", "!!str")
		if err != nil {
			return err
		}
		r, ok := parseRate(v.Value)
		if !ok {
			return d.errorf(n.Line, "bad %s %s: %s", lastKey(path), show(v), rateWant)
		}
		*dst = r
		return nil
	}
}

// The schema. Each function lists the keys of one mapping of the file format.

func (d *decoder) scenarioFields(s *Scenario) []field {
	return []field{
		{key: "name", decode: d.str(&s.Name)},
		{key: "description", decode: func(n *yaml.Node, path string) error {
			// Trimmed: a folded block (>) ends in a newline nobody means, and
			// the YAML encoder does not keep a leading one.
			err := d.str(&s.Description)(n, path)
			s.Description = strings.TrimSpace(s.Description)
			return err
		}},
		{key: "devices", required: true, decode: func(n *yaml.Node, path string) error {
			return d.list(n, path, maxDevices, func(n *yaml.Node, path string) error {
				s.Devices = append(s.Devices, Device{})
				return d.mapping(n, path, "in device", d.deviceFields(&s.Devices[len(s.Devices)-1]))
			})
		}},
		{key: "diff_storage", decode: func(n *yaml.Node, path string) error {
			return d.mapping(n, path, "in diff_storage", d.diffStorageFields(&s.DiffStorage))
		}},
		{key: "engine", decode: func(n *yaml.Node, path string) error {
			return d.mapping(n, path, "in engine", d.engineFields(&s.Engine))
		}},
		{key: "phases", required: true, decode: func(n *yaml.Node, path string) error {
			return d.mapping(n, path, "in phases", d.phasesFields(&s.Phases))
		}},
		{key: "workloads", required: true, decode: func(n *yaml.Node, path string) error {
			return d.list(n, path, maxWorkloads, func(n *yaml.Node, path string) error {
				s.Workloads = append(s.Workloads, Workload{})
				return d.mapping(n, path, "in workload", d.workloadFields(&s.Workloads[len(s.Workloads)-1]))
			})
		}},
		{key: "sweep", decode: func(n *yaml.Node, path string) error {
			s.Sweep = &Sweep{}
			return d.mapping(n, path, "in sweep", d.sweepFields(s.Sweep))
		}},
	}
}

func (d *decoder) deviceFields(dev *Device) []field {
	return []field{
		{key: "name", decode: d.str(&dev.Name)},
		{key: "size", decode: d.size(&dev.Size)},
		{key: "backing", decode: func(n *yaml.Node, path string) error {
			return d.mapping(n, path, "in backing", []field{
				{key: "kind", decode: enum(d, &dev.Backing.Kind)},
				{key: "path", decode: d.str(&dev.Backing.Path)},
				{key: "fs", decode: enum(d, &dev.Backing.FS)},
			})
		}},
	}
}

func (d *decoder) diffStorageFields(ds *DiffStorage) []field {
	return []field{
		{key: "kind", decode: enum(d, &ds.Kind)},
		{key: "path", decode: d.str(&ds.Path)},
		{key: "fs", decode: enum(d, &ds.FS)},
		{key: "limit", decode: d.size(&ds.Limit)},
		{key: "portion", decode: d.size(&ds.Portion)},
		{key: "overwrite", decode: d.boolean(&ds.Overwrite)},
	}
}

func (d *decoder) engineFields(e *EngineOptions) []field {
	return []field{
		{key: "chunk_minimum_shift", decode: integer(d, &e.ChunkMinimumShift)},
		{key: "chunk_maximum_shift", decode: integer(d, &e.ChunkMaximumShift)},
		{key: "chunk_maximum_count", decode: integer(d, &e.ChunkMaximumCount)},
		{key: "chunk_maximum_in_queue", decode: integer(d, &e.ChunkMaximumInQueue)},
		{key: "free_diff_buffer_pool_size", decode: integer(d, &e.FreeDiffBufferPoolSize)},
		{key: "diff_storage_minimum", decode: d.size(&e.DiffStorageMinimum)},
		{key: "store_workers", decode: integer(d, &e.StoreWorkers)},
		{key: "image_read_bytes_per_second", decode: d.size(&e.ImageReadBytesPerSecond)},
		{key: "writer_priority", decode: d.boolean(&e.WriterPriority)},
		{key: "backup_nice", decode: integer(d, &e.BackupNice)},
	}
}

func (d *decoder) phasesFields(p *Phases) []field {
	return []field{
		{key: "prefill", decode: d.boolean(&p.Prefill)},
		{key: "warmup", decode: d.duration(&p.Warmup)},
		{key: "take_after", decode: d.duration(&p.TakeAfter)},
		{key: "run", required: true, decode: d.duration(&p.Run)},
		{key: "destroy", decode: d.boolean(&p.Destroy)},
		{key: "cow_capacity", decode: d.duration(&p.CowCapacity)},
	}
}

func (d *decoder) workloadFields(w *Workload) []field {
	return []field{
		{key: "name", decode: d.str(&w.Name)},
		{key: "kind", required: true, decode: enum(d, &w.Kind)},
		{key: "device", decode: d.str(&w.Device)},
		{key: "pattern", decode: enum(d, &w.Pattern)},
		{key: "block_size", decode: d.size(&w.BlockSize)},
		{key: "queue_depth", decode: integer(d, &w.QueueDepth)},
		{key: "workers", decode: integer(d, &w.Workers)},
		{key: "rate", decode: d.rate(&w.Rate)},
		{key: "distribution", decode: enum(d, &w.Distribution)},
		{key: "zipf_theta", decode: d.float(&w.ZipfTheta, zipfThetaProblem)},
		{key: "hotspot", decode: func(n *yaml.Node, path string) error {
			w.Hotspot = &Hotspot{}
			return d.mapping(n, path, "in hotspot", []field{
				{key: "fraction_of_space", decode: d.float(&w.Hotspot.FractionOfSpace, fractionOfSpaceProblem)},
				{key: "fraction_of_ops", decode: d.float(&w.Hotspot.FractionOfOps, fractionOfOpsProblem)},
			})
		}},
		{key: "discard_share", decode: d.float(&w.DiscardShare, nil)},
		{key: "loops", decode: integer(d, &w.Loops)},
	}
}

func (d *decoder) sweepFields(sw *Sweep) []field {
	return []field{
		{key: "key", required: true, decode: d.str(&sw.Key)},
		{key: "values", required: true, decode: func(n *yaml.Node, path string) error {
			return d.list(n, path, maxSweepValues, func(n *yaml.Node, path string) error {
				v, err := d.scalar(n, path, "a number, size or rate", "!!int", "!!str")
				if err != nil {
					return err
				}
				sw.Values = append(sw.Values, v.Value)
				return nil
			})
		}},
	}
}
