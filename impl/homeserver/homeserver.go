// Package homeserver keeps a homeserver (Synapse) in step with registrar
// when registrar is its authentication service: users and devices are
// provisioned there before their tokens are handed out, and every later
// change (a device ended, an account deactivated, a profile changed) is
// pushed. Changes are noted by the database, in the transaction that makes
// them, in an outbox; this package delivers the notes, reading the
// account or device as it is at delivery, so a note delivered twice or
// late does no harm. Two protocols: Synapse's /_synapse/mas API (Synapse
// 1.135+) and its admin API (older Synapse under MSC3861).
package homeserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"registrar/db"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
)

// Protocols (the kind option).
const (
	// KindSynapse is the /_synapse/mas/* API of Synapse 1.135+ (its
	// matrix_authentication_service section), with a shared secret.
	KindSynapse = "synapse"
	// KindSynapseAdmin is Synapse's admin API with an admin token (its
	// experimental_features.msc3861.admin_token, Synapse 1.94-1.134).
	KindSynapseAdmin = "synapse_admin"
)

// ExternalIDProvider is the auth_provider under which Synapse's MSC3861
// delegation links the introspected sub to a user.
const ExternalIDProvider = "oauth-delegated"

// Options configure the service.
type Options struct {
	// ServerName is the homeserver's (and registrar's) server name.
	ServerName string
	// Endpoint is the homeserver's base URL.
	Endpoint string
	// Secret is the shared secret (KindSynapse) or the admin token
	// (KindSynapseAdmin).
	Secret string
	Kind   string
	// Client makes the calls; a client with a 10 s timeout when nil.
	Client  *http.Client
	Log     *slog.Logger
	Now     func() time.Time
	Metrics *metrics.Set
}

// Store is what the service needs of the database.
type Store interface {
	ClaimOutbox(ctx context.Context, limit int, leaseMS int64) ([]db.OutboxEntry, error)
	UserOutbox(ctx context.Context, userID string) ([]db.OutboxEntry, error)
	CompleteOutbox(ctx context.Context, e db.OutboxEntry) error
	FailOutbox(ctx context.Context, e db.OutboxEntry, dueAt int64, reason string) error
	HomeserverOutboxStats(ctx context.Context) (db.OutboxStats, error)
	AccountByUserID(ctx context.Context, userID string) (db.Account, error)
	Threepids(ctx context.Context, userID string) ([]db.Threepid, error)
	HomeserverDevices(ctx context.Context, userID string) ([]db.HomeserverDevice, error)
	HomeserverDevice(ctx context.Context, userID, deviceID string) (db.HomeserverDevice, error)
	AccountsAfter(ctx context.Context, after string, limit int) ([]db.Account, error)
	CountAccounts(ctx context.Context) (int64, error)
}

// Service delivers the outbox to the homeserver.
type Service struct {
	o     Options
	store Store
	api   api
	// wake makes Run look at the outbox at once.
	wake chan struct{}

	mu sync.Mutex
	// lastFailure is when a delivery last failed, and why (for /readyz).
	lastFailure time.Time
	lastReason  string
}

// New builds the service of o over store.
func New(o Options, store Store) (*Service, error) {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := caller{client: o.Client, base: strings.TrimSuffix(o.Endpoint, "/"), secret: o.Secret, server: o.ServerName}
	s := &Service{o: o, store: store, wake: make(chan struct{}, 1)}
	switch o.Kind {
	case KindSynapse, "":
		s.api = masAPI{c}
	case KindSynapseAdmin:
		s.api = adminAPI{c}
	default:
		return nil, fmt.Errorf("homeserver: unknown kind %q", o.Kind)
	}
	return s, nil
}

// ErrUnavailable is the answer when the homeserver cannot be told what a
// request needs it to know: 503, try again shortly.
var ErrUnavailable = &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown,
	Message: "The homeserver could not be reached; try again shortly", RetryAfterMS: 5000}

// ensureTimeout bounds how long a request waits for the homeserver, and
// ensureAttempts how often it tries (0.25 s, then 0.5 s apart).
const (
	ensureTimeout  = 10 * time.Second
	ensureAttempts = 3
)

