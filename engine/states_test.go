package engine

import (
	"testing"

	"github.com/snapring/snapring/internal/invariants"
)

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

// TestRequestTransitions: the request state machine allows exactly the
// edges of doc.go's diagram, and (with invariants on) panics on the others.
func TestRequestTransitions(t *testing.T) {
	if !invariants.Enabled {
		t.Skip("invariants are off in this build (run with -race or -tags invariants)")
	}
	legal := map[[2]reqState]bool{
		{reqIdle, reqActive}: true, {reqActive, reqParked}: true, {reqActive, reqIssued}: true,
		{reqActive, reqDone}: true, {reqParked, reqActive}: true, {reqParked, reqDone}: true,
		{reqIssued, reqPunching}: true, {reqIssued, reqDone}: true, {reqPunching, reqDone}: true,
		{reqDone, reqIdle}: true,
	}
	for from := reqIdle; from <= reqDone; from++ {
		for to := reqIdle; to <= reqDone; to++ {
			r := &Request{Op: OpImageRead, state: from}
			if got := !panics(func() { r.to(to) }); got != legal[[2]reqState{from, to}] {
				t.Errorf("%s -> %s: allowed %v, want %v", from, to, got, !got)
			}
		}
	}
}

// TestChunkTransitions: likewise for chunks, and a transition without the
// chunk's lock panics.
func TestChunkTransitions(t *testing.T) {
	if !invariants.Enabled {
		t.Skip("invariants are off in this build (run with -race or -tags invariants)")
	}
	legal := map[[2]chunkState]bool{
		{stateNew, stateLoading}: true, {stateNew, stateInMemory}: true,
		{stateLoading, stateInMemory}: true, {stateLoading, stateNew}: true, {stateLoading, stateFailed}: true,
		{stateInMemory, stateStoring}: true,
		{stateStoring, stateStored}:   true, {stateStoring, stateInMemory}: true, {stateStoring, stateFailed}: true,
		{stateStored, stateLoading}: true,
	}
	for from := stateNew; from <= stateFailed; from++ {
		for to := stateNew; to <= stateFailed; to++ {
			c := &chunk{state: from}
			c.mu.Lock()
			got := !panics(func() { c.to(to) })
			c.mu.Unlock()
			if got != legal[[2]chunkState{from, to}] {
				t.Errorf("%s -> %s: allowed %v, want %v", from, to, got, !got)
			}
		}
	}
	c := &chunk{}
	if !panics(func() { c.to(stateLoading) }) {
		t.Error("a transition without the chunk's lock did not panic")
	}
}
