package fio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// MaxOutputBytes bounds the fio output Parse accepts. One job's json+ has at
// most PlatNr bins per direction (about 40 KiB); many jobs and hosts stay
// far below this.
const MaxOutputBytes = 64 << 20

// ErrOutput reports fio output that is not a complete json+ document we can
// use: no JSON, truncated, wrong types, missing histograms, a job error.
var ErrOutput = errors.New("fio output")

// Output is the part of fio's --output-format=json+ document snapring uses.
// In client/server mode (fio --client) the jobs come from "client_stats",
// each with the host and port of the server that ran it; fio's own
// "All clients" sum is dropped (it has no histogram).
type Output struct {
	// Version is fio's version string ("fio-3.33").
	Version string
	Jobs    []Job
}

// Job is one job (one thread or process of a job section) as fio reports it.
type Job struct {
	Name string
	// Host and Port are the fio server's, in client/server mode; empty
	// when fio ran locally.
	Host  string
	Port  int
	Read  Dir
	Write Dir
	Trim  Dir
}

// Dir is one data direction of a job. Latencies are nanoseconds, bandwidth
// bytes per second.
type Dir struct {
	IOBytes   int64
	BWBytes   int64
	IOPS      float64
	RuntimeMs int64
	TotalIOs  int64
	// LatKind says which latency the histogram holds: "clat" (completion
	// latency, clat_ns, fio's default) or "lat" (lat_ns: submission to
	// completion, when the job sets lat_percentiles=1 and
	// clat_percentiles=0).
	LatKind string
	Lat     Latency
}

// Latency is one of fio's latency records with its json+ histogram.
type Latency struct {
	MinNs  int64
	MaxNs  int64
	MeanNs float64
	N      int64
	// Percentiles are fio's printed percentiles, in increasing order.
	Percentiles []Percentile
	// Bins are the json+ bins in increasing order of midpoint; their
	// counts add up to N.
	Bins []Bin
}

// Percentile is one of fio's printed percentiles: P in percent, the value
// in ns (the midpoint of the bin it falls in).
type Percentile struct {
	P  float64
	Ns int64
}

// Bin is one json+ histogram bin: its midpoint (fio's plat_idx_to_val) and
// how many samples fell into it.
type Bin struct {
	MidNs uint64
	Count int64
}

type rawOutput struct {
	Version     *string  `json:"fio version"`
	Jobs        []rawJob `json:"jobs"`
	ClientStats []rawJob `json:"client_stats"`
}

type rawJob struct {
	Name     string  `json:"jobname"`
	Error    int     `json:"error"`
	Hostname string  `json:"hostname"`
	Port     int     `json:"port"`
	Read     *rawDir `json:"read"`
	Write    *rawDir `json:"write"`
	Trim     *rawDir `json:"trim"`
}

type rawDir struct {
	IOBytes  int64   `json:"io_bytes"`
	BWBytes  int64   `json:"bw_bytes"`
	IOPS     float64 `json:"iops"`
	Runtime  int64   `json:"runtime"`
	TotalIOs int64   `json:"total_ios"`
	Clat     *rawLat `json:"clat_ns"`
	Lat      *rawLat `json:"lat_ns"`
}

type rawLat struct {
	Min        int64            `json:"min"`
	Max        int64            `json:"max"`
	Mean       float64          `json:"mean"`
	N          int64            `json:"N"`
	Percentile map[string]int64 `json:"percentile"`
	Bins       map[string]int64 `json:"bins"`
}

// allClients is the jobname of fio's sum over all clients.
const allClients = "All clients"