// Ensure delivers at once what the homeserver must know before a token of
// userID on deviceID is handed out: the user and that device (deviceID ""
// for the user alone). It retries briefly; ErrUnavailable when it could
// not (the notes stay for the background delivery).
func (s *Service) Ensure(ctx context.Context, userID, deviceID string) error {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	entries, err := s.store.UserOutbox(ctx, userID)
	if err != nil {
		return matrix.Internal(err)
	}
	var wanted []db.OutboxEntry
	for _, e := range entries {
		if e.DeviceID == "" || e.DeviceID == deviceID {
			wanted = append(wanted, e)
		}
	}
	giveUp := func(failed []db.OutboxEntry, err error) error {
		s.failed(failed, err)
		s.o.Log.WarnContext(ctx, "the homeserver could not be told of a new session; it is not handed out",
			"user_id", userID, "device_id", deviceID, "error", err)
		return ErrUnavailable
	}
	for attempt := 0; len(wanted) > 0; attempt++ {
		var failed []db.OutboxEntry
		var lastErr error
		for _, e := range wanted {
			if err := s.deliver(ctx, e); err != nil {
				failed, lastErr = append(failed, e), err
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if attempt == ensureAttempts-1 {
			return giveUp(failed, lastErr)
		}
		select {
		case <-ctx.Done():
			return giveUp(failed, lastErr)
		case <-time.After(time.Duration(250<<attempt) * time.Millisecond):
		}
		wanted = failed
	}
	return nil
}

// failed records failed deliveries for the background retries.
func (s *Service) failed(entries []db.OutboxEntry, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range entries {
		_ = s.store.FailOutbox(ctx, e, s.o.Now().Add(backoff(e.Attempts)).UnixMilli(), err.Error())
	}
}

// Wake makes the background delivery look at the outbox now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pollInterval is how often the background delivery looks at the outbox
// when nothing wakes it.
const pollInterval = time.Second

// leaseMS is how long a claimed note is another instance's to leave alone.
const leaseMS = 60_000

// Run delivers the outbox until ctx ends: claimed notes in batches, each
// user's own note first, failures retried with growing backoff.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for s.runOnce(ctx) > 0 && ctx.Err() == nil {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Flush delivers every note due now, once each (failures are left for
// their retry), and returns how many it delivered.
func (s *Service) Flush(ctx context.Context) int {
	total := 0
	for {
		n := s.runOnce(ctx)
		if n == 0 || ctx.Err() != nil {
			return total
		}
		total += n
	}
}

// runOnce delivers one batch; it returns how many notes it claimed.
func (s *Service) runOnce(ctx context.Context) int {
	entries, err := s.store.ClaimOutbox(ctx, 100, leaseMS)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Log.Warn("reading the homeserver outbox failed", "error", err)
		}
		return 0
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return 0
		}
		if err := s.deliver(ctx, e); err != nil {
			due := s.o.Now().Add(backoff(e.Attempts))
			s.o.Log.Warn("pushing a change to the homeserver failed; retrying", "user_id", e.UserID, "device_id", e.DeviceID,
				"attempts", e.Attempts+1, "retry_at", due, "error", err)
			if ferr := s.store.FailOutbox(ctx, e, due.UnixMilli(), err.Error()); ferr != nil && ctx.Err() == nil {
				s.o.Log.Warn("recording a homeserver failure failed", "error", ferr)
			}
		}
	}
	return len(entries)
}

