package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

// TestModel is a seeded state-machine test against a reference model: on
// one to three small devices, random origin writes, discards and
// write-zeroes, image reads and writes, a take (alone, or while a batch of
// origin I/O is in flight), storage appends, injected faults (the fault
// plan's on reads and writes, the seam's on discard, write-zeroes, growth
// and appends) and now and then a Destroy, through both the synchronous API and several async
// queues with several requests in flight each. The model holds what the
// origin and the image must contain:
//
//   - origin = every acknowledged origin write (also once the snapshot is
//     corrupted or overflowed); a failed origin write leaves the origin
//     untouched unless a fault on origin writes (a short write) is armed;
//   - image = origin as of Take plus acknowledged image writes; an image
//     that reported ErrCorrupted (or raised EventCorrupted) never returns
//     bytes again, and corruption is only accepted when the storage could
//     overflow or a difference-storage fault was injected;
//   - reads of a discarded range return zeroes;
//   - after Destroy, image I/O, Take and appends fail with ErrClosed, the
//     snapshot is released (Done), and origin I/O goes on.
//
// rapid prints the seed of a failing case (-rapid.seed=N replays it) and
// shrinks it. RAPID_CHECKS / -rapid.checks and -rapid.steps scale the run.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newModel(rt)
		defer m.close(rt)
		rt.Repeat(map[string]func(*rapid.T){
			"originWrite": m.originWriteSync,
			"originRead":  m.originReadSync,
			"imageWrite":  m.imageWriteSync,
			"imageRead":   m.imageReadSync,
			"batch":       m.batch,
			"batchMore":   m.batch,
			"take":        m.take,
			"batchTake":   m.batchTake,
			"destroy":     m.destroy,
			"append":      m.appendStorage,
			"fault":       m.injectFault,
			"seamFault":   m.injectSeamFault,
			"clearFaults": m.clearFaults,
			"waitStored":  m.waitStored,
			"verify":      m.verify,
			"":            m.checkEvents,
		})
		m.verify(rt)
	})
}

// shadow is the expected content of an origin or an image: per byte known,
// one of two values (a write that failed part way), or anything (several).
type shadow struct {
	want []byte
	alt  []byte
	unk  []uint8 // 0 known, 1 want or alt, 2 anything
}

func newShadow(b []byte) *shadow {
	return &shadow{want: append([]byte(nil), b...), alt: make([]byte, len(b)), unk: make([]uint8, len(b))}
}

func (s *shadow) clone() *shadow {
	return &shadow{want: append([]byte(nil), s.want...), alt: append([]byte(nil), s.alt...), unk: append([]uint8(nil), s.unk...)}
}

// set records an acknowledged write.
func (s *shadow) set(off int64, p []byte) {
	copy(s.want[off:], p)
	clear(s.unk[off : off+int64(len(p))])
}

// maybe records a failed write: each byte is now old or new.
func (s *shadow) maybe(off int64, p []byte) {
	for i, b := range p {
		j := off + int64(i)
		switch {
		case s.unk[j] == 0 && s.want[j] != b:
			s.alt[j], s.unk[j] = b, 1
		case s.unk[j] == 1 && s.want[j] != b && s.alt[j] != b:
			s.unk[j] = 2
		}
	}
}

// check verifies bytes read at off and adopts them where several values
// were possible.
func (s *shadow) check(off int64, got []byte) error {
	for i, b := range got {
		j := off + int64(i)
		ok := s.want[j] == b || s.unk[j] == 2 || s.unk[j] == 1 && s.alt[j] == b
		if !ok {
			return fmt.Errorf("offset %d (sector %d, byte %d of the read): got %#x, want %#x (uncertain %d, alt %#x)",
				j, j/512, i, b, s.want[j], s.unk[j], s.alt[j])
		}
	}
	copy(s.want[off:], got)
	clear(s.unk[off : off+int64(len(got))])
	return nil
}

type modelDev struct {
	dev       *Device
	img       *Image
	size      int64
	origin    *shadow
	image     *shadow // valid once taken
	corrupted bool    // image I/O said ErrCorrupted, or EventCorrupted came
}

