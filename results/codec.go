package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxDocumentBytes bounds the size of a document Decode accepts. A long run's
// series and histograms stay far below it.
const MaxDocumentBytes = 256 << 20

// Encode writes r to w as one indented JSON document followed by a newline.
// It fills in Schema when empty and refuses a result that fails Validate.
func Encode(w io.Writer, r *Result) error {
	b, err := marshal(r)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

func marshal(r *Result) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil result", ErrInvalid)
	}
	out := *r
	if out.Schema == "" {
		out.Schema = SchemaV1
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return append(b, '\n'), nil
}

// Decode reads one result document from rd. It refuses a schema other than
// SchemaV1, unknown fields, trailing data and results that fail Validate.
func Decode(rd io.Reader) (*Result, error) {
	data, err := io.ReadAll(io.LimitReader(rd, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("%w: document larger than %d bytes", ErrMalformed, MaxDocumentBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrMalformed)
	}
	// Check the schema first, leniently, so that a document from a newer
	// version fails with a version error rather than an unknown-field error.
	var head struct {
		Schema *string `json:"schema"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(data, err))
	}
	if head.Schema == nil {
		return nil, fmt.Errorf("%w: no \"schema\" field (want %q)", ErrSchema, SchemaV1)
	}
	if *head.Schema != SchemaV1 {
		return nil, fmt.Errorf("%w %q (this build reads %q)", ErrSchema, *head.Schema, SchemaV1)
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the result document", ErrMalformed)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// describeJSONError turns a decoding error into one line that says where the
// problem is.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := 1 + bytes.Count(data[:min(int(syn.Offset), len(data))], []byte("\n"))
		return fmt.Sprintf("line %d: %v", line, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("field %q: cannot store JSON %s in %s", typ.Field, typ.Value, typ.Type)
	}
	return err.Error()
}

// ReadFile decodes the result stored at path.
func ReadFile(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	defer f.Close()
	r, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// WriteFile encodes r to path atomically: it writes a temporary file in the
// same directory and renames it over path, so readers never see a partial
// document. A missing or unwritable directory gives one error line naming
// the path.
func WriteFile(path string, r *Result) error {
	b, err := marshal(r)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

func writeFileAtomic(path string, data []byte) error {
	tmpName, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("%w %s: %w", ErrWrite, path, err)
	}
	return nil
}

// writeTemp writes data, synced, to a hidden temporary file beside path and
// returns its name.
func writeTemp(path string, data []byte) (string, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", wrapped(fmt.Sprintf("%v %s: directory %s does not exist", ErrWrite, path, dir), ErrWrite, err)
		}
		return "", fmt.Errorf("%w %s: %w", ErrWrite, path, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%w %s: %s is not a directory", ErrWrite, path, dir)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", wrapped(fmt.Sprintf("%v %s: directory %s is not writable", ErrWrite, path, dir), ErrWrite, err)
		}
		return "", fmt.Errorf("%w %s: %w", ErrWrite, path, err)
	}
	tmpName := tmp.Name()
	fail := func(err error) (string, error) {
		tmp.Close()
		os.Remove(tmpName)
		return "", fmt.Errorf("%w %s: %w", ErrWrite, path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	// CreateTemp makes the file 0600; results are meant to be shared as CI
	// artifacts, so give them the usual mode before they become visible.
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return "", fmt.Errorf("%w %s: %w", ErrWrite, path, err)
	}
	return tmpName, nil
}

// wrappedError carries a message written for people and the errors it wraps
// for errors.Is, without repeating their text.
type wrappedError struct {
	msg  string
	errs []error
}

func (e *wrappedError) Error() string   { return e.msg }
func (e *wrappedError) Unwrap() []error { return e.errs }

func wrapped(msg string, errs ...error) error { return &wrappedError{msg: msg, errs: errs} }
