package daemon

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/snapring/snapring/daemon/api"
)

// bus numbers events, keeps the last history of them (for resumption,
// wait-event and a snapshot's last events) and feeds subscribers, each
// through its own bounded backlog: a subscriber that does not keep up loses
// its oldest events and is told how many (an api.EventDropped marker), it
// never holds up the publisher or grows without bound.
type bus struct {
	mu      sync.Mutex
	seq     uint64
	history []api.Event // ring of the last cap(history) events, oldest at head
	head    int
	subs    map[*subscriber]struct{}
	maxSubs int
	backlog int
	changed chan struct{} // closed and replaced on every publish
	closed  chan struct{}
	isClose bool
	// after runs for every event outside the lock (hooks, metrics).
	after []func(api.Event)
}

func newBus(history, backlog, maxSubs int) *bus {
	return &bus{history: make([]api.Event, 0, history), subs: map[*subscriber]struct{}{},
		maxSubs: maxSubs, backlog: backlog, changed: make(chan struct{}), closed: make(chan struct{})}
}

// publish stamps e with the next sequence number and the time, and
// delivers it.
func (b *bus) publish(e api.Event) api.Event {
	b.mu.Lock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if len(b.history) < cap(b.history) {
		b.history = append(b.history, e)
	} else {
		b.history[b.head] = e
		b.head = (b.head + 1) % len(b.history)
	}
	for s := range b.subs {
		s.push(e)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	after := b.after
	b.mu.Unlock()
	for _, f := range after {
		f(e)
	}
	return e
}

// historyLocked returns the kept events, oldest first.
func (b *bus) historyLocked() []api.Event {
	out := make([]api.Event, 0, len(b.history))
	out = append(out, b.history[b.head:]...)
	return append(out, b.history[:b.head]...)
}

// last returns up to n of the latest events that match.
func (b *bus) last(n int, match func(api.Event) bool) []api.Event {
	b.mu.Lock()
	h := b.historyLocked()
	b.mu.Unlock()
	var out []api.Event
	for i := len(h) - 1; i >= 0 && len(out) < n; i-- {
		if match(h[i]) {
			out = append(out, h[i])
		}
	}
	slices.Reverse(out)
	return out
}

// subscriber is one stream's bounded backlog.
type subscriber struct {
	mu      sync.Mutex
	buf     []api.Event // ring
	head, n int
	dropped uint64
	notify  chan struct{} // 1-buffered: something arrived
	match   func(api.Event) bool
}

func (s *subscriber) push(e api.Event) {
	if s.match != nil && !s.match(e) {
		return
	}
	s.mu.Lock()
	if s.n == len(s.buf) {
		s.head = (s.head + 1) % len(s.buf)
		s.n--
		s.dropped++
	}
	s.buf[(s.head+s.n)%len(s.buf)] = e
	s.n++
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take moves the backlog out (into out) and returns the count dropped since
// the last take.
func (s *subscriber) take(out []api.Event) ([]api.Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; s.n > 0; s.n-- {
		out = append(out, s.buf[s.head])
		s.head = (s.head + 1) % len(s.buf)
	}
	d := s.dropped
	s.dropped = 0
	return out, d
}

// pending is the backlog's length (tests: bounded).
func (s *subscriber) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// subscribe starts a subscriber with the kept events after since already in
// its backlog; events older than the history count as dropped. It fails
// when max subscribers are connected.
func (b *bus) subscribe(since uint64, match func(api.Event) bool) (*subscriber, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) >= b.maxSubs || b.isClose {
		return nil, false
	}
	s := &subscriber{buf: make([]api.Event, b.backlog), notify: make(chan struct{}, 1), match: match}
	h := b.historyLocked()
	if since < b.seq {
		oldest := b.seq + 1
		if len(h) > 0 {
			oldest = h[0].Seq
		}
		if since+1 < oldest {
			s.dropped = oldest - since - 1
		}
		for _, e := range h {
			if e.Seq > since {
				s.push(e)
			}
		}
	}
	b.subs[s] = struct{}{}
	return s, true
}

func (b *bus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (b *bus) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// close ends every stream and wait (they see closed).
func (b *bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.isClose {
		b.isClose = true
		close(b.closed)
	}
}

// wait returns the first kept event after `after` that matches, waiting at
// most timeout for one; nil when none came.
func (b *bus) wait(ctx context.Context, after uint64, match func(api.Event) bool, timeout time.Duration) *api.Event {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		b.mu.Lock()
		for _, e := range b.historyLocked() {
			if e.Seq > after && (match == nil || match(e)) {
				b.mu.Unlock()
				return &e
			}
		}
		if b.seq > after {
			after = b.seq
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		case <-b.closed:
			return nil
		}
	}
}
