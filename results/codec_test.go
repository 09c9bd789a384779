package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// javaHistogram is an interval histogram written by jHiccup 2.0.7 (Java
// HdrHistogram), from hdrhistogram-go's test logs.
const javaHistogram = "HISTFAAAAEV42pNpmSzMwMCgyAABTBDKT4GBgdnNYMcCBvsPEBEJISEuATEZMQ4uASkhIR4nrxg9v2lMaxhvMekILGZkKmcCAEf2CsI="

// goldenResult is a small fixed result. Its histograms are fixed strings
// so that the golden file does not depend on zlib's output.
func goldenResult() *Result {
	start := time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)
	cr := func(count int64, p50 int64) ClassResult {
		return ClassResult{
			Count: count, Errors: 1, MinNs: p50 / 2, MeanNs: p50 + p50/10, P50Ns: p50, P90Ns: 2 * p50, P99Ns: 4 * p50,
			P999Ns: 8 * p50, P9999Ns: 16 * p50, MaxNs: 32 * p50, IOPS: float64(count) / 10, MBps: float64(count) * 4096 / 1e7,
			Bytes: count * 4096, Histogram: javaHistogram,
		}
	}
	r := &Result{
		Schema:   SchemaV1,
		Scenario: json.RawMessage(`{"name":"golden","block_size":4096}`),
		Env: Env{Hostname: "host", KernelRelease: "6.12.0", Machine: "x86_64", CPUModel: "CPU", CPUs: 4, UsableCPUs: 2,
			GoVersion: "go1.26.0", Commit: "abc123", BackingPath: "/mnt/b", BackingFS: "xfs"},
		LoadMode: OpenLoop,
		RunIndex: 1,
		Partial:  true,
		Start:    start,
		Duration: 21 * time.Second,
		Engine: Side{
			Start:    start,
			Duration: 10 * time.Second,
			Classes: map[Class]ClassResult{
				OriginWrite:    cr(1000, 50_000),
				OriginWriteCoW: cr(400, 120_000),
			},
			Series: []SeriesPoint{
				{Offset: 0, Length: time.Second, Ops: 100, Bytes: 409600, ClassOps: map[Class]int64{OriginWrite: 100, OriginWriteCoW: 40}},
				{Offset: time.Second, Length: 500 * time.Millisecond, Ops: 50, Bytes: 204800},
			},
			Counters:      map[string]int64{CounterChunksCopied: 400, CounterDiffBytesUsed: 400 << 16},
			CounterSeries: []CounterPoint{{Offset: time.Second, Values: map[string]int64{CounterChunksCopied: 40}}},
			Events:        []Event{{Offset: 2 * time.Second, Kind: EventTake, Device: "snap0", Detail: "first"}},
			Memory:        Memory{RSSBytes: 1 << 20, RSSPeakBytes: 2 << 20, HeapBytes: 3 << 20, HeapPeakBytes: 4 << 20},
		},
		Baseline: &Side{
			Start:    start.Add(11 * time.Second),
			Duration: 10 * time.Second,
			Classes:  map[Class]ClassResult{OriginWrite: cr(2000, 20_000)},
		},
	}
	ComputeRatios(r)
	return r
}

func TestEncodeGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, goldenResult()); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "result.golden.json", buf.Bytes())
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for name, r := range map[string]*Result{"golden": goldenResult(), "synthetic": synthResult(t, defaultSpec(7), 3)} {
		t.Run(name, func(t *testing.T) {
			var first bytes.Buffer
			if err := Encode(&first, r); err != nil {
				t.Fatal(err)
			}
			back, err := Decode(bytes.NewReader(first.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			var second bytes.Buffer
			if err := Encode(&second, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Errorf("encode(decode(encode(r))) differs from encode(r)")
			}
			if !back.Start.Equal(r.Start) || back.Engine.Classes[OriginWrite] != r.Engine.Classes[OriginWrite] {
				t.Errorf("decoded result differs")
			}
		})
	}
}

func TestEncodeFillsSchemaAndValidates(t *testing.T) {
	r := goldenResult()
	r.Schema = ""
	var buf bytes.Buffer
	if err := Encode(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"schema": "snapring.result/v1"`) {
		t.Errorf("schema not filled in:\n%.200s", buf.String())
	}
	if r.Schema != "" {
		t.Errorf("Encode modified its argument")
	}
	r.Engine.Classes["origin-wrte"] = ClassResult{}
	if err := Encode(&buf, r); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode of an unknown class: %v, want ErrInvalid", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	var valid bytes.Buffer
	if err := Encode(&valid, goldenResult()); err != nil {
		t.Fatal(err)
	}
	doc := valid.String()
	tests := []struct {
		name    string
		doc     string
		want    error
		message string
	}{
		{"empty", " \n", ErrMalformed, "empty document"},
		{"not an object", "[1,2]", ErrMalformed, "cannot"},
		{"no schema", `{"load_mode":"open-loop"}`, ErrSchema, `no "schema" field`},
		{"newer schema", strings.Replace(doc, SchemaV1, "snapring.result/v2", 1), ErrSchema, `"snapring.result/v2" (this build reads "snapring.result/v1")`},
		{"integer schema", `{"schema":2}`, ErrMalformed, `field "schema"`},
		{"unknown field", strings.Replace(doc, `"partial": true`, `"partial": true, "colour": "blue"`, 1), ErrMalformed, `unknown field "colour"`},
		{"unknown nested field", strings.Replace(doc, `"count": 1000`, `"count": 1000, "p42_ns": 1`, 1), ErrMalformed, `unknown field "p42_ns"`},
		{"trailing data", doc + "{}", ErrMalformed, "trailing data"},
		{"syntax error", strings.Replace(doc, `"partial": true,`, `"partial": true`, 1), ErrMalformed, "line 22: invalid character"},
		{"wrong type", strings.Replace(doc, `"count": 1000`, `"count": "many"`, 1), ErrMalformed, `field "engine.classes.count"`},
		{"unknown class", strings.Replace(doc, `"origin-write-cow": {`, `"origin-write-mow": {`, 1), ErrInvalid, `unknown class "origin-write-mow"`},
		{"bad load mode", strings.Replace(doc, `"open-loop"`, `"half-open"`, 1), ErrInvalid, `load_mode "half-open"`},
		{"negative count", strings.Replace(doc, `"count": 1000`, `"count": -1`, 1), ErrInvalid, "negative"},
		{"not a histogram", strings.Replace(doc, javaHistogram, "aGVsbG8=", 1), ErrInvalid, "HdrHistogram V2"},
		{"event without kind", strings.Replace(doc, `"kind": "take"`, `"kind": ""`, 1), ErrInvalid, "empty kind"},
		{"negative series offset", strings.Replace(doc, `"offset_ns": 0,`, `"offset_ns": -1,`, 1), ErrInvalid, "series[0]: negative value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", r)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not wrap %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.json")
	if err := WriteFile(path, goldenResult()); err != nil {
		t.Fatal(err)
	}
	// Overwriting replaces the file whole.
	if err := WriteFile(path, synthResult(t, defaultSpec(1), 0)); err != nil {
		t.Fatal(err)
	}
	r, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Env.Hostname != "ci-runner-1" {
		t.Errorf("read back the wrong result")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only run.json (temporary files left behind?)", len(entries))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrRead) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		message string
		is      error
	}{
		{"missing directory", filepath.Join(dir, "nope", "run.json"),
			"results: cannot write " + filepath.Join(dir, "nope", "run.json") + ": directory " + filepath.Join(dir, "nope") + " does not exist", fs.ErrNotExist},
		{"parent is a file", filepath.Join(file, "run.json"), "is not a directory", nil},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name    string
			path    string
			message string
			is      error
		}{"read-only directory", filepath.Join(ro, "run.json"), "directory " + ro + " is not writable", fs.ErrPermission})
	} else {
		t.Log("running as root: skipping the read-only directory case, root can write anywhere")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteFile(tt.path, goldenResult())
			if err == nil {
				t.Fatal("WriteFile succeeded")
			}
			if !errors.Is(err, ErrWrite) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("error %q does not wrap ErrWrite and %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.message) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line containing %q", err, tt.message)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var valid bytes.Buffer
	if err := Encode(&valid, goldenResult()); err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add([]byte(`{"schema":"snapring.result/v1","load_mode":"closed-loop","engine":{"classes":{}}}`))
	f.Add([]byte(`{"schema":"snapring.result/v1","load_mode":"closed-loop","engine":{"classes":{"image-read":{"count":1,"histogram":"HISTFAAAAA=="}}}}`))
	f.Add([]byte(`{"schema":"snapring.result/v2"}`))
	f.Add([]byte(`{"schema":null}`))
	f.Add([]byte(`{"schema":"snapring.result/v1","scenario":null,"baseline":null,"ratios":{"image-read":{"p50":1e308}}}`))
	f.Add([]byte(`{"schema":"snapring.result/v1","start":"10000-01-01T00:00:00Z"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(bytes.NewReader(data))
		if err != nil {
			if r != nil {
				t.Fatal("Decode returned a result and an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSchema) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q wraps no sentinel", err)
			}
			return
		}
		// Whatever Decode accepts, Encode writes and Decode reads back.
		var buf bytes.Buffer
		if err := Encode(&buf, r); err != nil {
			t.Fatalf("Encode of a decoded result: %v", err)
		}
		if _, err := Decode(&buf); err != nil {
			t.Fatalf("Decode of a re-encoded result: %v", err)
		}
		// Pooling and ratios must cope with anything that decodes.
		ComputeRatios(r)
		_ = Compare([]*Result{r}, []*Result{r}, CompareOptions{})
	})
}
