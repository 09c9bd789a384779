package ci

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/snapring/snapring/results"
)

// Outputs names the files a comparison writes besides its text on stdout.
// Any combination may be asked for at once; empty means not written.
type Outputs struct {
	Markdown string
	JUnit    string
	JSON     string
	// BenchmarkAction gets github-action-benchmark's customSmallerIsBetter
	// entries (latencies), BenchmarkActionBigger its customBiggerIsBetter
	// ones (throughputs).
	BenchmarkAction       string
	BenchmarkActionBigger string
	// HTMLDir gets index.html (the verdicts), and per scenario the HTML
	// report of each side and, with PNG, its plots as PNG files. It must not
	// exist or be empty.
	HTMLDir string
	PNG     bool
}

func (o Outputs) files() []struct{ flag, path string } {
	return []struct{ flag, path string }{
		{"--markdown", o.Markdown}, {"--junit", o.JUnit}, {"--json", o.JSON},
		{"--benchmark-action", o.BenchmarkAction}, {"--benchmark-action-bigger", o.BenchmarkActionBigger},
	}
}

// Check validates the outputs before anything is measured or written: each
// file's directory exists, no file is a directory, none is named twice and
// none lies inside an input (a results directory is never written into).
func (o Outputs) Check(inputs ...string) error {
	seen := map[string]string{}
	for _, f := range o.files() {
		if f.path == "" {
			continue
		}
		abs, err := filepath.Abs(f.path)
		if err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrOutput, f.flag, f.path, err)
		}
		if other, dup := seen[abs]; dup {
			return fmt.Errorf("%w: %s and %s name the same file %s", ErrOutput, other, f.flag, f.path)
		}
		seen[abs] = f.flag
		if fi, err := os.Stat(f.path); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s %s exists and is not a regular file", ErrOutput, f.flag, f.path)
		}
		if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: %s %s: directory %s does not exist", ErrOutput, f.flag, f.path, filepath.Dir(f.path))
		}
		for _, in := range inputs {
			if inAbs, err := filepath.Abs(in); err == nil && (abs == inAbs || strings.HasPrefix(abs, inAbs+string(filepath.Separator))) {
				return fmt.Errorf("%w: %s %s is inside the input %s, which is never written to", ErrOutput, f.flag, f.path, in)
			}
		}
	}
	if o.PNG && o.HTMLDir == "" {
		return fmt.Errorf("%w: --png needs --html DIR", ErrOutput)
	}
	if o.HTMLDir != "" {
		if err := CheckOutDir(o.HTMLDir); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
		for _, in := range inputs {
			a, _ := filepath.Abs(o.HTMLDir)
			b, _ := filepath.Abs(in)
			if a == b || strings.HasPrefix(a, b+string(filepath.Separator)) {
				return fmt.Errorf("%w: --html %s is inside the input %s", ErrOutput, o.HTMLDir, in)
			}
		}
	}
	return nil
}

