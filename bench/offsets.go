package bench

import (
	"math/rand"

	"github.com/snapring/snapring/scenarios"
)

// offsetGen yields block-aligned offsets for one worker.
type offsetGen struct {
	bs         int64
	blocks     int64
	sequential bool
	seqStart   int64
	seqEnd     int64
	seqNext    int64
	loopsLeft  int // sequential passes left; -1 = forever
	rng        *rand.Rand
	zipf       *rand.Zipf
	hotBlocks  int64
	hotOps     float64
}

func newOffsetGen(w *scenarios.Workload, deviceBytes int64, worker, workers int, seed int64) *offsetGen {
	bs := int64(w.BlockSize)
	g := &offsetGen{bs: bs, blocks: deviceBytes / bs, rng: rand.New(rand.NewSource(seed))}
	if w.Pattern == scenarios.PatternSequential {
		g.sequential = true
		g.seqStart = g.blocks * int64(worker) / int64(workers)
		g.seqEnd = g.blocks * int64(worker+1) / int64(workers)
		g.seqNext = g.seqStart
		g.loopsLeft = w.Loops
		if w.Loops == 0 {
			g.loopsLeft = -1
		}
		return g
	}
	switch w.Distribution {
	case scenarios.DistributionZipf:
		g.zipf = rand.NewZipf(g.rng, w.ZipfTheta, 1, uint64(g.blocks-1))
	case scenarios.DistributionHotspot:
		hs := w.Hotspot
		g.hotBlocks = max(1, int64(float64(g.blocks)*hs.FractionOfSpace))
		g.hotOps = hs.FractionOfOps
	}
	return g
}

// next returns the next offset, or false when a sequential worker has made
// all its passes.
func (g *offsetGen) next() (int64, bool) {
	if g.sequential {
		if g.seqNext >= g.seqEnd {
			if g.loopsLeft > 0 {
				g.loopsLeft--
			}
			if g.loopsLeft == 0 || g.seqStart >= g.seqEnd {
				return 0, false
			}
			g.seqNext = g.seqStart
		}
		b := g.seqNext
		g.seqNext++
		return b * g.bs, true
	}
	switch {
	case g.zipf != nil:
		return int64(g.zipf.Uint64()) * g.bs, true
	case g.hotBlocks > 0:
		if g.rng.Float64() < g.hotOps || g.hotBlocks >= g.blocks {
			return g.rng.Int63n(g.hotBlocks) * g.bs, true
		}
		return (g.hotBlocks + g.rng.Int63n(g.blocks-g.hotBlocks)) * g.bs, true
	}
	return g.rng.Int63n(g.blocks) * g.bs, true
}
