package results

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name, text string
		model      string
		cpus       int
	}{
		{"x86", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n",
			"Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 2},
		{"arm64 board", "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd0c\n\nprocessor\t: 1\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n",
			"BCM2835", 2},
		{"arm64 server", "processor\t: 0\nCPU implementer\t: 0x41\n", "", 1},
		{"empty", "", "", 0},
	}
	for _, tt := range tests {
		model, cpus := parseCPUInfo(bufio.NewScanner(strings.NewReader(tt.text)))
		if model != tt.model || cpus != tt.cpus {
			t.Errorf("%s: got %q, %d; want %q, %d", tt.name, model, cpus, tt.model, tt.cpus)
		}
	}
}
