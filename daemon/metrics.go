package daemon

import (
	"math/bits"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/engine"
	"github.com/snapring/snapring/ublk"
	"github.com/snapring/snapring/uring"
)

// metrics is the daemon's Prometheus registry (only when metrics are on).
// Engine and device figures are read at scrape time; the only cost on the
// data path is the ublk targets' Observer (ublk.Observer): per request two
// clock reads and a few uncontended atomic adds into the queue's own shard
// of its device's counters (deviceMetrics), with no lock and no allocation.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	eventsTotal *prometheus.CounterVec
	takeSeconds *prometheus.HistogramVec

	mu      sync.Mutex
	devices map[uint64]*deviceMetrics
}

// Latency histograms have fixed power-of-two buckets: upper bounds of
// 2^latencyMinShift ns (1.024 µs) doubling up to 2^(latencyMinShift+
// latencyBuckets-1) ns (1.07 s), then +Inf, so that finding a request's
// bucket is one bits.Len64.
const (
	latencyMinShift = 10
	latencyBuckets  = 21 // finite buckets
)

// latencyHist is a fixed-bucket histogram of durations, added to with
// atomics only and summed at scrape time.
type latencyHist struct {
	counts [latencyBuckets + 1]atomic.Uint64 // non-cumulative; the last is beyond the largest bound
	sumNs  atomic.Uint64
}

func latencyBucket(ns uint64) int {
	if ns <= 1<<latencyMinShift {
		return 0
	}
	return min(bits.Len64(ns-1)-latencyMinShift, latencyBuckets)
}

func (h *latencyHist) observe(d time.Duration) {
	ns := uint64(max(d, 0))
	h.counts[latencyBucket(ns)].Add(1)
	h.sumNs.Add(ns)
}

// latencySum accumulates shards' histograms for one scrape.
type latencySum struct {
	counts [latencyBuckets + 1]uint64
	sumNs  uint64
}

func (s *latencySum) add(h *latencyHist) {
	for i := range h.counts {
		s.counts[i] += h.counts[i].Load()
	}
	s.sumNs += h.sumNs.Load()
}

// metric renders the sum as a Prometheus histogram (cumulative buckets, in
// seconds).
func (s *latencySum) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, latencyBuckets)
	var cum uint64
	for i := 0; i < latencyBuckets; i++ {
		cum += s.counts[i]
		buckets[float64(uint64(1)<<(latencyMinShift+i))/1e9] = cum
	}
	cum += s.counts[latencyBuckets]
	return prometheus.MustNewConstHistogram(desc, cum, float64(s.sumNs)/1e9, buckets, labels...)
}

// Image read sources, as labels (engine.Source bits in this order).
var imageSources = [...]string{"original", "memory", "diff"}

// queueMetrics are one ublk queue's share of a device's counters: only that
// queue's goroutine adds to them.
type queueMetrics struct {
	writes, writeBytes, reads, readBytes  atomic.Int64
	flushes, discards, zeroes, originErrs atomic.Int64
	writeLatency                          latencyHist

	imageReads                  [len(imageSources)]atomic.Int64 // by source; a read across chunks counts under each it used
	imageReadBytes, imageWrites atomic.Int64
	imageWriteBytes, imageErrs  atomic.Int64
	imageReadLatency            latencyHist
	_                           [64]byte // keeps the next queue's counters off this one's cache lines
}

// deviceMetrics are one origin device's request counters (its image's
// included), one shard per ublk queue.
type deviceMetrics struct {
	path   string
	queues []queueMetrics
}

func (m *deviceMetrics) shard(queue int) *queueMetrics {
	if uint(queue) >= uint(len(m.queues)) {
		queue = 0 // the driver never gives more queues than asked for
	}
	return &m.queues[queue]
}