type model struct {
	dir       string
	devs      []*modelDev
	snap      *Snapshot
	plan      *FaultPlan
	seam      seamHolder
	queues    []*asyncQ
	chunk     int64
	maxReq    int64
	taken     bool
	destroyed bool // Destroy ran: image I/O fails with ErrClosed, origin I/O goes on uncopied

	limitSmall bool // the difference storage may overflow
	everDiff   bool // a difference-storage fault was injected (corruption allowed)
	fOrigRead  bool // origin read faults armed (COW loads and image reads of the original may fail)
	fOrigWrite bool // origin write faults armed (a failed origin write may be partly done)
	fDiff      bool // difference-storage faults armed
	fFalloc    bool // origin discard and write-zeroes faults armed (a failed one leaves the origin untouched)
	fAppend    bool // faults on appended files' allocation armed (AppendStorage may fail)
	everGrow   bool // a growth fault was armed (no-space, overflow and corruption allowed)
	appends    int
}

func newModel(t *rapid.T) *model {
	dir, err := os.MkdirTemp("", "snapring-model-")
	if err != nil {
		t.Fatal(err)
	}
	shift := rapid.UintRange(12, 16).Draw(t, "chunkShift")
	m := &model{dir: dir, chunk: 1 << shift, plan: &FaultPlan{}}
	m.maxReq = min(4*m.chunk, 128<<10)
	opts := Options{
		ChunkMinimumShift:      shift,
		ChunkMaximumInQueue:    rapid.IntRange(2, 8).Draw(t, "inQueue"),
		FreeDiffBufferPoolSize: rapid.IntRange(1, 4).Draw(t, "freePool"),
		StoreWorkers:           rapid.IntRange(1, 3).Draw(t, "storeWorkers"),
		DiffStorageMinimum:     1 << 20,
		Faults:                 m.plan,
		Inject:                 &m.seam,
	}
	limit := int64(1 << 30)
	if rapid.Bool().Draw(t, "smallLimit") {
		m.limitSmall = true
		limit = rapid.Int64Range(1, 64).Draw(t, "limitPages") * 4096
	}
	nDev := rapid.IntRange(1, 3).Draw(t, "devices")
	var devs []*Device
	for i := 0; i < nDev; i++ {
		chunks := rapid.Int64Range(2, 12).Draw(t, fmt.Sprintf("dev%dChunks", i))
		extra := rapid.Int64Range(0, m.chunk/512-1).Draw(t, fmt.Sprintf("dev%dExtraSectors", i))
		size := (chunks-1)*m.chunk + max(extra, 1)*512 // the last chunk is short unless extra fills it
		if extra == 0 {
			size = chunks * m.chunk
		}
		data := tuPattern(int(size), rapid.Int64().Draw(t, fmt.Sprintf("dev%dSeed", i)))
		path := filepath.Join(dir, fmt.Sprintf("dev%d", i))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDevice(path)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
		m.devs = append(m.devs, &modelDev{dev: d, size: size, origin: newShadow(data)})
	}
	storage := StorageConfig{Path: dir, Limit: limit}
	if rapid.Bool().Draw(t, "storageFile") {
		storage.Path = filepath.Join(dir, "diff")
	}
	m.snap, err = NewSnapshot(devs, storage, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range m.devs {
		md.img = m.snap.Image(md.dev)
		if md.img.ChunkSize() != m.chunk {
			t.Fatalf("chunk size %d, want %d", md.img.ChunkSize(), m.chunk)
		}
	}
	nq := rapid.IntRange(1, 3).Draw(t, "queues")
	for i := 0; i < nq; i++ {
		m.queues = append(m.queues, newModelQueue(t, 8, int(m.maxReq)))
	}
	return m
}

func newModelQueue(t *rapid.T, depth, slot int) *asyncQ {
	q, err := NewQueue(depth)
	if err != nil {
		t.Fatal(err)
	}
	a := &asyncQ{t: t, q: q, slotBytes: slot, reqs: make([]Request, depth), out: make([]*Request, depth)}
	if a.arena, err = newBounce(depth * slot); err != nil {
		q.Close()
		t.Fatal(err)
	}
	return a
}

func (m *model) close(t *rapid.T) {
	for _, q := range m.queues {
		q.close()
	}
	if m.snap != nil {
		m.snap.Destroy()
		<-m.snap.Done()
		if err := m.snap.Err(); err != nil {
			t.Errorf("snapshot release: %v", err)
		}
		for _, md := range m.devs {
			if _, err := md.img.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrClosed) {
				t.Errorf("image read after Destroy: %v, want ErrClosed", err)
			}
		}
	}
	for _, md := range m.devs {
		if err := md.dev.Close(); err != nil {
			t.Errorf("close device: %v", err)
		}
	}
	os.RemoveAll(m.dir)
}

