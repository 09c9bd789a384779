package daemon

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// TestSoak (SNAPRING_SOAK=10m, `make soak`; CI 60s) loops create, take,
// info and destroy through the API while writers keep writing the origins
// (in process: through the daemon's engine devices), and reports RSS,
// goroutines and open fds at the start and the end; it fails if
// goroutines or fds grew.
func TestSoak(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("SNAPRING_SOAK"))
	if err != nil {
		t.Skip("SNAPRING_SOAK not set (a duration; make soak)")
	}
	r := start(t, true, nil)
	ctx := context.Background()
	var devs []api.Device
	for i := 0; i < 2; i++ {
		devs = append(devs, addFileDevice(t, r, 32<<20))
	}
	d := testDaemon.Load()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, dv := range devs {
		eng := d.mu.devices[dv.ID].eng
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := bytes.Repeat([]byte{1}, 64<<10)
			rng := rand.New(rand.NewPCG(1, 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := eng.WriteAt(buf, rng.Int64N(32<<20/(64<<10))*(64<<10)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	measure := func() (rss int64, gor, fds int) {
		runtime.GC()
		data, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				rss, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
		ents, _ := os.ReadDir("/proc/self/fd")
		return rss * 1024, runtime.NumGoroutine(), len(ents)
	}
	loop := func() {
		s, err := r.c.CreateSnapshot(ctx, api.SnapshotCreateRequest{Devices: []uint64{devs[0].ID, devs[1].ID},
			Storage: api.Storage{Path: t.TempDir(), LimitBytes: 64 << 20}, ChunkMinimumShift: 16})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Take(ctx, strconv.FormatUint(s.ID, 10), false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := r.c.Snapshot(ctx, strconv.FormatUint(s.ID, 10)); err != nil {
			t.Fatal(err)
		}
		if err := r.c.DestroySnapshot(ctx, strconv.FormatUint(s.ID, 10)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ { // warm up pools and connections
		loop()
	}
	rss0, g0, f0 := measure()
	n := 0
	for end := time.Now().Add(dur); time.Now().Before(end); n++ {
		loop()
	}
	rss1, g1, f1 := measure()
	close(stop)
	wg.Wait()
	msg := fmt.Sprintf("soak %v, %d cycles: RSS %d -> %d KiB, goroutines %d -> %d, fds %d -> %d", dur, n, rss0>>10, rss1>>10, g0, g1, f0, f1)
	t.Log(msg)
	fmt.Println(msg)
	if g1 > g0+2 || f1 > f0+2 {
		t.Fatalf("grew: %s", msg)
	}
	if rss1 > rss0*2+(64<<20) {
		t.Fatalf("RSS grew: %s", msg)
	}
}
