// Package daemon is `snapring daemon`: the long-running service that serves
// ublk origin devices for days and runs snapshots' lifecycles on request
// from backup software, over a Unix-socket HTTP/JSON API (docs/api.md; the
// types are in package daemon/api, the client in package client).
//
// Pieces: config.go (YAML, file:line errors, reload), server.go (the socket,
// SO_PEERCRED, strict decoding, routes, Run and the graceful stop),
// daemon.go (devices), snapshots.go (create, take with FIFREEZE, append,
// info, destroy), events.go (the numbered event bus: history, bounded
// per-subscriber backlogs with a dropped count, wait), policy.go (fill
// warnings, LVM-style autoextend, hook commands), metrics.go (Prometheus,
// off by default), state.go (the state file and stale-device cleanup after a
// crash), freeze.go (mountinfo, FIFREEZE/FITHAW).
//
// Teardown goes through ublk.Teardown, the one ordered teardown shared with
// `snapring snapshot run`: images, then snapshots (destroyed and waited
// for), then origins.
//
// Chunk counters are the engine's, per device (Snapshot.DeviceStats). The
// per-I/O metrics come from the ublk targets' Observer, counted per queue
// with atomics only (metrics.go); with metrics off no observer is set. The
// engine cannot raise a storage's limit, so autoextend appends a file it
// creates next to the storage (and removes on destroy).
package daemon
