package bench

import (
	"fmt"
	"testing"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
)

// TestEventKindNames: every engine event kind has its own results constant,
// and that constant is the engine's name for it, so that results written
// before the constants existed read the same.
func TestEventKindNames(t *testing.T) {
	known := map[string]bool{
		results.EventLowFreeSpace: true,
		results.EventNoSpace:      true,
		results.EventOverflow:     true,
		results.EventCorrupted:    true,
	}
	seen := map[string]bool{}
	// The engine's kinds are numbered from 1; past the last one String
	// says "event(N)". The bound only stops a broken String from looping.
	for k := engine.EventKind(1); k < 64; k++ {
		if k.String() == fmt.Sprintf("event(%d)", int(k)) {
			break
		}
		got := eventKind(k)
		if got != k.String() {
			t.Errorf("engine kind %d: results kind %q, engine name %q", int(k), got, k.String())
		}
		if !known[got] {
			t.Errorf("engine kind %q has no results constant", k.String())
		}
		seen[got] = true
	}
	for name := range known {
		if !seen[name] {
			t.Errorf("results constant %q is no engine kind", name)
		}
	}
}