// observeOrigin counts a completed origin request (on its queue's goroutine).
func (m *deviceMetrics) observeOrigin(queue int, r *engine.Request, elapsed time.Duration) {
	q := m.shard(queue)
	if r.Err != nil {
		q.originErrs.Add(1)
	}
	switch r.Op {
	case engine.OpOriginWrite:
		q.writes.Add(1)
		q.writeBytes.Add(r.Bytes())
		q.writeLatency.observe(elapsed)
	case engine.OpOriginRead:
		q.reads.Add(1)
		q.readBytes.Add(r.Bytes())
	case engine.OpOriginFlush:
		q.flushes.Add(1)
	case engine.OpOriginDiscard:
		q.discards.Add(1)
	case engine.OpOriginWriteZeroes:
		q.zeroes.Add(1)
	}
}

// observeImage counts a completed image request (on its queue's goroutine).
func (m *deviceMetrics) observeImage(queue int, r *engine.Request, elapsed time.Duration) {
	q := m.shard(queue)
	if r.Err != nil {
		q.imageErrs.Add(1)
	}
	switch r.Op {
	case engine.OpImageRead:
		for i := range imageSources {
			if r.Source&(1<<i) != 0 {
				q.imageReads[i].Add(1)
			}
		}
		q.imageReadBytes.Add(int64(len(r.Buf)))
		q.imageReadLatency.observe(elapsed)
	case engine.OpImageWrite:
		q.imageWrites.Add(1)
		q.imageWriteBytes.Add(int64(len(r.Buf)))
	}
}

func (m *deviceMetrics) originObserver() ublk.Observer {
	return func(q *ublk.Queue, r *engine.Request, elapsed time.Duration) { m.observeOrigin(q.ID(), r, elapsed) }
}

func (m *deviceMetrics) imageObserver() ublk.Observer {
	return func(q *ublk.Queue, r *engine.Request, elapsed time.Duration) { m.observeImage(q.ID(), r, elapsed) }
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), devices: map[uint64]*deviceMetrics{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapring_api_requests_total",
		Help: "API requests by route and HTTP status."}, []string{"route", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "snapring_api_request_duration_seconds",
		Help: "API request duration by route.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"route"})
	m.eventsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapring_events_total",
		Help: "Events raised, by kind."}, []string{"kind"})
	m.takeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "snapring_snapshot_take_duration_seconds",
		Help:    "Time from a take request to taken, by whether file systems were frozen.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"freeze"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapring_build_info", Help: "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version(), "goversion": runtime.Version()}})
	build.Set(1)
	kicks := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "snapring_iowq_kicks_total",
		Help: "Waits that saw nothing complete for 50 ms and woke io-wq (see uring's doc); normally 0."},
		func() float64 { return float64(uring.Kicks()) })
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "snapring_event_subscribers",
		Help: "Event streams connected."}, func() float64 { return float64(d.events.subscribers()) })
	m.reg.MustRegister(m.requests, m.latency, m.eventsTotal, m.takeSeconds, build, kicks, subs,
		&stateCollector{d: d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, k := range api.EventKinds {
		m.eventsTotal.WithLabelValues(k)
	}
	return m
}

func (m *metrics) device(id uint64, path string, queues int) *deviceMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	dm := &deviceMetrics{path: path, queues: make([]queueMetrics, max(queues, 1))}
	m.devices[id] = dm
	return dm
}

func (m *metrics) dropDevice(id uint64) {
	m.mu.Lock()
	delete(m.devices, id)
	m.mu.Unlock()
}

func (m *metrics) dropSnapshot(uint64) {} // read at scrape time: nothing kept

