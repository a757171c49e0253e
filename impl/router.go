package impl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"registrar/api"
	"registrar/impl/logging"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/secrets"
	"registrar/impl/seen"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// httpStack is the HTTP plumbing around the handlers: CORS, query and
// body checks before routing, then per operation (resolved once, at
// start) authentication and kin-openapi request validation, then the
// generated strict handlers; and the one place errors are written.
type httpStack struct {
	echo       *echo.Echo
	log        *slog.Logger
	maxBody    int64
	tokens     *tokenResolver
	seen       *seen.Recorder
	pagePolicy func(op *openapi3.Operation) web.Policy
	// legacyAuth serves the legacy authentication API (oauth.legacy_api).
	legacyAuth bool
	// legacyClientAPIs serves the v1 and v2_alpha registration APIs
	// (legacy_client_apis).
	legacyClientAPIs bool
	// errorPage renders an error of a page operation as a page.
	errorPage func(ctx context.Context, status int, msg string) []byte
	// secureCookies: the pages are served over https.
	secureCookies bool
	requestPrefix string
	requestSeq    atomic.Uint64
	// metrics counts requests by route; accessLog writes a line for each.
	metrics   *metrics.Set
	accessLog bool
	// requestLog writes access log lines without slog's per-record
	// work, when the logger is registrar's own handler.
	requestLog *logging.Handler
	routes     map[routeKey]*observedRoute
	unrouted   map[string]*observedRoute
}

func newHTTPStack(s *Server) (*httpStack, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	h := &httpStack{echo: echo.New(), log: s.log, maxBody: s.cfg.MaxRequestBodySize, requestPrefix: secrets.RandomString(6),
		tokens:     &tokenResolver{store: s.revoking, appServices: s.appServices, accounts: s.accounts, now: s.now},
		seen:       s.seen,
		pagePolicy: s.pagePolicy, legacyAuth: s.cfg.OAuth.LegacyAPI, legacyClientAPIs: s.cfg.LegacyClientAPIs, metrics: s.metrics, accessLog: s.cfg.AccessLog,
		requestLog: requestLogger(s.log)}
	h.observeUnrouted()
	h.errorPage = s.errorPage
	h.secureCookies = strings.HasPrefix(s.cfg.PublicBaseURL, "https://")
	e := h.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.writeError
	e.IPExtractor = echo.ExtractIPDirect()
	if proxies := s.cfg.TrustedProxyNetworks(); len(proxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range proxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Pre(h.observe)
	router := &specRouter{stack: h, spec: spec, options: validationOptions()}
	api.RegisterHandlers(router, api.NewStrictHandler(s, nil))
	if router.err != nil {
		return nil, router.err
	}
	if missing := router.unregistered(); len(missing) > 0 {
		return nil, fmt.Errorf("spec operations without a handler: %s", strings.Join(missing, ", "))
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *httpStack) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.echo.ServeHTTP(w, r) }

func validationOptions() *openapi3filter.Options {
	o := &openapi3filter.Options{SkipSettingDefaults: true, KeepValidatedValue: true}
	o.WithCustomSchemaErrorFunc(func(e *openapi3.SchemaError) string { return e.Reason })
	return o
}

// specRouter receives the generated route registrations and attaches each
// operation's middleware, found by method and path in the spec (never by
// operationId, which the generated code and the embedded spec spell
// differently). Every /_matrix/client/v3 route is also served under the
// legacy /_matrix/client/r0 prefix.
type specRouter struct {
	stack   *httpStack
	spec    *openapi3.T
	options *openapi3filter.Options
	done    map[string]bool
	err     error
}

func (r *specRouter) add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	specPath := echoToSpecPath(path)
	item := r.spec.Paths.Value(specPath)
	var op *openapi3.Operation
	if item != nil {
		op = item.GetOperation(method)
	}
	if op == nil {
		r.err = errors.Join(r.err, fmt.Errorf("generated route %s %s is not in the embedded spec", method, path))
		return nil
	}
	if r.done == nil {
		r.done = map[string]bool{}
	}
	r.done[method+" "+specPath] = true
	mw := append([]echo.MiddlewareFunc{r.stack.operationMiddleware(r.spec, specPath, item, method, op, r.options)}, m...)
	if servesPage(op) {
		// The language switcher links to the page itself, except for the
		// protocol's (its query carries the client's state and challenge).
		self := op.Extensions["x-registrar-protocol"] == nil
		mw = append([]echo.MiddlewareFunc{pageHeaders(r.stack.pagePolicy(op), r.stack.secureCookies, self)}, mw...)
	}
	route := r.stack.echo.Add(method, path, h, mw...)
	r.stack.observeRoute(method, path, specPath)
	if rest, ok := strings.CutPrefix(path, uia.V3Prefix); ok {
		r.stack.echo.Add(method, uia.R0Prefix+rest, h, mw...)
		r.stack.observeRoute(method, uia.R0Prefix+rest, specPath)
	}
	return route
}

