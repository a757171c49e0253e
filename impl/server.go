// Package impl implements the generated api.StrictServerInterface: the Matrix
// account registration and management endpoints. The handlers here are
// short and read like the spec; the policies and machinery they use live
// in the packages below impl (see the README's "Architecture").
package impl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/config"
	"registrar/impl/factors"
	"registrar/impl/images"
	"registrar/impl/ldapauth"
	"registrar/impl/metrics"
	"registrar/impl/oauth"
	"registrar/impl/ratelimit"
	"registrar/impl/seen"
	"registrar/impl/threepid"
	"registrar/impl/uia"
	"registrar/impl/upstream"
	"registrar/impl/web"
)

// Server serves the API. Create it with NewServer.
type Server struct {
	*core
	uia *uia.Engine
	// terms is the m.login.terms stage, when offered.
	terms *uia.Terms
	// captcha verifies captcha responses, when captcha is enabled.
	captcha *captchaVerifier
	// threepids validates email addresses and phone numbers.
	threepids *threepid.Service
	// seen records device uses in batches.
	seen *seen.Recorder
	// oauth is the OAuth 2.0 authorisation server, nil when it is off.
	oauth *oauth.Service
	// upstream are the identity providers people may sign in with.
	upstream *upstream.Service
	// directory is the LDAP directory passwords are checked against, nil
	// for none.
	directory *ldapauth.Directory
	// factors are the second factors, nil when they are off (or the pages
	// are, with the OAuth API).
	factors *factors.Service
	// site renders the pages; images keeps the logos they show.
	site   *web.Site
	images *images.Fetcher
	http   http.Handler
}

var _ api.StrictServerInterface = (*Server)(nil)

// Options are NewServer's optional dependencies.
type Options struct {
	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil. Tests inject one.
	Now func() time.Time
}

