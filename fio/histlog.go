package fio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrHistLog reports a histogram log (write_hist_log) that cannot be read.
var ErrHistLog = errors.New("fio histogram log")

// MaxHistLogLines bounds the lines read from one histogram log: a day of
// one-second intervals in three directions.
const MaxHistLogLines = 3 * 86400

// maxHistLogLine bounds one line: PlatNr counts of up to 20 digits each.
const maxHistLogLine = PlatNr * 24

// HistSample is one line of a fio histogram log (write_hist_log with
// log_hist_msec): the completions of one direction in the window that
// ended at TimeMs (ms since the job started).
type HistSample struct {
	TimeMs int64
	// Dir is fio's data direction: 0 read, 1 write, 2 trim.
	Dir int
	// BS is the block size fio logged for the window, in bytes.
	BS int64
	// Count is the number of completions in the window (the sum of the
	// line's bins).
	Count int64
}

// ParseHistLog reads a fio histogram log. Each line is "msec, ddir, bs,"
// followed by PlatNr>>log_hist_coarseness bin counts; the counts of a line
// are the window's completions, not a running total.
func ParseHistLog(r io.Reader) ([]HistSample, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxHistLogLine)
	var out []HistSample
	line := 0
	for sc.Scan() {
		line++
		if line > MaxHistLogLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrHistLog, MaxHistLogLines)
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		nbins := len(fields) - 3
		if nbins < 1 || PlatNr%nbins != 0 || !powerOfTwo(PlatNr/nbins) || PlatNr/nbins > platVal {
			return nil, fmt.Errorf("%w: line %d: %d fields, want 3 and %d bins (or %d shifted right by log_hist_coarseness)", ErrHistLog, line, len(fields), PlatNr, PlatNr)
		}
		var vals [3]int64
		for i := range vals {
			v, err := strconv.ParseInt(strings.TrimSpace(fields[i]), 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: line %d: field %d %q is not a non-negative integer", ErrHistLog, line, i+1, strings.TrimSpace(fields[i]))
			}
			vals[i] = v
		}
		if vals[1] > 2 {
			return nil, fmt.Errorf("%w: line %d: data direction %d (want 0, 1 or 2)", ErrHistLog, line, vals[1])
		}
		s := HistSample{TimeMs: vals[0], Dir: int(vals[1]), BS: vals[2]}
		for i, f := range fields[3:] {
			c, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || c < 0 || s.Count+c < s.Count {
				return nil, fmt.Errorf("%w: line %d: bin %d %q is not a count", ErrHistLog, line, i, strings.TrimSpace(f))
			}
			s.Count += c
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrHistLog, line+1, err)
	}
	return out, nil
}

func powerOfTwo(n int) bool { return n > 0 && n&(n-1) == 0 }
