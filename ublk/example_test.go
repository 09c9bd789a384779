package ublk_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/snapring/snapring/ublk"
)

// Expose a file as /dev/ublkbN until SIGINT or SIGTERM.
func Example() {
	pt, err := ublk.OpenPassthrough("/var/tmp/disk.img")
	if err != nil {
		log.Fatal(err)
	}
	defer pt.Close()
	dev, err := ublk.Create(ublk.DeviceConfig{Queues: 2, Depth: 64}, pt)
	if errors.Is(err, ublk.ErrNoDriver) {
		log.Fatal(err) // "ublk driver not loaded: modprobe ublk_drv ..."
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dev.Name())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case <-dev.Done(): // the driver aborted the device
	}
	if err := dev.Close(); err != nil {
		log.Fatal(err)
	}
}

// zeroTarget is a minimal synchronous target: a device that reads as zeros
// and discards writes. Asynchronous targets submit backend I/O with
// q.TargetSQE in Handle and call q.Complete from Completion.
type zeroTarget struct{}

func (zeroTarget) Init(q *ublk.Queue) error { return nil }

func (zeroTarget) Handle(q *ublk.Queue, tag uint16, io *ublk.IO) {
	if io.Op == ublk.OpRead {
		clear(io.Buf)
	}
	q.Complete(tag, int32(io.Length))
}

func (zeroTarget) Completion(q *ublk.Queue, c ublk.TargetCompletion) {}

func ExampleTarget() {
	dev, err := ublk.Create(ublk.DeviceConfig{SizeBytes: 1 << 30}, zeroTarget{})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	fmt.Println(dev.Name())
}
