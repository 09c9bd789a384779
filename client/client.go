// Package client is the Go client of snapring's control API (package
// daemon/api): an http.Client over the daemon's Unix socket. The CLI's
// device and snapshot commands are built on it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// SocketEnv names the environment variable that overrides the socket.
const SocketEnv = "SNAPRING_SOCKET"

// Socket returns the socket to use: flag (if set), else $SNAPRING_SOCKET,
// else api.DefaultSocket.
func Socket(flag string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return api.DefaultSocket
}

// Client talks to one daemon.
type Client struct {
	socket string
	hc     *http.Client
	// Timeout bounds each request but streams and waits (default 2 min:
	// a take with a freeze, a destroy that waits for the storage).
	Timeout time.Duration
}

// New returns a client of the daemon listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}, Timeout: 2 * time.Minute}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Error is an API error, or a failure to reach the daemon.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://snapring"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("snapring daemon at %s: %w", c.socket, unwrapURL(err))
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decodeResponse(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			return &e
		}
		return &api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("HTTP %s: %s", resp.Status, bytes.TrimSpace(data))}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Health is GET /v1/health.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	return h, c.do(ctx, "GET", "/v1/health", nil, &h)
}

// Version is GET /v1/version.
func (c *Client) Version(ctx context.Context) (api.VersionInfo, error) {
	var v api.VersionInfo
	return v, c.do(ctx, "GET", "/v1/version", nil, &v)
}

// AddDevice is POST /v1/devices.
func (c *Client) AddDevice(ctx context.Context, req api.DeviceAddRequest) (api.Device, error) {
	var d api.Device
	return d, c.do(ctx, "POST", "/v1/devices", req, &d)
}

// Devices is GET /v1/devices.
func (c *Client) Devices(ctx context.Context) ([]api.Device, error) {
	var l api.DeviceList
	return l.Devices, c.do(ctx, "GET", "/v1/devices", nil, &l)
}

// Device is GET /v1/devices/{ref} (an ID, a path or /dev/ublkbN).
func (c *Client) Device(ctx context.Context, ref string) (api.Device, error) {
	var d api.Device
	return d, c.do(ctx, "GET", "/v1/devices/"+url.PathEscape(ref), nil, &d)
}

// RemoveDevice is DELETE /v1/devices/{ref}.
func (c *Client) RemoveDevice(ctx context.Context, ref string) error {
	return c.do(ctx, "DELETE", "/v1/devices/"+url.PathEscape(ref), nil, nil)
}

// CreateSnapshot is POST /v1/snapshots.
func (c *Client) CreateSnapshot(ctx context.Context, req api.SnapshotCreateRequest) (api.Snapshot, error) {
	var s api.Snapshot
	return s, c.do(ctx, "POST", "/v1/snapshots", req, &s)
}

// Take is POST /v1/snapshots/{ref}/take.
func (c *Client) Take(ctx context.Context, ref string, freeze bool) (api.Snapshot, error) {
	var s api.Snapshot
	return s, c.do(ctx, "POST", "/v1/snapshots/"+url.PathEscape(ref)+"/take", api.TakeRequest{Freeze: freeze}, &s)
}

// AppendStorage is POST /v1/snapshots/{ref}/append.
func (c *Client) AppendStorage(ctx context.Context, ref string, req api.AppendRequest) (api.Snapshot, error) {
	var s api.Snapshot
	return s, c.do(ctx, "POST", "/v1/snapshots/"+url.PathEscape(ref)+"/append", req, &s)
}

// Snapshot is GET /v1/snapshots/{ref} (an ID or a name).
func (c *Client) Snapshot(ctx context.Context, ref string) (api.Snapshot, error) {
	var s api.Snapshot
	return s, c.do(ctx, "GET", "/v1/snapshots/"+url.PathEscape(ref), nil, &s)
}

// Snapshots is GET /v1/snapshots.
func (c *Client) Snapshots(ctx context.Context) ([]api.Snapshot, error) {
	var l api.SnapshotList
	return l.Snapshots, c.do(ctx, "GET", "/v1/snapshots", nil, &l)
}

// DestroySnapshot is DELETE /v1/snapshots/{ref}.
func (c *Client) DestroySnapshot(ctx context.Context, ref string) error {
	return c.do(ctx, "DELETE", "/v1/snapshots/"+url.PathEscape(ref), nil, nil)
}

// EventFilter narrows events: Kinds (any of them) and Snapshot (0: all).
type EventFilter struct {
	Kinds    []string
	Snapshot uint64
}

func (f EventFilter) query(q url.Values) {
	if len(f.Kinds) > 0 {
		s := f.Kinds[0]
		for _, k := range f.Kinds[1:] {
			s += "," + k
		}
		q.Set("kinds", s)
	}
	if f.Snapshot != 0 {
		q.Set("snapshot", strconv.FormatUint(f.Snapshot, 10))
	}
}

// WaitEvent is GET /v1/events/wait: the first event after since, or
// TimedOut after timeout.
func (c *Client) WaitEvent(ctx context.Context, since uint64, f EventFilter, timeout time.Duration) (api.WaitResult, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "timeout": {timeout.String()}}
	f.query(q)
	var r api.WaitResult
	cc := *c
	cc.Timeout = timeout + time.Minute
	return r, cc.do(ctx, "GET", "/v1/events/wait?"+q.Encode(), nil, &r)
}

// Watch is GET /v1/events: fn gets each event (and api.EventDropped
// markers) until ctx ends, fn returns an error, or the daemon stops. since
// < 0 starts with the next event; otherwise with the first after since.
func (c *Client) Watch(ctx context.Context, since int64, f EventFilter, fn func(api.Event) error) error {
	q := url.Values{}
	if since >= 0 {
		q.Set("since", strconv.FormatInt(since, 10))
	}
	f.query(q)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://snapring/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("snapring daemon at %s: %w", c.socket, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return decodeResponse(resp, nil)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
