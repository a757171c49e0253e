package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"registrar/db"
	"registrar/impl/secrets"
)

// CSRF is the browser's form token, and its cookie to set (nil when the
// browser has one already).
func (s *Service) CSRF(b Browser) (string, *http.Cookie) { return s.csrf(b) }

// CheckCSRF accepts a form whose token matches the browser's cookie.
func (s *Service) CheckCSRF(b Browser, token string) bool { return s.checkCSRF(b, token) }

// CSRFFailed is the page of a form without its valid token.
func (s *Service) CSRFFailed(ctx context.Context) Page { return s.csrfFailed(ctx) }

// Message is a one-paragraph page: title and text are message IDs (the
// text's placeholders filled from args), with a link to back when set.
func (s *Service) Message(ctx context.Context, status int, title, text, back string, args ...any) Page {
	return s.message(ctx, status, title, text, back, args...)
}

// Redirect is a 303 to location.
func Redirect(location string, cookies ...*http.Cookie) Page { return redirect(location, cookies...) }

// Cookies drops the nil ones of cookies to set.
func Cookies(cs ...*http.Cookie) []*http.Cookie { return nonNilCookies(cs...) }

// SignedIn returns the account the browser is signed in as, if it may
// still use the server.
func (s *Service) SignedIn(ctx context.Context, b Browser) (db.Account, bool) {
	return s.signedIn(ctx, b)
}

// StartSession signs the browser in as userID (an account it has just
// created) and returns the cookie.
func (s *Service) StartSession(ctx context.Context, b Browser, userID string) (*http.Cookie, error) {
	return s.startSession(ctx, b, userID, "")
}

// CurrentSession is the stored ID (hash) of the browser's session, "" when
// it has no session cookie.
func (s *Service) CurrentSession(b Browser) string {
	if token := b.cookie(sessionCookie); token != "" {
		return secrets.HashToken(token)
	}
	return ""
}

// startSession stores a browser session of userID, refused when the
// account's password is no longer verifiedPasswordHash (when set), and
// returns its cookie.
func (s *Service) startSession(ctx context.Context, b Browser, userID, verifiedPasswordHash string) (*http.Cookie, error) {
	session := secrets.RandomString(32)
	lifetime := s.cfg.OAuth.BrowserSessionLifetime.Duration
	if err := s.store.CreateBrowserSession(ctx, secrets.HashToken(session), userID, s.now().Add(lifetime).UnixMilli(),
		verifiedPasswordHash); err != nil {
		return nil, err
	}
	if err := s.store.TouchBrowserSession(ctx, secrets.HashToken(session), b.UserAgent, b.IP); err != nil {
		s.log.WarnContext(ctx, "noting a browser session's use failed", "error", err)
	}
	return s.cookie(sessionCookie, session, lifetime), nil
}

// GrantFormAction is the CSP form-action source of a grant's redirect
// URI (forms that end there after redirects), nil for none.
func (s *Service) GrantFormAction(ctx context.Context, grantID string) []string {
	return s.nextFormAction(ctx, PathConsent+grantID)
}

// ClientExists reports whether clientID is a registered client.
func (s *Service) ClientExists(ctx context.Context, clientID string) (bool, error) {
	_, err := s.store.OAuthClient(ctx, clientID)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PendingGrant reports whether grantID is an authorisation in progress.
func (s *Service) PendingGrant(ctx context.Context, grantID string) bool {
	g, err := s.store.OAuthGrant(ctx, grantID)
	return err == nil && g.Status == db.GrantPending
}

// grantOfNext is the grant a sign-in continues to, or "".
func grantOfNext(next string) string {
	id, _ := strings.CutPrefix(localNext(next), PathConsent)
	if id == localNext(next) {
		return ""
	}
	return id
}

// ClientLogoURI is a registered client's logo_uri, in lang where it
// registered one; "" when it has none.
func (s *Service) ClientLogoURI(ctx context.Context, clientID, lang string) (string, error) {
	m, err := s.clientMetadata(ctx, clientID)
	if err != nil {
		return "", err
	}
	if v := m.Localized["logo_uri#"+lang]; v != "" && lang != "" {
		return v, nil
	}
	return m.LogoURI, nil
}

// GrantClient is the client of a pending authorisation as the pages show
// it, nil when the grant is gone.
func (s *Service) GrantClient(ctx context.Context, grantID string) *ClientView {
	t, err := s.loadConsentTarget(ctx, grantID)
	if err != nil {
		return nil
	}
	return s.clientView(ctx, t.client)
}

// ClientOf is a registered client as the pages show it, nil when it is
// unknown.
func (s *Service) ClientOf(ctx context.Context, clientID string) *ClientView {
	m, err := s.clientMetadata(ctx, clientID)
	if err != nil {
		return nil
	}
	return s.clientView(ctx, m)
}

// LocalNext is next when it is a page of registrar, else "" (no open
// redirects).
func LocalNext(next string) string { return localNext(next) }
