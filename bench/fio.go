package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// FioResult is the part of fio's JSON output (--output-format=json) we use.
type FioResult struct {
	FioVersion string `json:"fio version"`
	Jobs       []struct {
		JobName string     `json:"jobname"`
		Error   int        `json:"error"`
		Read    FioJobSide `json:"read"`
		Write   FioJobSide `json:"write"`
	} `json:"jobs"`
}

// FioJobSide is one direction of a fio job.
type FioJobSide struct {
	IOBytes   int64   `json:"io_bytes"`
	IOPS      float64 `json:"iops"`
	RuntimeMs int64   `json:"runtime"`
	TotalIOs  int64   `json:"total_ios"`
}

// ErrFioOutput means fio's output could not be understood.
var ErrFioOutput = errors.New("bench: fio output")

// ParseFio decodes fio's JSON output. fio may print warnings before the
// JSON document; they are skipped.
func ParseFio(out []byte) (*FioResult, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return nil, fmt.Errorf("%w: no JSON document", ErrFioOutput)
	}
	var r FioResult
	if err := json.Unmarshal(out[i:], &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFioOutput, err)
	}
	if len(r.Jobs) == 0 {
		return nil, fmt.Errorf("%w: no jobs", ErrFioOutput)
	}
	for _, j := range r.Jobs {
		if j.Error != 0 {
			return nil, fmt.Errorf("%w: job %q failed with error %d", ErrFioOutput, j.JobName, j.Error)
		}
	}
	return &r, nil
}

// IOPS sums the IOPS of all jobs in both directions.
func (r *FioResult) IOPS() float64 {
	var s float64
	for _, j := range r.Jobs {
		s += j.Read.IOPS + j.Write.IOPS
	}
	return s
}

// RunFio runs fio with ioengine=io_uring on the same load as cfg.
func RunFio(cfg RawConfig) (*FioResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, err := exec.LookPath("fio")
	if err != nil {
		return nil, errors.New("bench: fio not found: apt-get install fio (make bench-uring installs it)")
	}
	rw := "read"
	if cfg.Write {
		rw = "write"
	}
	if cfg.Random {
		rw = "rand" + rw
	}
	args := []string{
		"--name=snapring-baseline", "--filename=" + cfg.Path, "--ioengine=io_uring",
		"--rw=" + rw, "--bs=" + strconv.Itoa(cfg.BlockSize), "--iodepth=" + strconv.Itoa(cfg.QueueDepth),
		"--time_based", "--runtime=" + strconv.FormatInt(int64(cfg.Duration/time.Millisecond), 10) + "ms",
		"--fixedbufs", "--registerfiles", "--randrepeat=0", "--norandommap",
		"--output-format=json",
	}
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("bench: fio %v: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("bench: fio: %w", err)
	}
	return ParseFio(out)
}