var (
	devL  = []string{"device"}
	snapL = []string{"snapshot"}
	sdL   = []string{"snapshot", "device"}

	descDevices     = prometheus.NewDesc("snapring_devices", "Origin devices served.", nil, nil)
	descSnapshots   = prometheus.NewDesc("snapring_snapshots", "Snapshots alive.", nil, nil)
	descWrites      = prometheus.NewDesc("snapring_origin_writes_total", "Origin write requests completed.", devL, nil)
	descWriteBytes  = prometheus.NewDesc("snapring_origin_write_bytes_total", "Bytes written to origins.", devL, nil)
	descReads       = prometheus.NewDesc("snapring_origin_reads_total", "Origin read requests completed.", devL, nil)
	descReadBytes   = prometheus.NewDesc("snapring_origin_read_bytes_total", "Bytes read from origins.", devL, nil)
	descFlushes     = prometheus.NewDesc("snapring_origin_flushes_total", "Origin flush requests completed.", devL, nil)
	descDiscards    = prometheus.NewDesc("snapring_origin_discards_total", "Origin discard and write-zeroes requests completed.", devL, nil)
	descOriginErrs  = prometheus.NewDesc("snapring_origin_errors_total", "Origin requests that failed.", devL, nil)
	descWriteLat    = prometheus.NewDesc("snapring_origin_write_duration_seconds", "Origin write time in the engine (copy-on-write included), from the ublk target receiving it to its completion.", devL, nil)
	descImageReads  = prometheus.NewDesc("snapring_image_reads_total", "Image read requests by where the data came from (original, memory: a chunk buffer, diff: the difference storage); a read across chunks counts under each source it used.", []string{"device", "source"}, nil)
	descImageRBytes = prometheus.NewDesc("snapring_image_read_bytes_total", "Bytes read from images.", devL, nil)
	descImageWrites = prometheus.NewDesc("snapring_image_writes_total", "Image write requests completed.", devL, nil)
	descImageWBytes = prometheus.NewDesc("snapring_image_write_bytes_total", "Bytes written to images.", devL, nil)
	descImageErrs   = prometheus.NewDesc("snapring_image_errors_total", "Image requests that failed (a corrupted or destroyed snapshot: EIO).", devL, nil)
	descImageLat    = prometheus.NewDesc("snapring_image_read_duration_seconds", "Image read time in the engine, from the ublk target receiving it to its completion.", devL, nil)
	descCopied      = prometheus.NewDesc("snapring_snapshot_chunks_copied_total", "Chunks copied on write.", sdL, nil)
	descStored      = prometheus.NewDesc("snapring_snapshot_chunks_stored_total", "Chunks written to the difference storage.", sdL, nil)
	descFailed      = prometheus.NewDesc("snapring_snapshot_chunks_failed_total", "Chunks that failed (the image is corrupted).", sdL, nil)
	descInMemory    = prometheus.NewDesc("snapring_snapshot_chunks_in_memory", "Chunk buffers in use: loading, waiting for the store, being stored.", sdL, nil)
	descStoreQueue  = prometheus.NewDesc("snapring_snapshot_store_queue_depth", "Chunks waiting for a store worker (one queue for all the snapshot's devices).", snapL, nil)
	descUsed        = prometheus.NewDesc("snapring_snapshot_storage_used_bytes", "Difference storage used.", snapL, nil)
	descCapacity    = prometheus.NewDesc("snapring_snapshot_storage_capacity_bytes", "Difference storage allocated.", snapL, nil)
	descLimit       = prometheus.NewDesc("snapring_snapshot_storage_limit_bytes", "Difference storage limit.", snapL, nil)
	descDropped     = prometheus.NewDesc("snapring_snapshot_engine_events_dropped_total", "Engine events lost to a full queue.", snapL, nil)
	descState       = prometheus.NewDesc("snapring_snapshot_state", "1 for the snapshot's current state.", []string{"snapshot", "state"}, nil)
)