// NewServer builds the services over store, then the HTTP stack.
func NewServer(cfg config.Config, store *db.Store, opts Options) (*Server, error) {
	log, now := opts.Logger, opts.Now
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	log = slog.New(withRequestAttrs(log.Handler()))
	m := metrics.New()
	c, err := newCore(cfg, store, now, log, m)
	if err != nil {
		return nil, err
	}
	s := &Server{core: c, seen: seen.New(c.revoking, now, log)}
	if s.threepids, err = threepid.New(&s.cfg, s.revoking, s.redis, now, log, m); err != nil {
		return nil, err
	}
	if s.cfg.EnableRegistrationCaptcha {
		s.captcha = newCaptchaVerifier(s.cfg.CaptchaSecret(), s.cfg.Captcha.RecaptchaSiteverifyAPI, log, m)
	}
	if s.images, err = images.New(s.cfg.BlockedRanges(), s.cfg.IPRangeWhitelist, log); err != nil {
		return nil, err
	}
	if s.site, err = web.NewSite(s.cfg.Branding, s.cfg.ServerName, s.cfg.CustomTemplateDirectory); err != nil {
		return nil, err
	}
	if logo := s.cfg.Branding.LogoURI; web.SafeRedirect(logo) {
		s.site.LogoReady = func(ctx context.Context) bool { return s.images.Ready(ctx, logo) }
	}
	if l := s.cfg.LDAP(); l != nil {
		if s.directory, err = ldapauth.New(*l); err != nil {
			return nil, err
		}
		s.accounts.UseDirectory(directoryChecker(s.directory))
	}
	if s.upstream, err = upstream.New(s.cfg.OIDCProviders, strings.TrimSuffix(s.cfg.PublicBaseURL, "/")+upstreamCallbackPath, nil, log); err != nil {
		return nil, err
	}
	if s.cfg.OAuth.Enabled {
		opts := oauth.Options{Store: s.revoking, Accounts: s.accounts, Remote: s.redis, ClientKey: addressKey,
			Secret: s.cfg.SecretKey(), Now: now, Log: log, Metrics: m, Site: s.site, Logos: s.images, Providers: s.providerLinks}
		if s.cfg.SecondFactors.Any() {
			if s.factors, err = factors.New(s.revoking, factors.Options{Secret: s.cfg.SecretKey(), PublicBaseURL: s.cfg.PublicBaseURL,
				ServiceName: s.site.Name(), WebAuthn: s.cfg.SecondFactors.WebAuthnEnabled(), Now: now}); err != nil {
				return nil, err
			}
			if s.cfg.SecondFactors.WebAuthnEnabled() && !s.factors.WebAuthnAvailable() {
				log.Warn("passkeys are off: public_baseurl's host is an IP address, which WebAuthn does not take", "public_baseurl", s.cfg.PublicBaseURL)
			}
			opts.AfterPassword, opts.Gate, opts.Passkeys = s.afterPassword, s.factorGate, s.factors.WebAuthnAvailable()
		}
		s.oauth = oauth.New(&s.cfg, opts)
	}
	if s.uia, err = s.newUIAEngine(); err != nil {
		return nil, err
	}
	if s.homeserver == nil {
		// Nothing is noted for a homeserver this server does not provision.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := store.SetHomeserverSync(ctx, false)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	if s.http, err = newHTTPStack(s); err != nil {
		return nil, err
	}
	if err := s.collectGauges(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.http.ServeHTTP(w, r) }

// Run does the server's background work until ctx is done: it warms
// the password hasher (the hash unknown users are checked against), listens
// for the revocations other instances announce (PostgreSQL), writes the
// device uses noted (every seenInterval, and once more at the end), and
// sweeps expired UIA sessions and the token uses they held. It returns
// once the last write is done.
func (s *Server) Run(ctx context.Context) {
	s.hasher.Warm()
	go s.revoking.Listen(ctx, s.revoking.Revoked, s.revoking.Lost, s.log)
	var flushed sync.WaitGroup
	flushed.Add(1)
	go func() { defer flushed.Done(); s.seen.Run(ctx, seenInterval) }()
	if s.homeserver != nil {
		flushed.Add(1)
		go func() { defer flushed.Done(); s.homeserver.Run(ctx) }()
	}
	defer flushed.Wait()
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes expired UIA and validation sessions, gives back the
// registration token uses of abandoned sessions, and forgets idle rate
// limit buckets, once.
func (s *Server) Sweep(ctx context.Context) {
	n, err := s.store.DeleteExpiredUIASessions(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping expired UIA sessions failed", "error", err)
	} else if n > 0 {
		s.metrics.UIAExpired(n)
		s.log.Info("swept expired UIA sessions", "count", n)
	}
	released, err := s.store.ReleaseAbandonedReservations(ctx, abandonedReservationAge.Milliseconds())
	if err != nil && ctx.Err() == nil {
		s.log.Warn("releasing registration token reservations failed", "error", err)
	} else if released > 0 {
		s.log.Info("released registration token uses of abandoned sessions", "count", released)
	}
	if n, err := s.store.DeleteExpiredThreepidSessions(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping 3PID validation sessions failed", "error", err)
	} else if n > 0 {
		s.log.Info("swept expired 3PID validation sessions", "count", n)
	}
	unusedClientsBefore := s.now().Add(-s.cfg.OAuth.UnusedClientLifetime.Duration).UnixMilli()
	if n, err := s.store.DeleteExpiredOAuth(ctx, unusedClientsBefore); err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping expired OAuth grants, browser sessions and unused clients failed", "error", err)
	} else if n > 0 {
		s.log.Info("swept expired OAuth grants, browser sessions and unused clients", "count", n)
	}
	if _, err := s.store.DeleteExpiredFactorChallenges(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping second factor challenges failed", "error", err)
	}
	if n, err := s.store.DeleteExpiredUpstream(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("sweeping upstream sign-ins failed", "error", err)
	} else if n > 0 {
		s.log.Info("swept unfinished upstream sign-ins and ended upstream sessions", "count", n)
	}
	if age := s.cfg.UserIPsMaxAge; age != nil {
		if n, err := s.store.DeleteClientIPsBefore(ctx, s.now().Add(-age.Duration).UnixMilli()); err != nil && ctx.Err() == nil {
			s.log.Warn("sweeping old client addresses failed", "error", err)
		} else if n > 0 {
			s.log.Info("swept client addresses older than user_ips_max_age", "count", n)
		}
	}
	now := s.now()
	for _, l := range s.allLimiters() {
		l.Reclaim(now)
	}
}

// allLimiters are every rate limiter of the server: its own, the
// validation service's and the OAuth server's.
func (s *Server) allLimiters() []*ratelimit.Limiter {
	all := append(s.limits.all(), s.threepids.Limiter())
	if s.oauth != nil {
		all = append(all, s.oauth.Limiters()...)
	}
	return all
}

// PushToHomeserver delivers the changes noted for the homeserver that are
// due now (Run does so continually).
func (s *Server) PushToHomeserver(ctx context.Context) {
	if s.homeserver != nil {
		s.homeserver.Flush(ctx)
	}
}

// FlushDeviceUses writes the device uses noted since the last write now
// (Run does every seenInterval).
func (s *Server) FlushDeviceUses(ctx context.Context) error { return s.seen.Flush(ctx) }

// seenInterval is how often noted device uses are written.
const seenInterval = 5 * time.Second

// abandonedReservationAge is how old a token reservation without a live
// session must be before the sweep gives its use back; it spares the
// reservations of one-step registrations still in flight.
const abandonedReservationAge = 10 * time.Minute

// directoryChecker is the LDAP directory as the accounts service asks it.
func directoryChecker(d *ldapauth.Directory) accounts.Directory {
	return func(ctx context.Context, login string, byMail bool, password string) (accounts.DirectoryPerson, error) {
		p, err := d.Authenticate(ctx, login, byMail, password)
		switch {
		case errors.Is(err, ldapauth.ErrRefused):
			return accounts.DirectoryPerson{}, accounts.ErrDirectoryRefused
		case err != nil:
			return accounts.DirectoryPerson{}, fmt.Errorf("%w: %v", accounts.ErrDirectoryUnavailable, err)
		}
		return accounts.DirectoryPerson{UID: p.UID, Mail: p.Mail, Name: p.Name}, nil
	}
}
