package engine

import (
	"flag"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

var engineSeed = flag.Int64("engine.seed", 0, "seed for the engine's randomized tests (0: from the clock); a failure prints the one it used")

// tuSeed returns the seed for a randomized test and logs how to replay it
// if the test fails.
func tuSeed(t *testing.T) int64 {
	seed := *engineSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test -run '^%s$' -engine.seed=%d ./engine/", t.Name(), seed)
		}
	})
	return seed
}

// Image writes straddling chunk boundaries (blksnap's cross-chunk test) read
// back identical: while the chunks are in memory, once stored, and after a
// second write over stored chunks (loaded back from the difference
// storage). The original never changes.
func TestCrossChunkImageWrites(t *testing.T) {
	for _, shift := range []uint{12, 14, 16} {
		t.Run(fmt.Sprintf("chunk=%d", 1<<shift), func(t *testing.T) {
			chunk := int64(1) << shift
			d, data := tuOrigin(t, "", 40*chunk+1024, int64(shift))
			s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 4))
			if err := s.Take(); err != nil {
				t.Fatal(err)
			}
			img := s.Image(d)
			image := append([]byte(nil), data...)
			k := int64(1)
			for _, back := range []int64{512, 4096 % chunk, chunk / 2, chunk - 512} {
				for _, n := range []int64{1024, chunk, 2*chunk + 1024, 3 * chunk} {
					back := max(back, 512)
					off := k*chunk - back
					k += 4
					if off+n > d.Size() {
						continue
					}
					p := tuPattern(int(n), off+n)
					if _, err := img.WriteAt(p, off); err != nil {
						t.Fatalf("image write at %d+%d: %v", off, n, err)
					}
					copy(image[off:], p)
					tuMustEqual(t, fmt.Sprintf("read back at %d+%d", off, n), tuRead(t, img, off, int(n)), p, off)
				}
			}
			tuMustEqual(t, "image (in memory)", tuRead(t, img, 0, len(image)), image, 0)
			waitStored(t, s)
			tuMustEqual(t, "image (stored)", tuRead(t, img, 0, len(image)), image, 0)
			// Again over stored chunks, shifted by a sector.
			for k := int64(1); k < 40; k += 3 {
				off, n := k*chunk-512-chunk/4, chunk+1024
				p := tuPattern(int(n), -k)
				if _, err := img.WriteAt(p, off); err != nil {
					t.Fatal(err)
				}
				copy(image[off:], p)
			}
			tuMustEqual(t, "image (rewritten)", tuRead(t, img, 0, len(image)), image, 0)
			waitStored(t, s)
			tuMustEqual(t, "image (rewritten, stored)", tuRead(t, img, 0, len(image)), image, 0)
			tuMustEqual(t, "origin", tuRead(t, d, 0, len(data)), data, 0)
			if st := s.Stats(); st.ChunksCopied != 0 {
				t.Fatalf("image writes copied chunks of the origin: %+v", st)
			}
		})
	}
}

// blksnap's "boundary" test: the first and last block of random chunks, and
// two-block writes across chunk boundaries, on the original and on the
// image; after each write the neighbourhood (the chunks before and after)
// is checked on both, and everything at the end. A copy-on-write that
// misses one of the chunks a write touches shows up here.
func TestBoundary(t *testing.T) {
	seed := tuSeed(t)
	rng := rand.New(rand.NewSource(seed))
	for _, shift := range []uint{12, 13, 16} {
		for _, block := range []int64{512, 4096} {
			t.Run(fmt.Sprintf("chunk=%d/block=%d", 1<<shift, block), func(t *testing.T) {
				chunk := int64(1) << shift
				nChunks := int64(48)
				d, data := tuOrigin(t, "", nChunks*chunk-block, rng.Int63())
				s := tuSnap(t, []*Device{d}, StorageConfig{}, tuOpts(shift, 2))
				if err := s.Take(); err != nil {
					t.Fatal(err)
				}
				img := s.Image(d)
				origin := append([]byte(nil), data...)
				image := append([]byte(nil), data...)
				check := func(what string, n int64) {
					t.Helper()
					lo := max(0, (n-1)*chunk)
					hi := min(d.Size(), (n+3)*chunk)
					tuMustEqual(t, what+": origin near chunk "+fmt.Sprint(n), tuRead(t, d, lo, int(hi-lo)), origin[lo:hi], lo)
					tuMustEqual(t, what+": image near chunk "+fmt.Sprint(n), tuRead(t, img, lo, int(hi-lo)), image[lo:hi], lo)
				}
				write := func(onImage bool, off, n int64) {
					t.Helper()
					p := tuPattern(int(n), rng.Int63())
					var err error
					if onImage {
						_, err = img.WriteAt(p, off)
						copy(image[off:], p)
					} else {
						_, err = d.WriteAt(p, off)
						copy(origin[off:], p)
					}
					if err != nil {
						t.Fatalf("write at %d+%d (image %v): %v", off, n, onImage, err)
					}
				}
				for i := 0; i < 24; i++ {
					n := rng.Int63n(nChunks - 1)
					onImage := rng.Intn(3) == 0
					end := min((n+1)*chunk, d.Size())
					switch rng.Intn(3) {
					case 0:
						write(onImage, n*chunk, block)
						check("first block", n)
					case 1:
						write(onImage, end-block, block)
						check("last block", n)
					default:
						if end+block > d.Size() {
							continue
						}
						write(onImage, end-block, 2*block)
						check("two blocks across the boundary", n)
					}
					if rng.Intn(4) == 0 {
						waitStored(t, s)
					}
				}
				waitStored(t, s)
				tuMustEqual(t, "origin", tuRead(t, d, 0, len(origin)), origin, 0)
				tuMustEqual(t, "image", tuRead(t, img, 0, len(image)), image, 0)
			})
		}
	}
}
