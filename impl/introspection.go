package impl

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"registrar/api"
	"registrar/db"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/oauth"
	"registrar/impl/secrets"
)

// The scope tokens an introspection answers with, in the spec's stable
// spelling and MSC2967's unstable one (Synapse 1.94 reads only the
// latter), and Synapse's admin scope.
const (
	scopeAPIStable      = "urn:matrix:client:api:*"
	scopeAPIUnstable    = "urn:matrix:org.matrix.msc2967.client:api:*"
	scopeGuestStable    = "urn:matrix:client:api:guest"
	scopeGuestUnstable  = "urn:matrix:org.matrix.msc2967.client:api:guest"
	scopeDeviceStable   = "urn:matrix:client:device:"
	scopeDeviceUnstable = "urn:matrix:org.matrix.msc2967.client:device:"
	scopeSynapseAdmin   = "urn:synapse:admin:*"
)

var errIntrospectionCaller = &oauth.Error{Status: http.StatusUnauthorized, Code: oauth.CodeInvalidClient,
	Description: "introspection needs a configured client's credentials or the homeserver's secret"}

// OauthIntrospect is POST /_registrar/oauth2/introspect (RFC 7662).
func (s *Server) OauthIntrospect(ctx context.Context, req api.OauthIntrospectRequestObject) (api.OauthIntrospectResponseObject, error) {
	out, err := s.introspect(ctx, (*api.IntrospectionRequest)(req.Body))
	if err != nil {
		return nil, err
	}
	return introspectionAnswer{out}, nil
}

// OauthIntrospectAtRoot is POST /oauth2/introspect (RFC 7662), where
// newer Synapse builds the URL from its endpoint.
func (s *Server) OauthIntrospectAtRoot(ctx context.Context, req api.OauthIntrospectAtRootRequestObject) (api.OauthIntrospectAtRootResponseObject, error) {
	out, err := s.introspect(ctx, (*api.IntrospectionRequest)(req.Body))
	if err != nil {
		return nil, err
	}
	return introspectionAnswer{out}, nil
}

// introspectionAnswer writes an introspection's 200 answer, encoded by
// hand (it is on the hot path of every request the homeserver serves);
// TestIntrospectionEncodingIsJSON holds it to encoding/json's.
type introspectionAnswer struct{ api.OAuthIntrospection }

// VisitOauthIntrospectResponse implements api.OauthIntrospectResponseObject.
func (a introspectionAnswer) VisitOauthIntrospectResponse(w http.ResponseWriter) error {
	return a.write(w)
}

// VisitOauthIntrospectAtRootResponse implements api.OauthIntrospectAtRootResponseObject.
func (a introspectionAnswer) VisitOauthIntrospectAtRootResponse(w http.ResponseWriter) error {
	return a.write(w)
}

func (a introspectionAnswer) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(AppendIntrospection(make([]byte, 0, 512), a.OAuthIntrospection))
	return err
}

// AppendIntrospection appends the JSON of an introspection answer (the
// fields encoding/json writes, in the order of the type's fields).
func AppendIntrospection(b []byte, o api.OAuthIntrospection) []byte {
	b = append(b, `{"active":`...)
	b = strconv.AppendBool(b, o.Active)
	str := func(name string, v *string) {
		if v != nil {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = appendJSONString(b, *v)
		}
	}
	num := func(name string, v *int64) {
		if v != nil {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, *v, 10)
		}
	}
	str("client_id", o.ClientId)
	str("device_id", o.DeviceId)
	num("exp", o.Exp)
	num("expires_in", o.ExpiresIn)
	num("iat", o.Iat)
	str("scope", o.Scope)
	str("sub", o.Sub)
	str("token_type", o.TokenType)
	str("username", o.Username)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, and what is not valid UTF-8 replaced, as
// encoding/json does (HTML characters included: < > & as \u003c...).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// introspect authenticates the caller, then answers for the token.
func (s *Server) introspect(ctx context.Context, body *api.IntrospectionRequest) (api.OAuthIntrospection, error) {
	if body == nil {
		body = &api.IntrospectionRequest{}
	}
	if !s.introspectionCaller(ctx, body) {
		s.log.WarnContext(ctx, "introspection refused: unknown caller")
		return api.OAuthIntrospection{}, errIntrospectionCaller
	}
	token := deref(body.Token)
	if token == "" {
		return api.OAuthIntrospection{}, &oauth.Error{Status: http.StatusBadRequest, Code: oauth.CodeInvalidRequest, Description: "token is required"}
	}
	return s.tokenIntrospection(ctx, token)
}

