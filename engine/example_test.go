package engine_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/snapring/snapring/engine"
)

// Create a snapshot over a file, write the origin, read the image.
func Example() {
	dir, _ := os.MkdirTemp("", "snapring-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "disk.img")
	os.WriteFile(path, bytes.Repeat([]byte("old!"), 1<<18), 0o600) // 1 MiB

	dev, err := engine.OpenDevice(path)
	if err != nil {
		panic(err)
	}
	defer dev.Close()
	snap, err := engine.NewSnapshot([]*engine.Device{dev},
		engine.StorageConfig{Path: dir, Limit: 64 << 20}, // an O_TMPFILE in dir
		engine.Options{DiffStorageMinimum: 16 << 20})
	if err != nil {
		panic(err)
	}
	if err := snap.Take(); err != nil {
		panic(err)
	}
	dev.WriteAt(bytes.Repeat([]byte("new!"), 1024), 0) // copy-on-write of chunk 0

	img := snap.Image(dev)
	before, now := make([]byte, 512), make([]byte, 512)
	img.ReadAt(before, 0)
	dev.ReadAt(now, 0)
	fmt.Printf("image: %s, origin: %s\n", before[:4], now[:4])
	fmt.Println("chunk size:", img.ChunkSize(), "copied:", snap.Stats().ChunksCopied)
	snap.Destroy()
	<-snap.Done()
	// Output:
	// image: old!, origin: new!
	// chunk size: 262144 copied: 1
}

// Compose a fault injector: the second origin discard fails with EIO, once.
// Set it as Options.Inject; here it is asked directly.
func ExampleIf() {
	inj := engine.If(engine.AllOf(engine.OnTarget(engine.FaultOrigin), engine.OnOps(engine.FaultDiscard)),
		engine.OnNth(2, engine.FailWith(unix.EIO)))
	for _, op := range []engine.FaultOp{engine.FaultDiscard, engine.FaultWrite, engine.FaultDiscard, engine.FaultDiscard} {
		got, ok := inj.Inject(engine.FaultIO{Op: op, Target: engine.FaultOrigin, Off: 0, Len: 4096})
		fmt.Println(op, ok, got.Errno)
	}
	// Output:
	// discard false errno 0
	// write false errno 0
	// discard true input/output error
	// discard false errno 0
}