func (r *specRouter) unregistered() []string {
	var missing []string
	for path, item := range r.spec.Paths.Map() {
		for method := range item.Operations() {
			if !r.done[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	return missing
}

func echoToSpecPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, ":") {
			parts[i] = "{" + part[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// CONNECT implements api.EchoRouter.
func (r *specRouter) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m...)
}

// DELETE implements api.EchoRouter.
func (r *specRouter) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m...)
}

// GET implements api.EchoRouter.
func (r *specRouter) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m...)
}

// HEAD implements api.EchoRouter.
func (r *specRouter) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m...)
}

// OPTIONS implements api.EchoRouter.
func (r *specRouter) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m...)
}

// PATCH implements api.EchoRouter.
func (r *specRouter) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m...)
}

// POST implements api.EchoRouter.
func (r *specRouter) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m...)
}

// PUT implements api.EchoRouter.
func (r *specRouter) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m...)
}

// TRACE implements api.EchoRouter.
func (r *specRouter) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m...)
}

// authMode is what an operation's security requirements ask of a token.
type authMode int

const (
	authNone     authMode = iota // no security requirement
	authOptional                 // a token may be given; if given it must be valid
	authRequired                 // a valid token is required
)

func operationAuth(op *openapi3.Operation, spec *openapi3.T) authMode {
	sec := op.Security
	if sec == nil {
		sec = &spec.Security
	}
	if len(*sec) == 0 {
		return authNone
	}
	for _, req := range *sec {
		if len(req) == 0 {
			return authOptional
		}
	}
	return authRequired
}