func (m *model) pickDev(t *rapid.T) *modelDev {
	return m.devs[rapid.IntRange(0, len(m.devs)-1).Draw(t, "dev")]
}

// extent draws an I/O range, biased to chunk boundaries and device ends.
func (m *model) extent(t *rapid.T, md *modelDev) (off, n int64) {
	sectors := md.size / 512
	chunkSec := m.chunk / 512
	nChunks := (sectors + chunkSec - 1) / chunkSec
	maxSec := min(sectors, m.maxReq/512)
	switch rapid.IntRange(0, 3).Draw(t, "extentMode") {
	case 0: // anywhere
		n = rapid.Int64Range(1, maxSec).Draw(t, "sectors")
		off = rapid.Int64Range(0, sectors-n).Draw(t, "offSector")
	case 1: // across a chunk boundary
		b := rapid.Int64Range(1, nChunks-1).Draw(t, "boundary") * chunkSec
		before := rapid.Int64Range(1, min(b, maxSec-1)).Draw(t, "before")
		after := rapid.Int64Range(1, min(sectors-b, maxSec-before)).Draw(t, "after")
		off, n = b-before, before+after
	case 2: // at the device end
		n = rapid.Int64Range(1, maxSec).Draw(t, "sectors")
		off = sectors - n
	default: // a few sectors at the start or end of a chunk
		c := rapid.Int64Range(0, nChunks-1).Draw(t, "chunk")
		clen := min(chunkSec, sectors-c*chunkSec)
		n = rapid.Int64Range(1, min(8, clen)).Draw(t, "sectors")
		off = c * chunkSec
		if rapid.Bool().Draw(t, "atChunkEnd") {
			off += clen - n
		}
	}
	return off * 512, n * 512
}

func (m *model) corruptible() bool { return m.limitSmall || m.everDiff || m.everGrow }

// seamHolder is the model's injector for the paths the fault plan does not
// reach (discard, write-zeroes, the storage's fallocates): replaced and
// cleared between steps, consulted from any goroutine.
type seamHolder struct {
	mu  sync.Mutex
	inj Injector
}

func (h *seamHolder) Inject(io FaultIO) (Injection, bool) {
	h.mu.Lock()
	inj := h.inj
	h.mu.Unlock()
	if inj == nil {
		return Injection{}, false
	}
	return inj.Inject(io)
}

func (h *seamHolder) set(inj Injector) {
	h.mu.Lock()
	h.inj = inj
	h.mu.Unlock()
}

// originResult applies an origin write's outcome to the model.
func (m *model) originResult(t *rapid.T, md *modelDev, what string, off int64, data []byte, noWait bool, err error) {
	switch {
	case err == nil:
		md.origin.set(off, data)
	case noWait && errors.Is(err, ErrWouldBlock):
		if !m.taken {
			t.Fatalf("%s at %d: ErrWouldBlock before Take", what, off)
		}
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("%s: ErrWouldBlock is not EAGAIN", what)
		}
		// Nothing written.
	case what == OpOriginWriteZeroes.String() && errors.Is(err, unix.EOPNOTSUPP):
		// FALLOC_FL_ZERO_RANGE is not supported by every filesystem
		// (tmpfs); nothing was written.
	case m.fFalloc && (what == OpOriginDiscard.String() || what == OpOriginWriteZeroes.String()) && tuIsIOErr(err):
		// The injected fault replaced the fallocate: the original is
		// untouched (its chunks were copied first, which is harmless).
	case (m.fOrigRead || m.fOrigWrite) && tuIsIOErr(err):
		if m.fOrigWrite {
			md.origin.maybe(off, data) // a short write may have done part of it
		}
		// Otherwise a failed copy-on-write read: the original is untouched.
	default:
		t.Fatalf("%s %s at %d+%d: unexpected error %v", what, md.dev.Path(), off, len(data), err)
	}
}

