package fio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLocal(t *testing.T) {
	out, err := Parse(readTestdata(t, "randrw.json"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != "fio-3.33" || len(out.Jobs) != 1 {
		t.Fatalf("version %q, %d jobs", out.Version, len(out.Jobs))
	}
	j := out.Jobs[0]
	if j.Name != "randrw" || j.Host != "" {
		t.Fatalf("job %q host %q", j.Name, j.Host)
	}
	for _, d := range []Dir{j.Read, j.Write} {
		if d.LatKind != "clat" || d.Lat.N == 0 || d.Lat.N != d.TotalIOs || len(d.Lat.Bins) == 0 || len(d.Lat.Percentiles) != 17 {
			t.Fatalf("dir %+v", d)
		}
		var sum int64
		for i, b := range d.Lat.Bins {
			sum += b.Count
			if i > 0 && b.MidNs <= d.Lat.Bins[i-1].MidNs {
				t.Fatal("bins not sorted")
			}
		}
		if sum != d.Lat.N {
			t.Fatalf("bins sum %d != N %d", sum, d.Lat.N)
		}
		if d.RuntimeMs < 2900 || d.IOPS <= 0 || d.BWBytes <= 0 {
			t.Fatalf("runtime %d iops %v bw %d", d.RuntimeMs, d.IOPS, d.BWBytes)
		}
	}
}

func TestParseClient(t *testing.T) {
	out, err := Parse(readTestdata(t, "client-2hosts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Jobs) != 2 {
		t.Fatalf("%d jobs, want 2 (All clients dropped)", len(out.Jobs))
	}
	ports := map[int]bool{}
	for _, j := range out.Jobs {
		if j.Host != "127.0.0.1" || j.Read.Lat.N == 0 {
			t.Fatalf("job %+v", j)
		}
		ports[j.Port] = true
	}
	if !ports[18765] || !ports[18766] {
		t.Fatalf("ports %v", ports)
	}
}

func TestParseBad(t *testing.T) {
	good := string(readTestdata(t, "randrw.json"))
	cases := map[string]string{
		"empty":       "",
		"not JSON":    "fio: failed parsing rw=bogus\n",
		"truncated":   good[:len(good)/2],
		"no version":  `{"jobs":[]}`,
		"bad version": `{"fio version":"x","jobs":[]}`,
		"no jobs":     `{"fio version":"fio-3.33","jobs":[]}`,
		"job error":   `{"fio version":"fio-3.33","jobs":[{"jobname":"a","error":5}]}`,
		"no bins":     `{"fio version":"fio-3.33","jobs":[{"jobname":"a","read":{"total_ios":1,"clat_ns":{"min":1,"max":1,"mean":1,"N":1}}}]}`,
		"bad bin":     `{"fio version":"fio-3.33","jobs":[{"jobname":"a","read":{"total_ios":1,"clat_ns":{"min":1,"max":200,"mean":1,"N":1,"bins":{"130":1}}}}]}`,
		"bins != N":   `{"fio version":"fio-3.33","jobs":[{"jobname":"a","read":{"total_ios":2,"clat_ns":{"min":1,"max":200,"mean":1,"N":2,"bins":{"100":1}}}}]}`,
		"wrong type":  `{"fio version":"fio-3.33","jobs":[{"jobname":"a","read":{"iops":"many"}}]}`,
	}
	for name, in := range cases {
		_, err := Parse([]byte(in))
		if !errors.Is(err, ErrOutput) {
			t.Errorf("%s: err %v, want ErrOutput", name, err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is more than one line: %q", name, err)
		}
	}
	// A job error names the errno.
	_, err := Parse([]byte(cases["job error"]))
	if !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("job error: %v", err)
	}
	_, err = Parse([]byte(cases["truncated"]))
	if !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated: %v", err)
	}
}

func TestParseHistLog(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "randrw_clat_hist.1.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseHistLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 4 {
		t.Fatalf("%d samples, want 4", len(s))
	}
	for _, x := range s {
		if x.BS != 4096 || x.Count <= 0 || (x.TimeMs != 1026 && x.TimeMs != 2026) {
			t.Fatalf("sample %+v", x)
		}
	}
	for name, in := range map[string]string{
		"few fields": "1000, 0, 4096\n",
		"bad bins":   "1000, 0, 4096, 1, 2, 3\n",
		"ddir":       "1000, 7, 4096" + strings.Repeat(", 0", PlatNr) + "\n",
		"negative":   "1000, 0, 4096, -1" + strings.Repeat(", 0", PlatNr-1) + "\n",
	} {
		if _, err := ParseHistLog(strings.NewReader(in)); !errors.Is(err, ErrHistLog) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// log_hist_coarseness=2: a quarter of the bins.
	if s, err := ParseHistLog(strings.NewReader("1000, 1, 512, 3" + strings.Repeat(", 1", PlatNr/4-1) + "\n")); err != nil || s[0].Count != 3+PlatNr/4-1 {
		t.Fatalf("coarse: %v %v", s, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"randrw.json", "client-2hosts.json"} {
		b := readTestdata(f, name)
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Add([]byte(`{"fio version":"fio-3.33","jobs":[{"jobname":"a","read":{"total_ios":1,"clat_ns":{"min":1,"max":200,"mean":1,"N":1,"bins":{"100":1}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrOutput) {
				t.Fatalf("error %v does not wrap ErrOutput", err)
			}
			return
		}
		// Whatever parses converts and summarises without panicking,
		// and the histogram holds exactly N samples.
		for i := range out.Jobs {
			for d := 0; d < 3; d++ {
				dir := out.Jobs[i].dir(d)
				if h := binsHistogram(dir.Lat.Bins); h.TotalCount() != dir.Lat.N {
					t.Fatalf("histogram holds %d, N %d", h.TotalCount(), dir.Lat.N)
				}
			}
		}
		hd := []hostData{{Jobs: out.Jobs}}
		_, _, _ = buildSide(hd, Raw, testStart)
	})
}

func FuzzParseHistLog(f *testing.F) {
	f.Add(readTestdata(f, "randrw_clat_hist.1.log"))
	f.Add(readTestdata(f, "client-host0_clat_hist.1.log"))
	f.Add([]byte("1000, 1, 512, 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseHistLog(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrHistLog) {
				t.Fatalf("error %v does not wrap ErrHistLog", err)
			}
			return
		}
		for _, x := range s {
			if x.Count < 0 || x.TimeMs < 0 || x.Dir < 0 || x.Dir > 2 {
				t.Fatalf("sample %+v", x)
			}
		}
	})
}