// Parse decodes fio's --output-format=json+ output. Text before the
// document (fio's warnings, the client's "<host> ..." lines) is skipped;
// anything after it is ignored. Every error wraps ErrOutput and is one
// line.
func Parse(data []byte) (*Output, error) {
	if len(data) > MaxOutputBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrOutput, MaxOutputBytes)
	}
	start := -1
	if len(data) > 0 && data[0] == '{' {
		start = 0
	} else if i := bytes.Index(data, []byte("\n{")); i >= 0 {
		start = i + 1
	}
	if start < 0 {
		return nil, fmt.Errorf("%w: no JSON document (want fio --output-format=json+)", ErrOutput)
	}
	var raw rawOutput
	dec := json.NewDecoder(bytes.NewReader(data[start:]))
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated JSON document", ErrOutput)
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line := 1 + bytes.Count(data[:start+int(min(syn.Offset, int64(len(data)-start)))], []byte("\n"))
			return nil, fmt.Errorf("%w: line %d: %v", ErrOutput, line, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrOutput, err)
	}
	if raw.Version == nil {
		return nil, fmt.Errorf("%w: no \"fio version\" field", ErrOutput)
	}
	if !strings.HasPrefix(*raw.Version, "fio-") {
		return nil, fmt.Errorf("%w: \"fio version\" is %q, want fio-N.N", ErrOutput, *raw.Version)
	}
	out := &Output{Version: *raw.Version}
	jobs := raw.Jobs
	if len(raw.ClientStats) > 0 {
		if len(jobs) > 0 {
			return nil, fmt.Errorf("%w: both \"jobs\" and \"client_stats\"", ErrOutput)
		}
		jobs = raw.ClientStats
	}
	for i, rj := range jobs {
		if rj.Name == allClients && len(raw.ClientStats) > 0 {
			continue
		}
		if rj.Error != 0 {
			where := ""
			if rj.Hostname != "" {
				where = fmt.Sprintf(" on %s:%d", rj.Hostname, rj.Port)
			}
			return nil, fmt.Errorf("%w: job %q%s failed with error %d (%v)", ErrOutput, rj.Name, where, rj.Error, syscall.Errno(max(rj.Error, 0)))
		}
		j := Job{Name: rj.Name, Host: rj.Hostname, Port: rj.Port}
		for _, d := range []struct {
			name string
			raw  *rawDir
			dst  *Dir
		}{{"read", rj.Read, &j.Read}, {"write", rj.Write, &j.Write}, {"trim", rj.Trim, &j.Trim}} {
			if d.raw == nil {
				continue
			}
			if err := d.raw.convert(d.dst); err != nil {
				return nil, fmt.Errorf("%w: jobs[%d] %q %s: %s", ErrOutput, i, rj.Name, d.name, err)
			}
		}
		out.Jobs = append(out.Jobs, j)
	}
	if len(out.Jobs) == 0 {
		return nil, fmt.Errorf("%w: no jobs", ErrOutput)
	}
	return out, nil
}

func (r *rawDir) convert(d *Dir) error {
	if r.IOBytes < 0 || r.BWBytes < 0 || r.Runtime < 0 || r.TotalIOs < 0 || !(r.IOPS >= 0) || math.IsInf(r.IOPS, 0) {
		return errors.New("negative or non-finite io_bytes, bw_bytes, iops, runtime or total_ios")
	}
	*d = Dir{IOBytes: r.IOBytes, BWBytes: r.BWBytes, IOPS: r.IOPS, RuntimeMs: r.Runtime, TotalIOs: r.TotalIOs}
	// fio puts the histogram in clat_ns unless the job asked for total
	// latency percentiles only.
	lat, kind := r.Clat, "clat"
	if (lat == nil || lat.Bins == nil) && r.Lat != nil && r.Lat.Bins != nil {
		lat, kind = r.Lat, "lat"
	}
	if lat == nil {
		if r.TotalIOs > 0 {
			return errors.New("no clat_ns")
		}
		return nil
	}
	d.LatKind = kind
	l, err := lat.convert()
	if err != nil {
		return fmt.Errorf("%s_ns: %s", kind, err)
	}
	d.Lat = l
	return nil
}

func (r *rawLat) convert() (Latency, error) {
	l := Latency{MinNs: r.Min, MaxNs: r.Max, MeanNs: r.Mean, N: r.N}
	if r.Min < 0 || r.Max < r.Min || r.N < 0 || !(r.Mean >= 0) || math.IsInf(r.Mean, 0) {
		return l, errors.New("negative or inconsistent min, max, mean or N")
	}
	if r.N == 0 {
		return l, nil
	}
	if r.Bins == nil {
		return l, errors.New("no bins: run fio with --output-format=json+")
	}
	var sum int64
	for k, c := range r.Bins {
		v, err := strconv.ParseUint(k, 10, 64)
		if err != nil || !isBinMidpoint(v) {
			return l, fmt.Errorf("bin %q is not one of fio's bin midpoints", k)
		}
		if c < 0 || sum+c < sum {
			return l, fmt.Errorf("bin %q: bad count %d", k, c)
		}
		sum += c
		if c > 0 {
			l.Bins = append(l.Bins, Bin{MidNs: v, Count: c})
		}
	}
	if sum != r.N {
		return l, fmt.Errorf("bins hold %d samples, N is %d", sum, r.N)
	}
	slices.SortFunc(l.Bins, func(a, b Bin) int { return cmpUint(a.MidNs, b.MidNs) })
	for k, v := range r.Percentile {
		p, err := strconv.ParseFloat(k, 64)
		if err != nil || !(p > 0 && p <= 100) || v < 0 {
			return l, fmt.Errorf("percentile %q: %d is not a percentile in (0, 100] with a non-negative value", k, v)
		}
		l.Percentiles = append(l.Percentiles, Percentile{P: p, Ns: v})
	}
	slices.SortFunc(l.Percentiles, func(a, b Percentile) int {
		switch {
		case a.P < b.P:
			return -1
		case a.P > b.P:
			return 1
		}
		return 0
	})
	return l, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
