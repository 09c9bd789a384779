package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// builtinFS holds the built-in scenarios, one YAML file each, named after the
// scenario.
//
//go:embed builtin/*.yaml
var builtinFS embed.FS

// BuiltinNames returns the names of the built-in scenarios, sorted.
func BuiltinNames() []string {
	entries, err := fs.ReadDir(builtinFS, "builtin")
	if err != nil {
		panic("scenarios: embedded builtin directory missing: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// BuiltinSource returns the YAML of the built-in scenario name, as written,
// comments included (for `snapring scenarios show NAME`).
func BuiltinSource(name string) ([]byte, error) {
	if !slices.Contains(BuiltinNames(), name) {
		return nil, fmt.Errorf("%w %q (have %s)", ErrNoBuiltin, name, strings.Join(BuiltinNames(), ", "))
	}
	return builtinFS.ReadFile(path.Join("builtin", name+".yaml"))
}

// Builtin returns the built-in scenario name, parsed and validated. Its errors
// name the file as "builtin/NAME.yaml".
func Builtin(name string) (*Scenario, error) {
	data, err := BuiltinSource(name)
	if err != nil {
		return nil, err
	}
	return Parse(path.Join("builtin", name+".yaml"), data)
}
