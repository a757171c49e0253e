// Package impl implements the generated api.StrictServerInterface: the Matrix
// account registration and management endpoints, over a Store.
package impl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"registrar/api"
	"registrar/db"
	"registrar/impl/accounts"
	"registrar/impl/appservice"
	"registrar/impl/config"
	"registrar/impl/matrix"
	"registrar/impl/passwords"
	"registrar/impl/secrets"
	"registrar/impl/threepid"
	"registrar/impl/tokencache"
	"registrar/impl/uia"
	"registrar/impl/web"
)

// Server serves the API. Create it with NewServer.
type Server struct {
	cfg   config.Config
	store *tokencache.Store
	log   *slog.Logger
	now   func() time.Time
	echo  *echo.Echo
	// accounts applies the registration policy, makes accounts and
	// issues logins.
	accounts *accounts.Service
	uia      *uia.Engine
	// terms is the m.login.terms stage, when offered.
	terms *uia.Terms
	// captcha verifies captcha responses, when captcha is enabled.
	captcha *captchaVerifier
	limits  *limiters
	// threepids validates email addresses and phone numbers.
	threepids *threepid.Service
	// appServices finds application services by as_token.
	appServices *appservice.Index

	requestPrefix string
	requestSeq    atomic.Uint64
}

var _ api.StrictServerInterface = (*Server)(nil)

// Options are NewServer's optional dependencies.
type Options struct {
	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil. Tests inject one.
	Now func() time.Time
}