// backoff is how long a note that failed attempts times waits: 1 s
// doubling to 5 minutes, with jitter.
func backoff(attempts int) time.Duration {
	d := time.Second << min(attempts, 9)
	d = min(d, 5*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// deliver pushes one note: the user's state, or the device's (upserted
// while it exists, deleted once it is gone), then removes it.
func (s *Service) deliver(ctx context.Context, e db.OutboxEntry) error {
	var err error
	if e.DeviceID == "" {
		err = s.pushUser(ctx, e.UserID)
	} else {
		err = s.pushDevice(ctx, e.UserID, e.DeviceID)
	}
	s.o.Metrics.HomeserverPush(kindOf(e), err)
	if err != nil {
		s.mu.Lock()
		s.lastFailure, s.lastReason = s.o.Now(), err.Error()
		s.mu.Unlock()
		return err
	}
	return s.store.CompleteOutbox(ctx, e)
}

func kindOf(e db.OutboxEntry) string {
	if e.DeviceID == "" {
		return "user"
	}
	return "device"
}

// userState is an account as the homeserver is told of it.
type userState struct {
	UserID, Localpart      string
	DisplayName, AvatarURL string
	Emails                 []string
	Deactivated, Erased    bool
	Locked, Suspended      bool
	Admin                  bool
	// Guest accounts are made by the homeserver itself on their first
	// request (from the introspection's username): Synapse refuses to be
	// told of a numeric user ID.
	Guest bool
}

func (s *Service) state(ctx context.Context, userID string) (userState, error) {
	a, err := s.store.AccountByUserID(ctx, userID)
	if err != nil {
		return userState{}, err
	}
	u := userState{UserID: a.UserID, Localpart: localpart(a.UserID), DisplayName: a.DisplayName, AvatarURL: a.AvatarURL,
		Deactivated: a.Deactivated(), Erased: a.Erased, Locked: a.Locked, Suspended: a.Suspended, Admin: a.Admin,
		Guest: a.Kind == db.KindGuest}
	threepids, err := s.store.Threepids(ctx, userID)
	if err != nil {
		return userState{}, err
	}
	for _, t := range threepids {
		if t.Medium == db.MediumEmail {
			u.Emails = append(u.Emails, t.Address)
		}
	}
	return u, nil
}

func (s *Service) pushUser(ctx context.Context, userID string) error {
	u, err := s.state(ctx, userID)
	if errors.Is(err, db.ErrNotFound) {
		return nil // never an account here: nothing to tell
	}
	if err != nil {
		return err
	}
	if u.Guest && !u.Deactivated {
		return nil
	}
	return s.api.pushUser(ctx, u)
}

func (s *Service) pushDevice(ctx context.Context, userID, deviceID string) error {
	d, err := s.store.HomeserverDevice(ctx, userID, deviceID)
	if errors.Is(err, db.ErrNotFound) {
		return s.api.deleteDevice(ctx, userID, deviceID)
	}
	if err != nil {
		return err
	}
	err = s.api.upsertDevice(ctx, userID, d)
	if errors.Is(err, errUnknownUser) {
		u, serr := s.state(ctx, userID)
		if serr != nil {
			return serr
		}
		if u.Guest {
			return nil // the homeserver makes the guest, and its device, itself
		}
		// The user's own note is behind this one (or was never made):
		// the user first, then the device.
		if err := s.pushUser(ctx, userID); err != nil {
			return err
		}
		err = s.api.upsertDevice(ctx, userID, d)
	}
	return err
}

// LocalpartAvailable asks the homeserver whether it would let a user
// take localpart (its application services' exclusive namespaces live
// there): nil, the homeserver's refusal (M_USER_IN_USE, M_EXCLUSIVE,
// M_INVALID_USERNAME), or ErrUnavailable.
func (s *Service) LocalpartAvailable(ctx context.Context, localpart string) *matrix.Error {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	err := s.api.localpartAvailable(ctx, localpart)
	var refused *matrix.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		return refused
	}
	s.o.Log.WarnContext(ctx, "asking the homeserver whether a localpart is free failed", "error", err)
	return ErrUnavailable
}

// ErrUnsupported means the homeserver has no API for what was asked.
var ErrUnsupported = errors.New("homeserver: not supported by this homeserver")

// AllowCrossSigningReset lets the user replace their cross-signing keys
// without User-Interactive Authentication for a while (what Synapse asks
// the account page to confirm under delegation).
func (s *Service) AllowCrossSigningReset(ctx context.Context, userID string) error {
	ctx, cancel := context.WithTimeout(ctx, ensureTimeout)
	defer cancel()
	return s.api.allowCrossSigningReset(ctx, userID)
}

// Health reports whether deliveries work: nil, or why the last one
// failed while notes wait to be retried.
func (s *Service) Health(ctx context.Context) error {
	stats, err := s.store.HomeserverOutboxStats(ctx)
	if err != nil {
		return err
	}
	if stats.Failing > 0 {
		return fmt.Errorf("%d change(s) for the homeserver failing (%s)", stats.Failing, stats.LastError)
	}
	return nil
}

// Stats are the outbox's counts (for the metrics).
func (s *Service) Stats(ctx context.Context) (db.OutboxStats, error) {
	return s.store.HomeserverOutboxStats(ctx)
}

// Drift is what a reconciliation found different on the homeserver.
type Drift struct {
	Users, DevicesAdded, DevicesRemoved int
	Failed                              []string
}

// Sync reconciles every account with the homeserver: its state pushed and
// its devices made exactly registrar's (sync_devices); progress is told
// after each account.
func (s *Service) Sync(ctx context.Context, progress func(done, total int64)) (Drift, error) {
	total, err := s.store.CountAccounts(ctx)
	if err != nil {
		return Drift{}, err
	}
	var drift Drift
	var done int64
	after := ""
	for {
		batch, err := s.store.AccountsAfter(ctx, after, 200)
		if err != nil {
			return drift, err
		}
		if len(batch) == 0 {
			return drift, nil
		}
		for _, a := range batch {
			after = a.UserID
			if err := s.syncUser(ctx, a.UserID, &drift); err != nil {
				if ctx.Err() != nil {
					return drift, ctx.Err()
				}
				drift.Failed = append(drift.Failed, a.UserID+": "+err.Error())
			}
			done++
			progress(done, total)
		}
	}
}

func (s *Service) syncUser(ctx context.Context, userID string, drift *Drift) error {
	if err := s.pushUser(ctx, userID); err != nil {
		return err
	}
	drift.Users++
	u, err := s.state(ctx, userID)
	if err != nil || u.Deactivated {
		return err
	}
	devices, err := s.store.HomeserverDevices(ctx, userID)
	if err != nil {
		return err
	}
	added, removed, err := s.api.syncDevices(ctx, userID, devices)
	drift.DevicesAdded += added
	drift.DevicesRemoved += removed
	return err
}

// localpart is a user ID's localpart.
func localpart(userID string) string {
	lp, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return lp
}
