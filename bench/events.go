package bench

import (
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
)

// eventKind is the results Event kind of an engine event: the results
// schema's name for it, which is the engine's own (EventKind's String). A
// kind the schema does not know yet keeps the engine's name.
func eventKind(k engine.EventKind) string {
	switch k {
	case engine.EventLowFreeSpace:
		return results.EventLowFreeSpace
	case engine.EventNoSpace:
		return results.EventNoSpace
	case engine.EventOverflow:
		return results.EventOverflow
	case engine.EventCorrupted:
		return results.EventCorrupted
	}
	return k.String()
}