func (m *model) originReadResult(t *rapid.T, md *modelDev, off int64, got []byte, err error) {
	if err != nil {
		if m.fOrigRead && tuIsIOErr(err) {
			return
		}
		t.Fatalf("origin read %s at %d+%d: %v", md.dev.Path(), off, len(got), err)
	}
	if e := md.origin.check(off, got); e != nil {
		t.Fatalf("origin %s: %v", md.dev.Path(), e)
	}
}

// imageErr accepts an image I/O error the model allows, or fails.
// wasCorrupted is whether the model knew the image corrupted before the
// request started (requests of one batch run in any order).
func (m *model) imageErr(t *rapid.T, md *modelDev, wasCorrupted bool, what string, off int64, n int, err error) {
	switch {
	case m.destroyed:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Destroy at %d+%d: %v, want ErrClosed", what, off, n, err)
		}
	case !m.taken:
		if !errors.Is(err, ErrNotTaken) {
			t.Fatalf("%s before Take at %d+%d: %v, want ErrNotTaken", what, off, n, err)
		}
	case errors.Is(err, ErrCorrupted):
		if !m.corruptible() {
			t.Fatalf("%s %s at %d+%d: %v, but nothing could corrupt the snapshot", what, md.dev.Path(), off, n, err)
		}
		md.corrupted = true
	case wasCorrupted:
		t.Fatalf("%s of a corrupted image at %d+%d: %v, want ErrCorrupted", what, off, n, err)
	case (m.fOrigRead || m.fDiff) && tuIsIOErr(err):
	default:
		t.Fatalf("%s %s at %d+%d: unexpected error %v", what, md.dev.Path(), off, n, err)
	}
}

func (m *model) imageReadResult(t *rapid.T, md *modelDev, wasCorrupted bool, off int64, got []byte, err error) {
	if err != nil {
		m.imageErr(t, md, wasCorrupted, "image read", off, len(got), err)
		return
	}
	switch {
	case m.destroyed:
		t.Fatalf("image read after Destroy succeeded")
	case !m.taken:
		t.Fatalf("image read before Take succeeded")
	case wasCorrupted:
		t.Fatalf("image read of corrupted %s at %d+%d returned data", md.dev.Path(), off, len(got))
	}
	if e := md.image.check(off, got); e != nil {
		t.Fatalf("image %s: %v", md.dev.Path(), e)
	}
}

func (m *model) imageWriteResult(t *rapid.T, md *modelDev, wasCorrupted bool, off int64, data []byte, err error) {
	if err != nil {
		m.imageErr(t, md, wasCorrupted, "image write", off, len(data), err)
		if m.taken && !md.corrupted {
			md.image.maybe(off, data)
		}
		return
	}
	switch {
	case m.destroyed:
		t.Fatalf("image write after Destroy succeeded")
	case !m.taken:
		t.Fatalf("image write before Take succeeded")
	case wasCorrupted:
		t.Fatalf("image write to corrupted %s succeeded", md.dev.Path())
	}
	md.image.set(off, data)
}

func (m *model) originWriteSync(t *rapid.T) {
	md := m.pickDev(t)
	off, n := m.extent(t, md)
	data := tuPattern(int(n), rapid.Int64().Draw(t, "data"))
	_, err := md.dev.WriteAt(data, off)
	m.originResult(t, md, "origin WriteAt", off, data, false, err)
}

func (m *model) originReadSync(t *rapid.T) {
	md := m.pickDev(t)
	off, n := m.extent(t, md)
	got := make([]byte, n)
	_, err := md.dev.ReadAt(got, off)
	m.originReadResult(t, md, off, got, err)
}

func (m *model) imageWriteSync(t *rapid.T) {
	md := m.pickDev(t)
	off, n := m.extent(t, md)
	data := tuPattern(int(n), rapid.Int64().Draw(t, "data"))
	_, err := md.img.WriteAt(data, off)
	m.imageWriteResult(t, md, md.corrupted, off, data, err)
}

