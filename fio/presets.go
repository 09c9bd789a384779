package fio

import (
	"fmt"
	"slices"
	"strings"
)

// Preset is a job file snapring ships, after blksnap's fio tests and the
// goals of the fio issue. Its job text names the devices as ${TARGET},
// ${ORIGIN} and ${IMAGE}, the size as ${SIZE} and the runtime (seconds) as
// ${RUNTIME}; Run substitutes them.
type Preset struct {
	Name        string
	Description string
	// Targets are the targets run when --target is not given.
	Targets []Kind
	Job     string
}

const presetGlobal = `[global]
ioengine=io_uring
direct=1
size=${SIZE}
randrepeat=0
norandommap=1
`

// Presets lists the presets in the order `snapring fio presets` prints.
var Presets = []Preset{
	{
		Name:        "randwrite-4k",
		Description: "4 KiB random writes at QD32 on the origin with an active snapshot (first writes copy chunks)",
		Targets:     []Kind{Raw, Passthrough, Origin, DMSnapshot},
		Job: presetGlobal + `runtime=${RUNTIME}
time_based=1

[randwrite-4k-qd32]
filename=${TARGET}
rw=randwrite
bs=4k
iodepth=32
`,
	},
	{
		Name:        "read-1m",
		Description: "1 MiB sequential reads at QD8 of the snapshot image, of the origin, and of the original",
		Targets:     []Kind{Raw, Origin, Image, DMSnapshot},
		Job: presetGlobal + `runtime=${RUNTIME}
time_based=1

[read-1m-qd8]
filename=${TARGET}
rw=read
bs=1m
iodepth=8
`,
	},
	{
		Name:        "randread-4k",
		Description: "4 KiB random reads at QD32 of the snapshot image and of the original",
		Targets:     []Kind{Raw, Origin, Image, DMSnapshot},
		Job: presetGlobal + `runtime=${RUNTIME}
time_based=1

[randread-4k-qd32]
filename=${TARGET}
rw=randread
bs=4k
iodepth=32
`,
	},
	{
		Name:        "backup",
		Description: "a backup: sequential 1 MiB reads of the image while 4 KiB random writes hit the origin at a fixed 1000 IOPS",
		Targets:     []Kind{Raw, Origin, DMSnapshot},
		Job: presetGlobal + `runtime=${RUNTIME}
time_based=1

[backup-read-1m]
filename=${IMAGE}
rw=read
bs=1m
iodepth=4

[origin-write-4k-1000iops]
filename=${ORIGIN}
rw=randwrite
bs=4k
iodepth=8
rate_iops=1000
`,
	},
	{
		Name:        "verify",
		Description: "4 KiB random writes with verify=crc32c on the first 32 MiB of the origin during a snapshot, read back and checked",
		Targets:     []Kind{Raw, Origin, DMSnapshot},
		Job: `[global]
ioengine=io_uring
direct=1
randrepeat=0

[verify-crc32c]
filename=${TARGET}
size=32m
rw=randwrite
bs=4k
iodepth=16
verify=crc32c
do_verify=1
verify_fatal=1
`,
	},
}

// FindPreset returns the preset called name.
func FindPreset(name string) (Preset, error) {
	i := slices.IndexFunc(Presets, func(p Preset) bool { return p.Name == name })
	if i < 0 {
		names := make([]string, len(Presets))
		for j, p := range Presets {
			names[j] = p.Name
		}
		return Preset{}, fmt.Errorf("%w: no preset %q (presets: %s)", ErrConfig, name, strings.Join(names, ", "))
	}
	return Presets[i], nil
}
