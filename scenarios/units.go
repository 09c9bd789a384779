package scenarios

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Size is a number of bytes. In files it is written with a binary unit
// ("4k", "4KiB", "256KiB", "1g", "1GiB") or as plain bytes ("4096"); it
// marshals to YAML and JSON as the largest unit that divides it exactly
// ("4KiB", "1GiB", "1536B").
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// sizeWant is the tail of every bad-size message.
const sizeWant = "want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB"

// sizeUnits lists the accepted suffixes, longest first so that "KiB" is not
// taken for "B". Units are binary: k means 1024. Decimal forms such as "kB"
// and "KB" are refused rather than guessed.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"B", 0},
	{"k", 10}, {"K", 10},
	{"m", 20}, {"M", 20},
	{"g", 30}, {"G", 30},
	{"t", 40}, {"T", 40},
}

// ParseSize parses a size such as "4k", "4KiB", "1g", "1GiB" or "4096" into
// bytes. Units are binary (k = 1024). The number must be a whole,
// non-negative decimal; errors wrap ErrInvalid.
func ParseSize(s string) (int64, error) {
	n, problem := parseSize(s)
	if problem != "" {
		return 0, &scenarioError{msg: fmt.Sprintf("bad size %q: %s", s, problem)}
	}
	return n, nil
}

// parseSize returns the size in bytes, or why s is not one.
func parseSize(s string) (int64, string) {
	digits, shift := s, uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			digits, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, sizeWant
	}
	n, err := strconv.ParseInt(digits, 10, 64) // fails only when out of range
	if err != nil || n > math.MaxInt64>>shift {
		return 0, "too large"
	}
	return n << shift, ""
}

// String gives the size in the largest binary unit that divides it exactly.
func (sz Size) String() string {
	n, sign := int64(sz), ""
	if n < 0 {
		if n == math.MinInt64 {
			return strconv.FormatInt(n, 10) + "B"
		}
		n, sign = -n, "-"
	}
	if n == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n%(1<<u.shift) == 0 {
			return sign + strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return sign + strconv.FormatInt(n, 10) + "B"
}

// MarshalYAML writes the size in human form.
func (sz Size) MarshalYAML() (any, error) { return sz.String(), nil }

// UnmarshalYAML accepts the forms ParseSize accepts.
func (sz *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*sz = Size(v)
	return nil
}

// MarshalJSON writes the size as a human-form string, e.g. "4KiB".
func (sz Size) MarshalJSON() ([]byte, error) { return json.Marshal(sz.String()) }

// UnmarshalJSON accepts a human-form string or a number of bytes.
func (sz *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := ParseSize(str)
		if err != nil {
			return err
		}
		*sz = Size(v)
		return nil
	}
	var v int64
	if err := json.Unmarshal(b, &v); err != nil {
		return &scenarioError{msg: fmt.Sprintf("bad size %s: want a string such as \"4KiB\" or a number of bytes", b)}
	}
	*sz = Size(v)
	return nil
}

// Duration is a time.Duration written the Go way: "500ms", "10s", "2m",
// "1m30s". It marshals to YAML and JSON as such a string.
type Duration time.Duration

// durationWant is the tail of every bad-duration message.
const durationWant = "want a duration such as 500ms, 10s or 1m30s"

// parseDuration is time.ParseDuration; a bare number other than 0 has no unit
// and is refused by it, which is what we want.
func parseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	return Duration(d), err
}

// String is time.Duration's form without the trailing zero units it adds:
// "2m" rather than "2m0s", "1h" rather than "1h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalYAML writes the duration in Go form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts Go durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return &scenarioError{msg: fmt.Sprintf("bad duration %q: %s", n.Value, durationWant)}
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as a string in Go form, e.g. "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a Go duration string or a number of nanoseconds (the
// way encoding/json writes a plain time.Duration).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := parseDuration(str)
		if err != nil {
			return &scenarioError{msg: fmt.Sprintf("bad duration %q: %s", str, durationWant)}
		}
		*d = v
		return nil
	}
	var v int64
	if err := json.Unmarshal(b, &v); err != nil {
		return &scenarioError{msg: fmt.Sprintf("bad duration %s: want a string such as \"30s\" or a number of nanoseconds", b)}
	}
	*d = Duration(v)
	return nil
}

// Rate is a number of operations per second. Zero means unlimited: the
// workload runs a closed loop, issuing the next operation as soon as one
// completes. In files it is an integer or the word "unlimited".
type Rate int64

// Unlimited is the Rate of a closed-loop workload.
const Unlimited Rate = 0

// rateWant is the tail of every bad-rate message.
const rateWant = "want operations per second (an integer) or unlimited"

// String gives "unlimited" or the number of operations per second.
func (r Rate) String() string {
	if r == Unlimited {
		return "unlimited"
	}
	return strconv.FormatInt(int64(r), 10)
}

// MarshalYAML writes "unlimited" or the integer.
func (r Rate) MarshalYAML() (any, error) {
	if r == Unlimited {
		return "unlimited", nil
	}
	return int64(r), nil
}

// UnmarshalYAML accepts an integer or "unlimited".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, ok := parseRate(n.Value)
	if !ok {
		return &scenarioError{msg: fmt.Sprintf("bad rate %q: %s", n.Value, rateWant)}
	}
	*r = v
	return nil
}

// MarshalJSON writes the integer; 0 is unlimited. Results are analysed as
// numbers, so JSON does not get the word.
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(int64(r)) }

// UnmarshalJSON accepts an integer or "unlimited".
func (r *Rate) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, ok := parseRate(str)
		if !ok {
			return &scenarioError{msg: fmt.Sprintf("bad rate %q: %s", str, rateWant)}
		}
		*r = v
		return nil
	}
	var v int64
	if err := json.Unmarshal(b, &v); err != nil {
		return &scenarioError{msg: fmt.Sprintf("bad rate %s: %s", b, rateWant)}
	}
	*r = Rate(v)
	return nil
}

// parseRate accepts "unlimited" or a non-negative decimal integer.
func parseRate(s string) (Rate, bool) {
	if s == "unlimited" {
		return Unlimited, true
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return Rate(v), err == nil
}