func (m *model) imageReadSync(t *rapid.T) {
	md := m.pickDev(t)
	off, n := m.extent(t, md)
	got := make([]byte, n)
	_, err := md.img.ReadAt(got, off)
	m.imageReadResult(t, md, md.corrupted, off, got, err)
}

type batchReq struct {
	r    Request
	md   *modelDev
	data []byte // what a write writes
}

var batchOps = []Op{OpOriginRead, OpOriginWrite, OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes, OpImageRead, OpImageRead, OpImageWrite}

// batch runs several requests at once, spread over the queues (each polled
// by its own goroutine, as a queue has one owner). Requests in one batch
// never conflict (a write and another access to the same bytes of the same
// side), so their outcome is deterministic; an image read may overlap an
// origin write, which must not change what it reads.
func (m *model) batch(t *rapid.T) {
	perQ, all := m.buildBatch(t, batchOps)
	m.runBatch(t, perQ)
	m.batchResults(t, all)
}

// buildBatch draws a batch of requests of ops, spread over the queues.
func (m *model) buildBatch(t *rapid.T, ops []Op) ([][]*batchReq, []*batchReq) {
	n := rapid.IntRange(1, 12).Draw(t, "batchSize")
	perQ := make([][]*batchReq, len(m.queues))
	var all []*batchReq
	type claim struct {
		md    *modelDev
		image bool
		write bool
		off   int64
		n     int64
	}
	var claims []claim
	for i := 0; i < n; i++ {
		op := rapid.SampledFrom(ops).Draw(t, "op")
		md := m.pickDev(t)
		off, ln := m.extent(t, md)
		c := claim{md: md, image: op >= OpImageRead, write: op != OpOriginRead && op != OpImageRead, off: off, n: ln}
		conflict := false
		for _, o := range claims {
			if o.md == c.md && o.image == c.image && (o.write || c.write) && o.off < c.off+c.n && c.off < o.off+o.n {
				conflict = true
			}
		}
		qi := rapid.IntRange(0, len(m.queues)-1).Draw(t, "queue")
		slot := len(perQ[qi])
		if conflict || slot == len(m.queues[qi].reqs) {
			continue
		}
		claims = append(claims, c)
		br := &batchReq{md: md}
		br.r = Request{Op: op, Off: off}
		switch op {
		case OpOriginDiscard, OpOriginWriteZeroes:
			br.r.Device, br.r.Len = md.dev, ln
			br.data = make([]byte, ln)
		default:
			br.r.Buf = m.queues[qi].buf(slot, int(ln))
			if op <= OpOriginWriteZeroes {
				br.r.Device = md.dev
			} else {
				br.r.Image = md.img
			}
		}
		if op == OpOriginWrite || op == OpImageWrite {
			br.data = tuPattern(int(ln), rapid.Int64().Draw(t, "data"))
			copy(br.r.Buf, br.data)
		}
		if op == OpOriginWrite {
			br.r.NoWait = rapid.IntRange(0, 3).Draw(t, "noWait") == 0
		}
		perQ[qi] = append(perQ[qi], br)
		all = append(all, br)
	}
	return perQ, all
}

