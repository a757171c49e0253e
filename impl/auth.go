package impl

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/appservice"
	"registrar/impl/matrix"
	"registrar/impl/ratelimit"
	"registrar/impl/secrets"
)

// requester is the authenticated owner of a request's access token.
type requester struct {
	UserID   string
	DeviceID string
	IsGuest  bool
	Admin    bool
	// Suspended accounts may not change the account (Matrix v1.13).
	Suspended bool
	// Puppet: an admin made the token (its use is not the user's).
	Puppet  bool
	TokenID int64
	// AppService is set when the token is an application service's
	// as_token; UserID is then its sender or the asserted user_id.
	AppService *appservice.Service
}

// requestInfo is what the operation middleware learns about a request,
// stored once in its context for the handler.
type requestInfo struct {
	clientIP string
	who      *requester
	// authErr is why the token of an operation whose token is optional
	// was refused; the handler decides whether it matters.
	authErr error
	// token is the access token sent to an operation whose spec declares
	// no security (POST /login of an application service).
	token string
	// request is the request itself (its cookies, or to hand it to the
	// OAuth library).
	request *http.Request
	// errorFormat is how the operation's errors are written: "" (Matrix),
	// "oauth2" (RFC 6749) or "html" (a page).
	errorFormat string
	// The request's ID and operation (the spec's operationId) go into
	// every log line of the request; errcode is that of its error answer.
	operation, errcode string
	// idPrefix and seq make the request's ID (requestID).
	idPrefix string
	seq      uint64
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	if info == nil {
		return &requestInfo{}
	}
	return info
}

// requesterFrom returns the request's authenticated user, or nil.
func requesterFrom(ctx context.Context) *requester { return infoFrom(ctx).who }

// optionalRequester is the request's user on an operation whose token is
// optional: nil without a token, an error for a bad one.
func optionalRequester(ctx context.Context) (*requester, error) {
	info := infoFrom(ctx)
	return info.who, info.authErr
}

// clientIP is the request's client address: the peer, or the
// X-Forwarded-For entry added by a trusted proxy.
func clientIP(ctx context.Context) string { return infoFrom(ctx).clientIP }

// presentedToken is the access token sent to an operation without declared
// security.
func presentedToken(ctx context.Context) string { return infoFrom(ctx).token }

// accessToken extracts the token from the Authorization: Bearer header or
// the access_token query parameter; both at once is refused.
func accessToken(header http.Header, query url.Values) (string, error) {
	values := header.Values("Authorization")
	fromQuery := query.Get("access_token")
	switch {
	case len(values) > 1:
		return "", &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeMissingToken, Message: "Too many Authorization headers."}
	case len(values) == 1:
		if fromQuery != "" {
			return "", matrix.BadRequest(matrix.CodeInvalidParam, "Mixing Authorization headers and access_token query parameters.")
		}
		scheme, token, ok := strings.Cut(values[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsRune(token, ' ') {
			return "", &matrix.Error{Status: http.StatusUnauthorized, Code: matrix.CodeMissingToken, Message: "Invalid Authorization header."}
		}
		return token, nil
	}
	return fromQuery, nil
}

// tokenStore is what resolving tokens needs of the database.
type tokenStore interface {
	LookupAccessToken(ctx context.Context, hash string) (db.TokenOwner, error)
	Device(ctx context.Context, userID, deviceID string) (db.Device, error)
	MarkAccessTokenUsed(ctx context.Context, userID string, tokenID, refreshTokenID int64) error
}

// tokenResolver finds who a request's access token belongs to.
type tokenResolver struct {
	store       tokenStore
	appServices *appservice.Index
	accounts    *accounts.Service
	now         func() time.Time
}

// resolve resolves the request's access token. Without a token it
// returns nil, or M_MISSING_TOKEN when required. A locked account's token
// is M_USER_LOCKED unless allowLocked (logging out).
func (s *tokenResolver) resolve(ctx context.Context, r *http.Request, query url.Values, required, allowLocked bool) (*requester, error) {
	token, err := accessToken(r.Header, query)
	if err != nil {
		return nil, err
	}
	if token == "" {
		if required {
			return nil, matrix.ErrMissingToken
		}
		return nil, nil
	}
	if as := s.appServices.ByToken(token); as != nil {
		who, err := s.appServiceRequester(as, query.Get("user_id"))
		if err != nil {
			return nil, err
		}
		return who, s.masqueradeDevice(ctx, who, query)
	}
	owner, err := s.store.LookupAccessToken(ctx, secrets.HashToken(token))
	if errors.Is(err, db.ErrNotFound) {
		return nil, matrix.ErrUnknownToken
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if owner.Deactivated {
		return nil, matrix.ErrUnknownToken
	}
	if owner.ExpiresAt != nil && *owner.ExpiresAt <= s.now().UnixMilli() {
		return nil, matrix.ErrExpiredToken
	}
	if owner.Locked && !allowLocked {
		return nil, matrix.ErrUserLocked
	}
	if owner.RefreshTokenID != nil && !owner.Used {
		// The first use of a refreshed pair consumes the refresh token it replaced.
		err := s.store.MarkAccessTokenUsed(ctx, owner.UserID, owner.TokenID, *owner.RefreshTokenID)
		if err != nil {
			return nil, matrix.Internal(err)
		}
	}
	return &requester{UserID: owner.UserID, DeviceID: owner.DeviceID, IsGuest: owner.Kind == db.KindGuest,
		Admin: owner.Admin, Suspended: owner.Suspended, Puppet: owner.Puppet, TokenID: owner.TokenID}, nil
}

// masqueradeDevice lets an application service act as one of its user's
// devices with ?device_id= (Matrix v1.17, MSC4326; the unstable
// org.matrix.msc3202.device_id that bridges still send is accepted too).
func (s *tokenResolver) masqueradeDevice(ctx context.Context, who *requester, query url.Values) error {
	device := query.Get("device_id")
	if device == "" {
		device = query.Get("org.matrix.msc3202.device_id")
	}
	if device == "" {
		return nil
	}
	_, err := s.store.Device(ctx, who.UserID, device)
	if errors.Is(err, db.ErrNotFound) {
		return matrix.BadRequest(matrix.CodeUnknownDevice, "The device does not belong to the user")
	}
	if err != nil {
		return matrix.Internal(err)
	}
	who.DeviceID = device
	return nil
}

// appServiceRequester is an application service acting as its sender or,
// with ?user_id=, as a user in its namespaces (identity assertion).
func (s *tokenResolver) appServiceRequester(as *appservice.Service, assert string) (*requester, error) {
	sender := s.accounts.UserID(as.SenderLocalpart)
	who := &requester{UserID: sender, AppService: as}
	if assert != "" && assert != sender {
		if !as.Interested(assert, sender) {
			return nil, matrix.Forbidden("Application service cannot masquerade as this user.")
		}
		who.UserID = assert
	}
	return who, nil
}

// addressKey is the rate-limit key of the request's client address.
func addressKey(ctx context.Context) string { return ratelimit.AddressKey(clientIP(ctx)) }
