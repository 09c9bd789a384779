package daemon

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/snapring/snapring/daemon/api"
	"github.com/snapring/snapring/ublk"
	"github.com/snapring/snapring/uring"
)

// metrics is the daemon's Prometheus registry (only when metrics are on).
// Engine and device figures are read at scrape time; the only cost on the
// origin write path is meteredOrigin's two atomic adds per request.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	eventsTotal *prometheus.CounterVec
	takeSeconds *prometheus.HistogramVec

	mu      sync.Mutex
	devices map[uint64]*deviceMetrics
}

// deviceMetrics are one origin device's request counters.
type deviceMetrics struct {
	path                      string
	writes, writeBytes        atomic.Int64
	reads, readBytes          atomic.Int64
	flushes, discards, zeroes atomic.Int64
}

// meteredOrigin counts an origin's requests before the engine sees them.
type meteredOrigin struct {
	*ublk.OriginTarget
	m *deviceMetrics
}

// Handle counts a READ or WRITE and passes it on.
func (t *meteredOrigin) Handle(q *ublk.Queue, tag uint16, io *ublk.IO) {
	if io.Op == ublk.OpWrite {
		t.m.writes.Add(1)
		t.m.writeBytes.Add(int64(io.Length))
	} else {
		t.m.reads.Add(1)
		t.m.readBytes.Add(int64(io.Length))
	}
	t.OriginTarget.Handle(q, tag, io)
}

// Flush counts and passes on.
func (t *meteredOrigin) Flush(q *ublk.Queue, tag uint16, io *ublk.IO) {
	t.m.flushes.Add(1)
	t.OriginTarget.Flush(q, tag, io)
}

// Discard counts and passes on.
func (t *meteredOrigin) Discard(q *ublk.Queue, tag uint16, io *ublk.IO) {
	t.m.discards.Add(1)
	t.OriginTarget.Discard(q, tag, io)
}

// WriteZeroes counts and passes on.
func (t *meteredOrigin) WriteZeroes(q *ublk.Queue, tag uint16, io *ublk.IO) {
	t.m.zeroes.Add(1)
	t.OriginTarget.WriteZeroes(q, tag, io)
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

func (m *metrics) device(id uint64, path string) *deviceMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	dm := &deviceMetrics{path: path}
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
	descDevices    = prometheus.NewDesc("snapring_devices", "Origin devices served.", nil, nil)
	descSnapshots  = prometheus.NewDesc("snapring_snapshots", "Snapshots alive.", nil, nil)
	descWrites     = prometheus.NewDesc("snapring_origin_writes_total", "Origin write requests.", []string{"device"}, nil)
	descWriteBytes = prometheus.NewDesc("snapring_origin_write_bytes_total", "Bytes written to origins.", []string{"device"}, nil)
	descReads      = prometheus.NewDesc("snapring_origin_reads_total", "Origin read requests.", []string{"device"}, nil)
	descReadBytes  = prometheus.NewDesc("snapring_origin_read_bytes_total", "Bytes read from origins.", []string{"device"}, nil)
	descFlushes    = prometheus.NewDesc("snapring_origin_flushes_total", "Origin flush requests.", []string{"device"}, nil)
	descDiscards   = prometheus.NewDesc("snapring_origin_discards_total", "Origin discard and write-zeroes requests.", []string{"device"}, nil)
	descCopied     = prometheus.NewDesc("snapring_snapshot_chunks_copied_total", "Chunks copied on write.", []string{"snapshot"}, nil)
	descStored     = prometheus.NewDesc("snapring_snapshot_chunks_stored_total", "Chunks written to the difference storage.", []string{"snapshot"}, nil)
	descFailed     = prometheus.NewDesc("snapring_snapshot_chunks_failed_total", "Chunks that failed (the image is corrupted).", []string{"snapshot"}, nil)
	descInMemory   = prometheus.NewDesc("snapring_snapshot_chunks_in_memory", "Chunks held in memory, waiting for the store (the store queue depth).", []string{"snapshot"}, nil)
	descUsed       = prometheus.NewDesc("snapring_snapshot_storage_used_bytes", "Difference storage used.", []string{"snapshot"}, nil)
	descCapacity   = prometheus.NewDesc("snapring_snapshot_storage_capacity_bytes", "Difference storage allocated.", []string{"snapshot"}, nil)
	descLimit      = prometheus.NewDesc("snapring_snapshot_storage_limit_bytes", "Difference storage limit.", []string{"snapshot"}, nil)
	descDropped    = prometheus.NewDesc("snapring_snapshot_engine_events_dropped_total", "Engine events lost to a full queue.", []string{"snapshot"}, nil)
	descState      = prometheus.NewDesc("snapring_snapshot_state", "1 for the snapshot's current state.", []string{"snapshot", "state"}, nil)
)

// stateCollector reads the daemon's devices and snapshots at scrape time.
type stateCollector struct{ d *Daemon }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevices, descSnapshots, descWrites, descWriteBytes, descReads, descReadBytes,
		descFlushes, descDiscards, descCopied, descStored, descFailed, descInMemory, descUsed, descCapacity, descLimit, descDropped, descState} {
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
			l := strconv.FormatUint(id, 10)
			ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(dm.writes.Load()), l)
			ch <- prometheus.MustNewConstMetric(descWriteBytes, prometheus.CounterValue, float64(dm.writeBytes.Load()), l)
			ch <- prometheus.MustNewConstMetric(descReads, prometheus.CounterValue, float64(dm.reads.Load()), l)
			ch <- prometheus.MustNewConstMetric(descReadBytes, prometheus.CounterValue, float64(dm.readBytes.Load()), l)
			ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(dm.flushes.Load()), l)
			ch <- prometheus.MustNewConstMetric(descDiscards, prometheus.CounterValue, float64(dm.discards.Load()+dm.zeroes.Load()), l)
		}
		m.mu.Unlock()
	}
	for _, s := range snaps {
		l := strconv.FormatUint(s.id, 10)
		st := s.snap.Stats()
		ch <- prometheus.MustNewConstMetric(descCopied, prometheus.CounterValue, float64(st.ChunksCopied), l)
		ch <- prometheus.MustNewConstMetric(descStored, prometheus.CounterValue, float64(st.ChunksStored), l)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.ChunksFailed), l)
		ch <- prometheus.MustNewConstMetric(descInMemory, prometheus.GaugeValue, float64(st.ChunksInMemory), l)
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
