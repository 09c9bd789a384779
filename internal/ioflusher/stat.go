package ioflusher

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// threadFlags is field 9 (flags) of /proc/self/task/<tid>/stat. The
// command name (field 2, in parentheses) may hold spaces and parentheses,
// so fields are counted after its last ')'.
func threadFlags(tid int) (uint64, error) {
	path := fmt.Sprintf("/proc/self/task/%d/stat", tid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseFlags(path, b)
}

func parseFlags(path string, b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	fields := bytes.Fields(b[i+1:])
	// After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags (9).
	if len(fields) < 7 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 7", path, len(fields))
	}
	flags, err := strconv.ParseUint(string(fields[6]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: flags: %w", path, err)
	}
	return flags, nil
}
