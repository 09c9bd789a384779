package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: store
// workers must stop at Destroy, and tests must join what they start.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
