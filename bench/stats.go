package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/results"
)

// nClasses is the number of results.Classes, the length of every per-class
// array.
const nClasses = 8

// intervalHists is one worker's latency since the controller last sampled
// it. The worker records into it once per batch of completions; the
// controller merges and resets it every series interval. Nothing allocates
// after the first operation of each class.
type intervalHists struct {
	mu    sync.Mutex
	hists [nClasses]*hdrhistogram.Histogram
}

// drainInto merges the worker's interval histograms into agg (allocating an
// aggregate per class once) and resets them.
func (iv *intervalHists) drainInto(agg *[nClasses]*hdrhistogram.Histogram) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	for i, h := range iv.hists {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if agg[i] == nil {
			agg[i] = results.NewHistogram()
		}
		agg[i].Merge(h)
		h.Reset()
	}
}

func classIndex(c results.Class) int {
	for i, k := range results.Classes {
		if k == c {
			return i
		}
	}
	panic("bench: unknown class " + string(c))
}

// classResults summarises each class the side recorded (an operation or
// an error) over the measured duration.
func (s *sideRun) classResults(elapsed time.Duration) map[results.Class]results.ClassResult {
	out := map[results.Class]results.ClassResult{}
	for i, c := range results.Classes {
		h := s.hists[i]
		if h == nil || h.TotalCount() == 0 && s.errs[i] == 0 {
			continue
		}
		out[c] = results.SummaryFromHistogram(h, s.errs[i], s.nbytes[i], elapsed)
	}
	return out
}

// sampleLatency collects every worker's latency since the last sample into
// agg, summarises it by class and resets it.
func (s *sideRun) sampleLatency(agg *[nClasses]*hdrhistogram.Histogram) map[results.Class]results.IntervalLatency {
	s.mu.Lock()
	ivs := s.intervals
	s.mu.Unlock()
	for _, iv := range ivs {
		iv.drainInto(agg)
	}
	var out map[results.Class]results.IntervalLatency
	for i, h := range agg {
		if h == nil || h.TotalCount() == 0 {
			continue
		}
		if out == nil {
			out = map[results.Class]results.IntervalLatency{}
		}
		out[results.Classes[i]] = results.IntervalLatency{P50Ns: h.ValueAtQuantile(50), P99Ns: h.ValueAtQuantile(99), MaxNs: h.Max()}
		h.Reset()
	}
	return out
}

// counters are the engine's statistics under the results' counter names,
// and the number of the side's events so far.
func counters(snap *engine.Snapshot, s *sideRun) map[string]int64 {
	st := snap.Stats()
	s.mu.Lock()
	nev := int64(len(s.events))
	s.mu.Unlock()
	return map[string]int64{
		results.CounterChunksCopied:      st.ChunksCopied,
		results.CounterChunksStored:      st.ChunksStored,
		results.CounterChunksFailed:      st.ChunksFailed,
		results.CounterStoreQueue:        st.ChunksInMemory,
		results.CounterDiffBytesUsed:     st.DiffUsedBytes,
		results.CounterDiffBytesCapacity: st.DiffCapacityBytes,
		results.CounterEvents:            nev,
		results.CounterEventsDropped:     st.EventsDropped,
	}
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

func sampleMemory(m *results.Memory) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapBytes = int64(ms.HeapAlloc)
	m.HeapPeakBytes = max(m.HeapPeakBytes, m.HeapBytes)
	rss, hwm := readRSS()
	m.RSSBytes = rss
	m.RSSPeakBytes = max(m.RSSPeakBytes, hwm, rss)
}

func readRSS() (rss, hwm int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || key != "VmRSS" && key != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}
