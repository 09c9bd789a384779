package daemon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/snapring/snapring/client"
	"github.com/snapring/snapring/daemon/api"
)

func clientFilter(kind string, snap uint64) client.EventFilter {
	return client.EventFilter{Kinds: []string{kind}, Snapshot: snap}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"socket: relative.sock\n", "c.yaml:1: socket \"relative.sock\": want an absolute path"},
		{"log:\n  format: xml\n", "c.yaml:2: log format \"xml\": want text or json"},
		{"colour: red\n", "c.yaml:1: field colour not found"},
		{"api:\n  read_timeout: soon\n", "c.yaml:2: bad duration \"soon\""},
		{"defaults:\n  storage:\n    limit: 4 parsecs\n", "c.yaml:3: bad size"},
		{"defaults:\n  policy:\n    warn: [90, 80]\n", "c.yaml:2: defaults.policy: warning levels must increase"},
		{"hooks:\n  - events: [no-space]\n    argv: [notify]\n", "c.yaml:3: hook argv must start with an absolute path"},
		{"hooks:\n  - events: [nope]\n    argv: [/bin/true]\n", "c.yaml:2: unknown event kind \"nope\""},
		{"devices:\n  - path: /a\n  - path: /a\n", "c.yaml:3: device /a listed twice"},
		{"devices:\n  - path: /a\n    depth: 99999\n", "c.yaml:2: devices[0]:"},
		{"metrics:\n  address: nowhere\n", "c.yaml:2: metrics address"},
		{"- a\n- b\n", "c.yaml:1: want a mapping"},
		{"socket: [\n", "c.yaml:"},
	}
	for _, tc := range cases {
		_, err := ParseConfig("c.yaml", []byte(tc.yaml))
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v; want %q...", tc.yaml, err, tc.want)
		}
	}
	c, err := ParseConfig("c.yaml", []byte("socket: /run/x.sock\nmetrics:\n  address: 127.0.0.1:9477\ndefaults:\n  storage: {path: /var/lib/snapring, limit: 4GiB}\n  policy: {autoextend_threshold: 70, autoextend_percent: 20, autoextend_limit: 16GiB}\nhooks:\n  - {events: [no-space, corrupted], argv: [/usr/bin/logger, snapring], timeout: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Defaults.Storage.Limit != 4<<30 || c.Defaults.Policy.AutoextendLimit != 16<<30 || len(c.Defaults.Policy.Warn) != 4 || c.API.MaxRequestBytes != DefaultMaxRequestBytes {
		t.Fatalf("%+v", c)
	}
}

func TestMountinfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"37 35 259:3 / /data rw - ext4 /dev/ublkb3 rw\nbad line\n"
	ms, err := parseMountinfo(strings.NewReader(in))
	if err != nil || len(ms) != 2 || ms[0].point != "/mnt/with space" || ms[1].point != "/data" {
		t.Fatalf("%+v %v", ms, err)
	}
}

// FuzzDecodeRequest: no input panics the strict decoder, and what it
// accepts survives a round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"path":"/x","queues":2}`, `{"devices":[1,2],"storage":{"path":"/s","limit_bytes":4096}}`,
		`{"freeze":true}`, `{"path":"/a","offset_bytes":4096}`, `{"x":1}`, `{`, `[]`, `null`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&api.DeviceAddRequest{}, &api.SnapshotCreateRequest{}, &api.TakeRequest{}, &api.AppendRequest{}} {
			if err := DecodeRequest(data, v, 1<<16); err != nil {
				var ae *apiErr
				if !errors.As(err, &ae) || ae.code == "" || strings.Contains(ae.msg, "\n") {
					t.Fatalf("error %v is not an API error on one line", err)
				}
				continue
			}
			again, _ := json.Marshal(v)
			if err := DecodeRequest(again, v, 1<<16); err != nil {
				t.Fatalf("accepted %q but not its re-encoding %q: %v", data, again, err)
			}
		}
	})
}

func TestShippedConfigParses(t *testing.T) {
	c, err := LoadConfig("../dist/snapring.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != api.DefaultSocket || c.Defaults.Policy.AutoextendThreshold != 100 {
		t.Fatalf("%+v", c)
	}
}