// NewServer builds the HTTP stack: CORS and body limit before routing, then
// per operation (resolved once here) authentication and kin-openapi request
// validation, then the generated strict handlers.
func NewServer(cfg config.Config, store *db.Store, opts Options) (*Server, error) {
	if err := cfg.Prepare(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: opts.Logger, now: opts.Now, requestPrefix: secrets.RandomString(6)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.store = tokencache.Wrap(store, tokencache.New(100_000), s.now)
	var err error
	s.limits = newLimiters(&s.cfg)
	s.appServices = appservice.NewIndex(cfg.AppServices())
	s.accounts = accounts.New(&s.cfg, s.store, passwords.NewHasher(cfg.PasswordConfig, cfg.BcryptRounds), s.appServices,
		s.limits.accounts, s.now, s.log)
	if s.threepids, err = threepid.New(&s.cfg, s.store, s.now, s.log); err != nil {
		return nil, err
	}
	if cfg.EnableRegistrationCaptcha {
		s.captcha = newCaptchaVerifier(cfg.CaptchaSecret(), cfg.Captcha.RecaptchaSiteverifyAPI, s.log)
	}
	if s.uia, err = s.newUIAEngine(); err != nil {
		return nil, err
	}

	spec, err := api.GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) { s.writeError(c, err) }
	e.IPExtractor = echo.ExtractIPDirect()
	if proxies := cfg.TrustedProxyNetworks(); len(proxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range proxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Pre(s.corsAndLimits)
	if cfg.AccessLog {
		e.Use(s.accessLog)
	}
	router := &specRouter{server: s, echo: e, spec: spec, options: s.validationOptions()}
	api.RegisterHandlers(router, api.NewStrictHandler(s, nil))
	if router.err != nil {
		return nil, router.err
	}
	if missing := router.unregistered(); len(missing) > 0 {
		return nil, fmt.Errorf("spec operations without a handler: %s", strings.Join(missing, ", "))
	}
	s.echo = e
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Run does the server's background work (sweeping expired UIA sessions and
// the token uses they held) until ctx is done.
func (s *Server) Run(ctx context.Context) {
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

// sweepUIA removes expired UIA sessions and gives back the registration
// token uses of abandoned ones.
func (s *Server) sweepUIA(ctx context.Context) {
	n, err := s.store.DeleteExpiredUIASessions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sweeping expired UIA sessions failed", "error", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("swept expired UIA sessions", "count", n)
	}
	released, err := s.store.ReleaseAbandonedReservations(ctx, abandonedReservationAge.Milliseconds())
	if err != nil {
		s.log.Warn("releasing registration token reservations failed", "error", err)
	} else if released > 0 {
		s.log.Info("released registration token uses of abandoned sessions", "count", released)
	}
}

// Sweep removes expired UIA sessions and releases the registration token
// uses of abandoned ones, once.
func (s *Server) Sweep(ctx context.Context) {
	s.sweepUIA(ctx)
	if n, err := s.store.DeleteExpiredThreepidSessions(ctx); err != nil {
		s.log.Warn("sweeping 3PID validation sessions failed", "error", err)
	} else if n > 0 {
		s.log.Info("swept expired 3PID validation sessions", "count", n)
	}
	now := s.now()
	for _, l := range append(s.limits.all(), s.threepids.Limiter()) {
		l.Reclaim(now)
	}
}

func (s *Server) validationOptions() *openapi3filter.Options {
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
	server  *Server
	echo    *echo.Echo
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
	mw := append([]echo.MiddlewareFunc{r.server.operationMiddleware(r.spec, specPath, item, method, op, r.options)}, m...)
	if servesPage(op) {
		mw = append([]echo.MiddlewareFunc{r.server.pageHeaders(op)}, mw...)
	}
	route := r.echo.Add(method, path, h, mw...)
	if rest, ok := strings.CutPrefix(path, uia.V3Prefix); ok {
		r.echo.Add(method, uia.R0Prefix+rest, h, mw...)
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
func (s *Server) operationMiddleware(spec *openapi3.T, path string, item *openapi3.PathItem, method string, op *openapi3.Operation, opts *openapi3filter.Options) echo.MiddlewareFunc {
	mode := operationAuth(op, spec)
	// Security is enforced by authenticate below; kin-openapi validates
	// parameters and body against a copy without security requirements.
	validated := *op
	validated.Security = &openapi3.SecurityRequirements{}
	route := &routers.Route{Spec: spec, Server: spec.Servers[0], Path: path, PathItem: item, Method: method, Operation: &validated}
	hasJSONBody := op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Value.Content.Get("application/json") != nil
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			info := &requestInfo{clientIP: c.RealIP()}
			if mode != authNone {
				who, err := s.authenticate(req.Context(), req, c.QueryParams(), mode == authRequired)
				if err != nil {
					return err
				}
				info.who = who
			} else if req.Header.Get("Authorization") != "" || c.QueryParam("access_token") != "" {
				if token, err := accessToken(req.Header, c.QueryParams()); err == nil {
					info.token = token
				}
			}
			req = req.WithContext(context.WithValue(req.Context(), requestInfoKey{}, info))
			c.SetRequest(req)
			if hasJSONBody {
				// Clients need not send Content-Type (client-server API, "API standards").
				if ct := req.Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
					req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
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

// servesPage reports whether an operation answers with an HTML page.
func servesPage(op *openapi3.Operation) bool {
	for _, resp := range op.Responses.Map() {
		if resp.Value != nil && resp.Value.Content.Get("text/html") != nil {
			return true
		}
	}
	return false
}

// pageHeaders sets the security headers of an operation's pages, with the
// Content-Security-Policy its pages need.
func (s *Server) pageHeaders(op *openapi3.Operation) echo.MiddlewareFunc {
	policy := web.Policy{}
	if strings.HasPrefix(strings.ToLower(op.OperationID), "authfallback") {
		policy = s.fallbackPolicy()
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			web.SetHeaders(c.Response().Header(), policy)
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

// corsAndLimits runs before routing: the CORS headers the spec recommends
// on every response, OPTIONS answered without running any endpoint, and the
// request body size limit.
func (s *Server) corsAndLimits(next echo.HandlerFunc) echo.HandlerFunc {
	limit := s.cfg.MaxRequestBodySize
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		req := c.Request()
		if req.Method == http.MethodOptions {
			return c.NoContent(http.StatusNoContent)
		}
		if req.URL.RawQuery != "" && !validQuery(req.URL.RawQuery) {
			return errBadQuery
		}
		if req.ContentLength > limit {
			return &matrix.Error{Status: http.StatusRequestEntityTooLarge, Code: matrix.CodeTooLarge, Message: "Request body too large"}
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = &limitedBody{ReadCloser: req.Body, remaining: limit}
		}
		return next(c)
	}
}

var errBadQuery = matrix.BadRequest(matrix.CodeInvalidParam, "The query string is not valid URL encoding")

// validQuery reports whether a raw query string decodes: url.ParseQuery
// refuses a '%' not followed by two hex digits and a ';' separator, which
// the binders would otherwise meet after validation.
func validQuery(raw string) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// limitedBody fails reads past the body size limit with echo's 413 error,
// which the error writer maps to M_TOO_LARGE.
type limitedBody struct {
	io.ReadCloser
	remaining int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.remaining < 0 {
		return 0, echo.ErrStatusRequestEntityTooLarge
	}
	if int64(len(p)) > l.remaining+1 {
		p = p[:l.remaining+1]
	}
	n, err := l.ReadCloser.Read(p)
	l.remaining -= int64(n)
	if l.remaining < 0 {
		return n, echo.ErrStatusRequestEntityTooLarge
	}
	return n, err
}

// accessLog writes one line per request.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String("request_id", s.requestID(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.Int("status", c.Response().Status),
			slog.Duration("duration", time.Since(start)))
		return nil
	}
}

// requestID returns the request's ID (sent as X-Request-Id), assigning
// one on first use.
func (s *Server) requestID(c echo.Context) string {
	h := c.Response().Header()
	if id := h.Get(echo.HeaderXRequestID); id != "" {
		return id
	}
	id := s.requestPrefix + "-" + strconv.FormatUint(s.requestSeq.Add(1), 10)
	h.Set(echo.HeaderXRequestID, id)
	return id
}