// operationMiddleware authenticates and validates requests of one
// operation. Its route is built once here, so request time does no route
// finding and cost stays flat as the spec grows.
func (h *httpStack) operationMiddleware(spec *openapi3.T, path string, item *openapi3.PathItem, method string, op *openapi3.Operation, opts *openapi3filter.Options) echo.MiddlewareFunc {
	mode := operationAuth(op, spec)
	// A locked account may still log out (Matrix v1.12).
	allowLocked := path == uia.V3Prefix+"logout" || path == uia.V3Prefix+"logout/all"
	// Security is enforced by authenticate below; kin-openapi validates
	// parameters and body against a copy without security requirements.
	validated := *op
	validated.Security = &openapi3.SecurityRequirements{}
	route := &routers.Route{Spec: spec, Server: spec.Servers[0], Path: path, PathItem: item, Method: method, Operation: &validated}
	bodySchema := jsonBodySchema(op)
	// The OAuth library parses and validates its protocol's requests and
	// answers with the protocol's errors.
	protocol := op.Extensions["x-registrar-protocol"] != nil
	// A hot operation whose handler checks its own simple input.
	handlerValidated := op.Extensions["x-registrar-validation"] == "handler"
	legacyOff := op.Extensions["x-registrar-legacy-auth"] == true && !h.legacyAuth
	legacyClientOff := op.Extensions["x-registrar-legacy-client-api"] == true && !h.legacyClientAPIs
	errorFormat, _ := op.Extensions["x-registrar-errors"].(string)
	if protocol && errorFormat == "" {
		errorFormat = "oauth2"
	}
	// Answers of the OAuth endpoints carry tokens, codes and client
	// secrets: never stored by a cache (RFC 6749 §5.1, RFC 7662 §4).
	noStore := errorFormat == "oauth2"
	// Logged as the spec files spell operationIds: with a lower-case
	// letter first (the generator capitalises them in Go names).
	operation := op.OperationID
	if operation != "" {
		operation = strings.ToLower(operation[:1]) + operation[1:]
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if legacyClientOff {
				return matrix.ErrUnrecognized
			}
			if legacyOff {
				return errLegacyAuthOff
			}
			if noStore {
				h := c.Response().Header()
				h.Set("Cache-Control", "no-store")
				h.Set("Pragma", "no-cache")
			}
			info := attachInfo(c)
			req := c.Request()
			info.operation, info.clientIP, info.errorFormat = operation, c.RealIP(), errorFormat
			if req.URL.RawQuery != "" && !validQuery(req.URL.RawQuery) {
				return errBadQuery
			}
			switch {
			case mode == authRequired:
				who, err := h.tokens.resolve(req.Context(), req, c.QueryParams(), true, allowLocked)
				if err != nil {
					return err
				}
				info.who = who
				h.recordUse(who, info.clientIP, req.UserAgent())
			case mode == authOptional:
				// The handler decides whether a bad token matters (a guest
				// registration ignores a logged-out client's old token).
				info.who, info.authErr = h.tokens.resolve(req.Context(), req, c.QueryParams(), false, allowLocked)
				if info.who != nil {
					h.recordUse(info.who, info.clientIP, req.UserAgent())
				}
			case req.Header.Get("Authorization") != "" || c.QueryParam("access_token") != "":
				if token, err := accessToken(req.Header, c.QueryParams()); err == nil {
					info.token = token
				}
			}
			info.request = req
			if protocol || handlerValidated {
				return next(c)
			}
			if bodySchema != nil {
				if err := prepareJSONBody(req, bodySchema); err != nil {
					return err
				}
			}
			in := &openapi3filter.RequestValidationInput{
				Request:     req,
				PathParams:  pathParams(c),
				QueryParams: c.QueryParams(),
				Route:       route,
				Options:     opts,
			}
			if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// recordUse notes a device's use for its last-seen fields and whois; an
// application service's or an admin's puppet token is not the user's use.
func (h *httpStack) recordUse(who *requester, ip, userAgent string) {
	if who.AppService == nil && !who.Puppet {
		h.seen.Record(who.UserID, who.DeviceID, ip, userAgent)
	}
}

// jsonBodySchema is the schema of an operation's JSON body, or nil.
func jsonBodySchema(op *openapi3.Operation) *openapi3.Schema {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	mt := op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil
	}
	return mt.Schema.Value
}

// prepareJSONBody reads a JSON body before validation: clients need not
// send Content-Type (client-server API, "API standards"); a body that is
// not valid UTF-8 is M_NOT_JSON; optional properties set to null are
// removed (null means absent).
func prepareJSONBody(req *http.Request, schema *openapi3.Schema) error {
	if ct := req.Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	if !validJSONText(body) {
		return matrix.ErrNotJSON
	}
	body = nullsAsAbsent(body, schema)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return nil
}

// servesPage reports whether an operation answers with an HTML page.
func servesPage(op *openapi3.Operation) bool {
	for _, resp := range op.Responses.Map() {
		if resp.Value != nil && resp.Value.Content.Get("text/html") != nil {
			return true
		}
	}
	return false
}

// pageHeaders sets the security headers of an operation's pages and
// picks their language: ?lang= (kept in a cookie), the cookie, or
// Accept-Language; with linkSelf a GET page's language switcher links to
// the page itself.
func pageHeaders(policy web.Policy, secureCookies, linkSelf bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			web.SetHeaders(c.Response().Header(), policy)
			r := c.Request()
			query := r.URL.Query()
			chosen := query.Get("lang")
			var cookie string
			if ck, err := r.Cookie(web.LanguageCookie); err == nil {
				cookie = ck.Value
			}
			lang := web.PickLanguage(chosen, cookie, r.Header.Get("Accept-Language"))
			if chosen == lang && chosen != cookie {
				c.SetCookie(&http.Cookie{Name: web.LanguageCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true,
					Secure: secureCookies, SameSite: http.SameSiteLaxMode})
			}
			req := web.Request{Lang: lang}
			if r.Method == http.MethodGet && linkSelf {
				query.Del("lang")
				req.Here = r.URL.Path
				if q := query.Encode(); q != "" {
					req.Here += "?" + q
				}
			}
			c.SetRequest(r.WithContext(web.WithRequest(r.Context(), req)))
			return next(c)
		}
	}
}

func pathParams(c echo.Context) map[string]string {
	names := c.ParamNames()
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]string, len(names))
	for i, n := range names {
		out[n] = c.ParamValues()[i]
	}
	return out
}
