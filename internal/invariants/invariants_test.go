//go:build race

package invariants

import "testing"

// TestEnabledUnderRace: `go test -race` (what CI runs) checks invariants.
func TestEnabledUnderRace(t *testing.T) {
	if !Enabled {
		t.Fatal("invariants.Enabled is false in a race build")
	}
}