// runBatch runs each queue's requests on a goroutine of its own and waits
// for all of them.
func (m *model) runBatch(t *rapid.T, perQ [][]*batchReq) {
	var wg sync.WaitGroup
	errs := make([]error, len(m.queues))
	for qi, brs := range perQ {
		if len(brs) == 0 {
			continue
		}
		reqs := make([]*Request, len(brs))
		for i, br := range brs {
			reqs[i] = &br.r
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[qi] = m.queues[qi].run(reqs...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("submit/poll: %v", err)
		}
	}
}

// batchResults checks a batch's outcomes against the model and applies them.
func (m *model) batchResults(t *rapid.T, all []*batchReq) {
	wasCorrupted := map[*modelDev]bool{}
	for _, md := range m.devs {
		wasCorrupted[md] = md.corrupted
	}
	for _, br := range all {
		r := &br.r
		switch r.Op {
		case OpOriginRead:
			m.originReadResult(t, br.md, r.Off, r.Buf, r.Err)
		case OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes:
			m.originResult(t, br.md, r.Op.String(), r.Off, br.data, r.NoWait, r.Err)
		case OpImageRead:
			m.imageReadResult(t, br.md, wasCorrupted[br.md], r.Off, r.Buf, r.Err)
		case OpImageWrite:
			m.imageWriteResult(t, br.md, wasCorrupted[br.md], r.Off, br.data, r.Err)
		}
	}
}

func (m *model) take(t *rapid.T) {
	if m.destroyed {
		if err := m.snap.Take(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Take after Destroy: %v, want ErrClosed", err)
		}
		return
	}
	if m.taken {
		if err := m.snap.Take(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("second Take: %v, want ErrInvalid", err)
		}
		return
	}
	if err := m.snap.Take(); err != nil {
		t.Fatalf("take: %v", err)
	}
	m.taken = true
	for _, md := range m.devs {
		md.image = md.origin.clone()
	}
}

func (m *model) appendStorage(t *rapid.T) {
	m.appends++
	path := filepath.Join(m.dir, fmt.Sprintf("append%d", m.appends))
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n := rapid.Int64Range(1, 64).Draw(t, "appendPages") * 4096
	used, capacity, limit := m.snap.storage.stats()
	if m.destroyed {
		if err := m.snap.AppendStorage(path, 0, n); !errors.Is(err, ErrClosed) {
			t.Fatalf("AppendStorage after Destroy: %v, want ErrClosed", err)
		}
		return
	}
	if err := m.snap.AppendStorage(path, 0, n); err != nil && m.fAppend && tuIsIOErr(err) {
		return // the injected fault failed the allocation; nothing was appended
	} else if err != nil {
		t.Fatalf("append storage %d bytes: %v", n, err)
	}
	used2, capacity2, limit2 := m.snap.storage.stats()
	if used2 < used || capacity2 < capacity+n || limit2 != limit+n {
		t.Fatalf("append %d: used %d→%d, capacity %d→%d, limit %d→%d", n, used, used2, capacity, capacity2, limit, limit2)
	}
}

func (m *model) injectFault(t *rapid.T) {
	f := Fault{Times: rapid.IntRange(1, 3).Draw(t, "faultTimes")}
	if rapid.Bool().Draw(t, "faultDiff") {
		f.Target = FaultDiffStorage
		m.fDiff, m.everDiff = true, true
	} else {
		f.Target = FaultOrigin
		if rapid.Bool().Draw(t, "faultOneDevice") {
			f.Device = m.pickDev(t).dev
		}
	}
	f.Write = rapid.Bool().Draw(t, "faultWrite")
	if f.Target == FaultOrigin {
		if f.Write {
			m.fOrigWrite = true
		} else {
			m.fOrigRead = true
		}
	}
	if rapid.Bool().Draw(t, "faultRange") {
		md := m.pickDev(t)
		f.Off, f.Len = m.extent(t, md)
	}
	switch rapid.IntRange(0, 2).Draw(t, "faultKind") {
	case 0:
		f.Errno = unix.EIO
	case 1:
		f.Errno = unix.ENOSPC
	default:
		f.Short = true
	}
	m.plan.Add(f)
}

// injectSeamFault arms, through the fault seam, faults on what the plan
// cannot reach: origin discards and write-zeroes, the difference storage's
// growth and appended files' allocation; a few of them, drawn at random
// from a seed.
func (m *model) injectSeamFault(t *rapid.T) {
	var ops []FaultOp
	if rapid.Bool().Draw(t, "seamFalloc") {
		ops = append(ops, FaultDiscard, FaultWriteZeroes)
		m.fFalloc = true
	}
	if rapid.Bool().Draw(t, "seamGrow") {
		ops = append(ops, FaultGrow)
		m.everGrow = true
	}
	if rapid.Bool().Draw(t, "seamAppend") {
		ops = append(ops, FaultFallocate)
		m.fAppend = true
	}
	if len(ops) == 0 {
		return
	}
	errno := rapid.SampledFrom([]unix.Errno{unix.EIO, unix.ENOSPC}).Draw(t, "seamErrno")
	p := rapid.SampledFrom([]float64{0.25, 0.5, 1}).Draw(t, "seamProbability")
	m.seam.set(Times(rapid.IntRange(1, 3).Draw(t, "seamTimes"),
		If(OnOps(ops...), Randomly(p, rapid.Int64().Draw(t, "seamSeed"), FailWith(errno)))))
}

func (m *model) clearFaults(t *rapid.T) {
	m.seam.set(nil)
	m.fFalloc, m.fAppend = false, false
	m.plan.Clear()
	m.fOrigRead, m.fOrigWrite, m.fDiff = false, false, false
}

func (m *model) waitStored(t *rapid.T) {
	if !m.destroyed { // the store workers are gone
		waitStored(t, m.snap)
	}
}

// batchTake takes the snapshot while a batch of origin I/O is in flight:
// writes in flight during Take are wholly in the image or wholly out, so
// the image may hold either the old or the new bytes of each.
func (m *model) batchTake(t *rapid.T) {
	if m.taken || m.destroyed {
		m.batch(t)
		return
	}
	perQ, all := m.buildBatch(t, []Op{OpOriginRead, OpOriginWrite, OpOriginWrite, OpOriginDiscard, OpOriginWriteZeroes})
	before := map[*modelDev]*shadow{}
	for _, md := range m.devs {
		before[md] = md.origin.clone()
	}
	takeErr := make(chan error, 1)
	go func() { takeErr <- m.snap.Take() }()
	m.runBatch(t, perQ)
	if err := <-takeErr; err != nil {
		t.Fatalf("take during a batch: %v", err)
	}
	m.taken = true
	for _, md := range m.devs {
		md.image = before[md]
	}
	for _, br := range all {
		if br.r.Op != OpOriginRead {
			br.md.image.maybe(br.r.Off, br.data) // in or out of the image
		}
	}
	m.batchResults(t, all)
}

// destroy ends the snapshot (now and then: most runs should keep it): from
// then on image I/O fails with ErrClosed and origin I/O is not copied.
func (m *model) destroy(t *rapid.T) {
	if m.destroyed || rapid.IntRange(0, 7).Draw(t, "destroyNow") != 0 {
		return
	}
	if err := m.snap.Destroy(); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	select {
	case <-m.snap.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("snapshot not released 20 s after Destroy with every queue idle")
	}
	if err := m.snap.Err(); err != nil {
		t.Fatalf("snapshot release: %v", err)
	}
	m.destroyed = true
	// No fault reaches origin I/O without a snapshot.
	m.clearFaults(t)
}

// checkEvents runs after every step: events must be explained by the model.
func (m *model) checkEvents(t *rapid.T) {
	for _, e := range tuDrainEvents(m.snap) {
		switch e.Kind {
		case EventLowFreeSpace:
		case EventNoSpace, EventOverflow:
			if !m.limitSmall && !m.everGrow {
				t.Fatalf("event %v with a storage that cannot fill", e)
			}
		case EventCorrupted:
			if !m.corruptible() {
				t.Fatalf("event %v, but nothing could corrupt the snapshot", e)
			}
			found := false
			for _, md := range m.devs {
				if md.dev.Path() == e.Device {
					md.corrupted, found = true, true
				}
			}
			if !found {
				t.Fatalf("event %v names no device of the snapshot", e)
			}
		default:
			t.Fatalf("unknown event %v", e)
		}
	}
	if d := m.snap.DroppedEvents(); d != 0 {
		t.Fatalf("%d events dropped with a 256-event queue drained every step", d)
	}
}

// verify clears the faults and reads every origin and image whole.
func (m *model) verify(t *rapid.T) {
	m.clearFaults(t)
	m.checkEvents(t)
	for _, md := range m.devs {
		got := make([]byte, md.size)
		_, err := md.dev.ReadAt(got, 0)
		m.originReadResult(t, md, 0, got, err)
		_, err = md.img.ReadAt(got, 0)
		m.imageReadResult(t, md, md.corrupted, 0, got, err)
	}
	anyCorrupt := false
	for _, md := range m.devs {
		anyCorrupt = anyCorrupt || md.corrupted
	}
	st := m.snap.Stats()
	switch {
	case anyCorrupt && !st.Corrupted:
		t.Fatalf("Stats says not corrupted, but an image reported corruption")
	case st.Corrupted && !m.corruptible():
		t.Fatalf("Stats says corrupted, but nothing could corrupt the snapshot")
	}
}
