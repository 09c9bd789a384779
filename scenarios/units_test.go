package scenarios_test

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/snapring/snapring/scenarios"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"4096", 4096},
		{"512B", 512},
		{"4k", 4096},
		{"4K", 4096},
		{"4KiB", 4096},
		{"256KiB", 256 << 10},
		{"1m", 1 << 20},
		{"1M", 1 << 20},
		{"1MiB", 1 << 20},
		{"1g", 1 << 30},
		{"1G", 1 << 30},
		{"1GiB", 1 << 30},
		{"2t", 2 << 40},
		{"2TiB", 2 << 40},
		{"8388607TiB", 8388607 << 40},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range good {
		got, err := scenarios.ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, want string }{
		{"4kb", `scenarios: bad size "4kb": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"", `scenarios: bad size "": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"KiB", `scenarios: bad size "KiB": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"4KB", `scenarios: bad size "4KB": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"4 KiB", `scenarios: bad size "4 KiB": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"-4k", `scenarios: bad size "-4k": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"+4k", `scenarios: bad size "+4k": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"1.5G", `scenarios: bad size "1.5G": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"0x10", `scenarios: bad size "0x10": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"4kk", `scenarios: bad size "4kk": want a number with unit B, k/K/KiB, M/MiB, G/GiB, T/TiB`},
		{"8388608TiB", `scenarios: bad size "8388608TiB": too large`},
		{"9223372036854775808", `scenarios: bad size "9223372036854775808": too large`},
		{"99999999999999999999", `scenarios: bad size "99999999999999999999": too large`},
	}
	for _, tt := range bad {
		_, err := scenarios.ParseSize(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSize(%q) error = %v, want %s", tt.in, err, tt.want)
		}
		if !errors.Is(err, scenarios.ErrInvalid) {
			t.Errorf("ParseSize(%q) error does not wrap ErrInvalid", tt.in)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   scenarios.Size
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{512, "512B"},
		{1536, "1536B"},
		{4096, "4KiB"},
		{4096 + 1024, "5KiB"},
		{256 * scenarios.KiB, "256KiB"},
		{1536 * scenarios.MiB, "1536MiB"},
		{scenarios.GiB, "1GiB"},
		{3 * scenarios.TiB, "3TiB"},
		{-4096, "-4KiB"},
		{math.MaxInt64, "9223372036854775807B"},
		{math.MinInt64, "-9223372036854775808B"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

// TestUnitsRoundTrip marshals sizes, durations and rates to YAML and JSON and
// back.
func TestUnitsRoundTrip(t *testing.T) {
	type units struct {
		Size     scenarios.Size     `yaml:"size" json:"size"`
		Duration scenarios.Duration `yaml:"duration" json:"duration"`
		Rate     scenarios.Rate     `yaml:"rate" json:"rate"`
	}
	tests := []struct {
		in       units
		wantYAML string
		wantJSON string
	}{
		{units{4 * scenarios.KiB, scenarios.Duration(30 * time.Second), 0},
			"size: 4KiB\nduration: 30s\nrate: unlimited\n", `{"size":"4KiB","duration":"30s","rate":0}`},
		{units{1536, scenarios.Duration(90 * time.Second), 5000},
			"size: 1536B\nduration: 1m30s\nrate: 5000\n", `{"size":"1536B","duration":"1m30s","rate":5000}`},
		{units{scenarios.GiB, scenarios.Duration(2 * time.Minute), 1},
			"size: 1GiB\nduration: 2m\nrate: 1\n", `{"size":"1GiB","duration":"2m","rate":1}`},
		{units{0, scenarios.Duration(time.Hour), 7},
			"size: 0B\nduration: 1h\nrate: 7\n", `{"size":"0B","duration":"1h","rate":7}`},
		{units{512, scenarios.Duration(500 * time.Millisecond), 0},
			"size: 512B\nduration: 500ms\nrate: unlimited\n", `{"size":"512B","duration":"500ms","rate":0}`},
		{units{3 * scenarios.TiB, scenarios.Duration(time.Hour + 30*time.Second), 0},
			"size: 3TiB\nduration: 1h0m30s\nrate: unlimited\n", `{"size":"3TiB","duration":"1h0m30s","rate":0}`},
	}
	for _, tt := range tests {
		y, err := yaml.Marshal(tt.in)
		if err != nil || string(y) != tt.wantYAML {
			t.Errorf("yaml.Marshal(%+v) = %q, %v; want %q", tt.in, y, err, tt.wantYAML)
		}
		var fromYAML units
		if err := yaml.Unmarshal(y, &fromYAML); err != nil || fromYAML != tt.in {
			t.Errorf("yaml.Unmarshal(%q) = %+v, %v; want %+v", y, fromYAML, err, tt.in)
		}
		j, err := json.Marshal(tt.in)
		if err != nil || string(j) != tt.wantJSON {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tt.in, j, err, tt.wantJSON)
		}
		var fromJSON units
		if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != tt.in {
			t.Errorf("json.Unmarshal(%s) = %+v, %v; want %+v", j, fromJSON, err, tt.in)
		}
	}
}

// TestUnitsJSONNumbers checks that JSON written by other tools, with plain
// numbers, is read too.
func TestUnitsJSONNumbers(t *testing.T) {
	var got struct {
		Size     scenarios.Size     `json:"size"`
		Duration scenarios.Duration `json:"duration"`
		Rate     scenarios.Rate     `json:"rate"`
		Word     scenarios.Rate     `json:"word"`
	}
	in := `{"size": 4096, "duration": ` + strconv.FormatInt(int64(30*time.Second), 10) + `, "rate": 100, "word": "unlimited"}`
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	if got.Size != 4*scenarios.KiB || got.Duration != scenarios.Duration(30*time.Second) || got.Rate != 100 || got.Word != scenarios.Unlimited {
		t.Errorf("json.Unmarshal(%s) = %+v", in, got)
	}
	for _, bad := range []string{`{"size": "4kb"}`, `{"size": true}`, `{"duration": "30"}`, `{"duration": [1]}`, `{"rate": "fast"}`, `{"rate": 1.5}`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil || !errors.Is(err, scenarios.ErrInvalid) {
			t.Errorf("json.Unmarshal(%s) error = %v, want one wrapping ErrInvalid", bad, err)
		}
	}
}