// introspectionCaller reports whether the request comes from a configured
// client (HTTP Basic or the form, as the client declared) or carries the
// homeserver's shared secret as its bearer token; secrets compared in
// constant time.
func (s *Server) introspectionCaller(ctx context.Context, body *api.IntrospectionRequest) bool {
	r := infoFrom(ctx).request
	if r == nil {
		return false
	}
	auth := r.Header.Get("Authorization")
	scheme, value, _ := strings.Cut(auth, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		m := s.cfg.Matrix
		return m.Enabled() && m.Kind == config.KindSynapse && config.SecretsEqual(value, m.Secret)
	case strings.EqualFold(scheme, "Basic"):
		id, secret, ok := basicCredentials(value)
		return ok && s.clientSecretMatches(id, secret, config.ClientSecretBasic)
	case auth != "":
		return false
	}
	return s.clientSecretMatches(deref(body.ClientId), deref(body.ClientSecret), config.ClientSecretPost)
}

// basicCredentials decodes HTTP Basic credentials, each part
// form-urlencoded as RFC 6749 §2.3.1 asks.
func basicCredentials(value string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return "", "", false
	}
	id, secret, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	if id, err = url.QueryUnescape(id); err != nil {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

func (s *Server) clientSecretMatches(clientID, secret, method string) bool {
	cl, ok := s.cfg.StaticClient(clientID)
	// The comparison runs for unknown clients too.
	return config.SecretsEqual(secret, cl.ClientSecret) && ok && cl.ClientAuthMethod == method
}

var inactive = api.OAuthIntrospection{Active: false}

// tokenIntrospection answers for an access token: what it is, or
// inactive when it is unknown, expired, revoked, or its account is
// deactivated or locked. A suspended account's token stays active (it
// still reads). Its first use, for a refreshed pair, consumes the
// refresh token it replaced, as any use does.
func (s *Server) tokenIntrospection(ctx context.Context, token string) (api.OAuthIntrospection, error) {
	owner, err := s.store.LookupAccessToken(ctx, secrets.HashToken(token))
	if errors.Is(err, db.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return inactive, matrix.Internal(err)
	}
	now := s.now().UnixMilli()
	if owner.Deactivated || owner.Locked || owner.ExpiresAt != nil && *owner.ExpiresAt <= now {
		return inactive, nil
	}
	if owner.RefreshTokenID != nil && !owner.Used {
		if err := s.revoking.MarkAccessTokenUsed(ctx, owner.UserID, owner.TokenID, *owner.RefreshTokenID); err != nil {
			return inactive, matrix.Internal(err)
		}
	}
	scope := scopeAPIStable + " " + scopeAPIUnstable
	if owner.Kind == db.KindGuest {
		scope = scopeGuestStable + " " + scopeGuestUnstable
	}
	if owner.DeviceID != "" {
		scope += " " + scopeDeviceStable + owner.DeviceID + " " + scopeDeviceUnstable + owner.DeviceID
	}
	if owner.Admin {
		scope += " " + scopeSynapseAdmin
	}
	localpart, _ := s.accounts.Localpart(owner.UserID)
	out := api.OAuthIntrospection{Active: true, Scope: &scope, Sub: &owner.UserID, Username: &localpart,
		TokenType: ptrTo("access_token"), Iat: ptrTo(owner.CreatedAt / 1000)}
	if owner.DeviceID != "" {
		out.DeviceId = &owner.DeviceID
	}
	if owner.OAuthClientID != "" {
		out.ClientId = &owner.OAuthClientID
	}
	if owner.ExpiresAt != nil {
		out.Exp = ptrTo(*owner.ExpiresAt / 1000)
		out.ExpiresIn = ptrTo(max((*owner.ExpiresAt-now)/1000, 0))
	}
	return out, nil
}

// GetServerVersion is GET /_synapse/admin/v1/server_version (Synapse's
// admin API; synadm asks it before anything else).
func (s *Server) GetServerVersion(context.Context, api.GetServerVersionRequestObject) (api.GetServerVersionResponseObject, error) {
	return api.GetServerVersion200JSONResponse{ServerVersion: "registrar " + metrics.Version()}, nil
}

// ShadowBanUser is POST /_synapse/admin/v1/users/{userId}/shadow_ban.
func (s *Server) ShadowBanUser(ctx context.Context, req api.ShadowBanUserRequestObject) (api.ShadowBanUserResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.users.SetShadowBanned(ctx, actor, req.UserId, true); err != nil {
		return nil, err
	}
	return api.ShadowBanUser200JSONResponse{}, nil
}

// UnshadowBanUser is DELETE /_synapse/admin/v1/users/{userId}/shadow_ban.
func (s *Server) UnshadowBanUser(ctx context.Context, req api.UnshadowBanUserRequestObject) (api.UnshadowBanUserResponseObject, error) {
	actor, err := adminActor(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.users.SetShadowBanned(ctx, actor, req.UserId, false); err != nil {
		return nil, err
	}
	return api.UnshadowBanUser200JSONResponse{}, nil
}
