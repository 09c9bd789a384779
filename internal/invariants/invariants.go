// Package invariants says whether expensive assertions are compiled in, as
// pebble's internal/invariants does: in builds with the invariants tag or
// the race detector (every `go test -race`), Enabled is true and code may
// check what must always hold, panicking when it does not; in ordinary
// builds it is false and the checks compile away.
package invariants
