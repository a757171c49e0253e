// Package seen records which devices are used, from which address and
// user agent, cheaply: a request costs a map lookup, the same use is
// noted at most once per Granularity, and the uses are written in one
// batch every few seconds (devices' last_seen_*, accounts' last seen, the
// addresses whois lists).
package seen

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"registrar/db"
)

// Granularity is how often one device's use from one address and user
// agent is noted at most (Synapse's LAST_SEEN_GRANULARITY).
const Granularity = 2 * time.Minute

// MaxUserAgent is how much of a user agent is kept, in bytes.
const MaxUserAgent = 512

// maxPending bounds the uses waiting for the next write; beyond it, uses
// are dropped (and counted) until the write.
const maxPending = 100_000

// Store is what the recorder writes to.
type Store interface {
	RecordSeen(ctx context.Context, batch []db.Seen) error
}

type key struct{ user, device, ip, agent string }

// Recorder batches device uses. The zero value is not usable; see New.
type Recorder struct {
	store Store
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	pending map[key]int64
	// noted is when each use was last noted; it is cleared after a write
	// once older than Granularity, so it stays as small as the traffic of
	// a few minutes.
	noted   map[key]int64
	dropped int
}

// New returns a recorder writing to store.
func New(store Store, now func() time.Time, log *slog.Logger) *Recorder {
	return &Recorder{store: store, now: now, log: log, pending: map[key]int64{}, noted: map[key]int64{}}
}

// Record notes a use of the user's device from ip with userAgent.
func (r *Recorder) Record(userID, deviceID, ip, userAgent string) {
	if deviceID == "" {
		return
	}
	k := key{userID, deviceID, ip, truncate(userAgent)}
	now := r.now().UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.noted[k]; ok && now-last < Granularity.Milliseconds() {
		return
	}
	if len(r.pending) >= maxPending {
		r.dropped++
		return
	}
	r.noted[k] = now
	r.pending[k] = now
}

// Flush writes the uses noted since the last write in one transaction.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := make([]db.Seen, 0, len(r.pending))
	for k, at := range r.pending {
		batch = append(batch, db.Seen{UserID: k.user, DeviceID: k.device, IP: k.ip, UserAgent: k.agent, At: at})
	}
	clear(r.pending)
	dropped := r.dropped
	r.dropped = 0
	old := r.now().Add(-Granularity).UnixMilli()
	for k, at := range r.noted {
		if at < old {
			delete(r.noted, k)
		}
	}
	r.mu.Unlock()
	if dropped > 0 {
		r.log.Warn("device uses dropped: too many between writes", "count", dropped)
	}
	return r.store.RecordSeen(ctx, batch)
}

// Run flushes every interval until ctx is done, then once more.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(final); err != nil {
				r.log.Warn("writing device uses failed", "error", err)
			}
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("writing device uses failed", "error", err)
			}
		}
	}
}

// truncate makes a user agent storable text (valid UTF-8 without NUL, as
// PostgreSQL wants) of at most MaxUserAgent bytes.
func truncate(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= MaxUserAgent {
		return s
	}
	s = s[:MaxUserAgent]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