// Write writes every output asked for, each atomically, and returns the
// paths written.
func (o Outputs) Write(rep *Report, base, newSet *Set) ([]string, error) {
	var written []string
	smaller, bigger := rep.BenchmarkAction()
	writers := map[string]func(w io.Writer) error{
		"--markdown":                rep.WriteMarkdown,
		"--junit":                   rep.WriteJUnit,
		"--json":                    rep.WriteJSON,
		"--benchmark-action":        func(w io.Writer) error { return writeJSONList(w, smaller) },
		"--benchmark-action-bigger": func(w io.Writer) error { return writeJSONList(w, bigger) },
	}
	for _, f := range o.files() {
		if f.path == "" {
			continue
		}
		var buf bytes.Buffer
		if err := writers[f.flag](&buf); err != nil {
			return written, err
		}
		if err := writeFileAtomic(f.path, buf.Bytes()); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	if o.HTMLDir != "" {
		files, err := writeHTMLDir(o.HTMLDir, o.PNG, rep, base, newSet)
		written = append(written, files...)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>snapring ci: {{.Rep.Suite}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,td:last-child{text-align:left}.regression{background:#fdd}.refused{background:#ffd}.improvement{background:#dfd}</style></head>
<body><h1>snapring ci: {{.Rep.Summary}}</h1>
<p>{{.Settings}}</p>
{{range .Rep.Errors}}<p><b>error:</b> {{.}}</p>{{end}}
{{range .Rep.Warnings}}<p><b>warning:</b> {{.}}</p>{{end}}
{{range .Scenarios}}<h2>{{.Name}}</h2>
<p>base {{.BaseRuns}} runs (<a href="{{.BaseHTML}}">report</a>), new {{.NewRuns}} runs (<a href="{{.NewHTML}}">report</a>){{range .PNGs}} · <a href="{{.}}">{{.}}</a>{{end}}</p>
{{if .Error}}<p><b>error:</b> {{.Error}}</p>{{end}}
<table><tr><th>metric</th><th>gate</th><th>base</th><th>new</th><th>change</th><th>p</th><th>CV base/new</th><th>threshold</th><th>verdict</th><th>reason</th></tr>
{{range .Rows}}<tr class="{{.Class}}">{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
</body></html>
`))

type htmlScenario struct {
	Name              string
	BaseRuns, NewRuns int
	BaseHTML, NewHTML string
	PNGs              []string
	Error             string
	Rows              []struct {
		Class string
		Cells []string
	}
}

func writeHTMLDir(dir string, png bool, rep *Report, base, newSet *Set) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: --html %s: %v", ErrOutput, dir, err)
	}
	var written []string
	data := struct {
		Rep       *Report
		Settings  string
		Scenarios []htmlScenario
	}{Rep: rep, Settings: rep.settings()}
	for _, sr := range rep.Scenarios {
		hs := htmlScenario{Name: sr.Name, BaseRuns: sr.BaseRuns, NewRuns: sr.NewRuns, Error: sr.Error}
		name := safeName(sr.Name)
		for _, side := range []struct {
			label string
			runs  []*results.Result
			link  *string
		}{{"base", base.Results[sr.Name], &hs.BaseHTML}, {"new", newSet.Results[sr.Name], &hs.NewHTML}} {
			if len(side.runs) == 0 {
				continue
			}
			file := name + "-" + side.label + ".html"
			opts := results.ReportOptions{Title: fmt.Sprintf("snapring ci: %s, %s", sr.Name, side.label)}
			if err := results.WriteHTMLFile(filepath.Join(dir, file), side.runs, opts); err != nil {
				return written, err
			}
			*side.link = file
			written = append(written, filepath.Join(dir, file))
			if png && side.label == "new" {
				pngDir := filepath.Join(dir, name+"-new-png")
				if err := os.Mkdir(pngDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
					return written, fmt.Errorf("%w: %v", ErrOutput, err)
				}
				files, err := results.WritePNGs(pngDir, side.runs, opts)
				written = append(written, files...)
				if err != nil {
					return written, err
				}
				for _, f := range files {
					rel, _ := filepath.Rel(dir, f)
					hs.PNGs = append(hs.PNGs, rel)
				}
			}
		}
		for _, m := range sr.Metrics {
			gate := "no"
			if m.Gate {
				gate = "yes"
			}
			hs.Rows = append(hs.Rows, struct {
				Class string
				Cells []string
			}{string(m.Outcome), []string{m.Name(), gate, formatStat(m, m.Base), formatStat(m, m.New), formatChange(m), formatP(m),
				fmt.Sprintf("%.1f%% / %.1f%%", m.CVBasePct, m.CVNewPct), fmt.Sprintf("%g%%", m.ThresholdPct), verdictWord(m), m.Reason}})
		}
		data.Scenarios = append(data.Scenarios, hs)
	}
	var buf bytes.Buffer
	if err := indexTemplate.Execute(&buf, data); err != nil {
		return written, fmt.Errorf("%w: %v", ErrOutput, err)
	}
	index := filepath.Join(dir, "index.html")
	if err := writeFileAtomic(index, buf.Bytes()); err != nil {
		return written, err
	}
	return append([]string{index}, written...), nil
}
