package results

import "fmt"

// Env describes the machine and build a run happened on. Fields that could
// not be read are empty (or zero).
type Env struct {
	Hostname      string `json:"hostname,omitempty"`
	KernelRelease string `json:"kernel_release"`
	// Machine is the hardware name from uname (x86_64, aarch64).
	Machine  string `json:"machine,omitempty"`
	CPUModel string `json:"cpu_model"`
	// CPUs is the number of logical CPUs the machine has online; UsableCPUs
	// is how many this process may run on (affinity, cgroup cpusets).
	CPUs       int    `json:"cpus"`
	UsableCPUs int    `json:"usable_cpus"`
	GoVersion  string `json:"go_version"`
	// Commit is snapring's git commit.
	Commit      string `json:"commit"`
	BackingPath string `json:"backing_path,omitempty"`
	// BackingFS names the backing file system (tmpfs, ext4, xfs, btrfs,
	// overlay, ...), or "unknown (0x…)" with its statfs magic.
	BackingFS string `json:"backing_fs"`
}

// fsNames maps statfs f_type magic numbers (linux/magic.h) to names.
var fsNames = map[uint32]string{
	0x01021994: "tmpfs",
	0x0000ef53: "ext4", // ext2, ext3 and ext4 share the magic; ext4 drives them all now.
	0x58465342: "xfs",
	0x9123683e: "btrfs",
	0x794c7630: "overlay",
	0x2fc12fc1: "zfs",
	0xf2f52010: "f2fs",
	0xca451a4e: "bcachefs",
	0x858458f6: "ramfs",
	0x65735546: "fuse",
	0x00006969: "nfs",
	0xff534d42: "cifs",
	0xfe534d42: "smb2",
	0x01021997: "9p",
	0x73717368: "squashfs",
}

// FSName returns the name of the file system with the given statfs magic.
func FSName(magic uint32) string {
	if name, ok := fsNames[magic]; ok {
		return name
	}
	return fmt.Sprintf("unknown (%#x)", magic)
}