// stateCollector reads the daemon's devices and snapshots at scrape time.
type stateCollector struct{ d *Daemon }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevices, descSnapshots, descWrites, descWriteBytes, descReads, descReadBytes,
		descFlushes, descDiscards, descOriginErrs, descWriteLat, descImageReads, descImageRBytes, descImageWrites, descImageWBytes,
		descImageErrs, descImageLat, descCopied, descStored, descFailed, descInMemory, descStoreQueue, descUsed, descCapacity,
		descLimit, descDropped, descState} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	d.mu.Lock()
	nd, ns := len(d.mu.devices), len(d.mu.snaps)
	snaps := make([]*snapshot, 0, ns)
	for _, s := range d.mu.snaps {
		snaps = append(snaps, s)
	}
	d.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(nd))
	ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.GaugeValue, float64(ns))
	if m := d.metrics; m != nil {
		m.mu.Lock()
		for id, dm := range m.devices {
			dm.collect(ch, strconv.FormatUint(id, 10))
		}
		m.mu.Unlock()
	}
	for _, s := range snaps {
		l := strconv.FormatUint(s.id, 10)
		st := s.snap.Stats()
		for i, ds := range s.snap.DeviceStats() {
			dl := strconv.FormatUint(s.devs[i].id, 10)
			ch <- prometheus.MustNewConstMetric(descCopied, prometheus.CounterValue, float64(ds.ChunksCopied), l, dl)
			ch <- prometheus.MustNewConstMetric(descStored, prometheus.CounterValue, float64(ds.ChunksStored), l, dl)
			ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(ds.ChunksFailed), l, dl)
			ch <- prometheus.MustNewConstMetric(descInMemory, prometheus.GaugeValue, float64(ds.ChunksInMemory), l, dl)
		}
		ch <- prometheus.MustNewConstMetric(descStoreQueue, prometheus.GaugeValue, float64(st.StoreQueued), l)
		ch <- prometheus.MustNewConstMetric(descUsed, prometheus.GaugeValue, float64(st.DiffUsedBytes), l)
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(st.DiffCapacityBytes), l)
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(st.DiffLimitBytes), l)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.EventsDropped), l)
		state := api.StateCreated
		if st.Corrupted {
			state = api.StateCorrupted
		} else if s.isTaken() {
			state = api.StateTaken
		}
		for _, x := range []string{api.StateCreated, api.StateTaken, api.StateCorrupted} {
			v := 0.0
			if x == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, l, x)
		}
	}
}

// collect sums the device's queue shards into its metrics.
func (m *deviceMetrics) collect(ch chan<- prometheus.Metric, l string) {
	var writes, writeBytes, reads, readBytes, flushes, discards, oerrs int64
	var iwrites, iwbytes, irbytes, ierrs int64
	var ireads [len(imageSources)]int64
	var wlat, ilat latencySum
	for i := range m.queues {
		q := &m.queues[i]
		writes += q.writes.Load()
		writeBytes += q.writeBytes.Load()
		reads += q.reads.Load()
		readBytes += q.readBytes.Load()
		flushes += q.flushes.Load()
		discards += q.discards.Load() + q.zeroes.Load()
		oerrs += q.originErrs.Load()
		wlat.add(&q.writeLatency)
		for j := range ireads {
			ireads[j] += q.imageReads[j].Load()
		}
		irbytes += q.imageReadBytes.Load()
		iwrites += q.imageWrites.Load()
		iwbytes += q.imageWriteBytes.Load()
		ierrs += q.imageErrs.Load()
		ilat.add(&q.imageReadLatency)
	}
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descWrites, writes, l)
	counter(descWriteBytes, writeBytes, l)
	counter(descReads, reads, l)
	counter(descReadBytes, readBytes, l)
	counter(descFlushes, flushes, l)
	counter(descDiscards, discards, l)
	counter(descOriginErrs, oerrs, l)
	ch <- wlat.metric(descWriteLat, l)
	for j, src := range imageSources {
		counter(descImageReads, ireads[j], l, src)
	}
	counter(descImageRBytes, irbytes, l)
	counter(descImageWrites, iwrites, l)
	counter(descImageWBytes, iwbytes, l)
	counter(descImageErrs, ierrs, l)
	ch <- ilat.metric(descImageLat, l)
}
