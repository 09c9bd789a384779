package scenarios_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/snapring/snapring/scenarios"
)

// FuzzParse holds Parse to its contract on any input: it never panics; every
// error wraps ErrInvalid, is one line, and starts with the file name and a
// line of the file ("fuzz.yaml:12: "); every scenario it accepts expands to
// valid runs and survives being shown (YAML) and stored (JSON) unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range scenarios.BuiltinNames() {
		src, err := scenarios.BuiltinSource(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, tt := range parseGoodTests {
		f.Add([]byte(tt.yaml))
	}
	for _, tt := range parseBadTests {
		if len(tt.yaml) < 4096 {
			f.Add([]byte(tt.yaml))
		}
	}
	errRE := regexp.MustCompile(`^fuzz\.yaml:([1-9][0-9]*): \S`)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := scenarios.Parse("fuzz.yaml", data)
		if err != nil {
			msg := err.Error()
			m := errRE.FindStringSubmatch(msg)
			if m == nil || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error is not one line of the form file:line: problem: %q", msg)
			}
			if line, _ := strconv.Atoi(m[1]); line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error names line %d of a %d-line file: %q", line, bytes.Count(data, []byte("\n"))+1, msg)
			}
			if !errors.Is(err, scenarios.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %q", msg)
			}
			return
		}
		for _, run := range s.Expand() {
			if err := run.Validate(); err != nil {
				t.Fatalf("expanded run %s is invalid: %v", run.Name, err)
			}
		}
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		y, err := s.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		again, err := scenarios.Parse("fuzz.yaml", y)
		if err != nil {
			t.Fatalf("Parse of shown scenario: %v\n%s", err, y)
		}
		if got, _ := json.Marshal(again); !bytes.Equal(got, want) {
			t.Fatalf("YAML round trip changed the scenario:\n got: %s\nwant: %s", got, want)
		}
		var fromJSON scenarios.Scenario
		if err := json.Unmarshal(want, &fromJSON); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		if got, _ := json.Marshal(&fromJSON); !bytes.Equal(got, want) {
			t.Fatalf("JSON round trip changed the scenario:\n got: %s\nwant: %s", got, want)
		}
	})
}
