package impl

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"registrar/impl/logging"
	"registrar/impl/metrics"
	"registrar/impl/ratelimit"
)

// Metrics serves the server's Prometheus metrics (for the metrics
// listener; never routed on the client listener by the server itself).
func (s *Server) Metrics() http.Handler { return s.metrics.Handler() }

// collectGauges registers the metrics read at each scrape: rate-limit
// refusals, the token cache, the password hashing queue, the database
// pool and schema, and Redis fallbacks.
func (s *Server) collectGauges(ctx context.Context) error {
	m := s.metrics
	m.RateLimiters(func() []metrics.RateLimiter {
		all := s.allLimiters()
		out := make([]metrics.RateLimiter, 0, len(all))
		for _, l := range all {
			if l != nil && l.Name() != "" {
				out = append(out, l)
			}
		}
		return out
	})
	m.CounterFunc("token_cache_hits_total", "Access token lookups answered from the cache.",
		func() float64 { return float64(s.revoking.CacheStats().Hits) })
	m.CounterFunc("token_cache_misses_total", "Access token lookups that read the database.",
		func() float64 { return float64(s.revoking.CacheStats().Misses) })
	m.CounterFunc("token_cache_evictions_total", "Cached access tokens dropped to make room.",
		func() float64 { return float64(s.revoking.CacheStats().Evictions) })
	m.GaugeFunc("password_hash_queue_length", "Password hashes and verifications waiting for a slot of the hashing pool.",
		func() float64 { return float64(s.hasher.Waiting()) })
	m.GaugeFunc("password_hash_slots", "Slots of the password hashing pool (hashes that run at once).",
		func() float64 { return float64(s.hasher.Slots()) })
	if s.redis != nil {
		m.CounterFunc("redis_rate_limit_fallbacks_total", "Rate-limit decisions taken by this instance alone because Redis failed.",
			func() float64 { return float64(s.redis.Fallbacks()) })
	}
	sqlDB, err := s.revoking.SQLDB()
	if err != nil {
		return err
	}
	m.Register(collectors.NewDBStatsCollector(sqlDB, s.revoking.Engine()))
	version, err := s.revoking.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	m.GaugeFunc("schema_version", "The highest database migration applied.", func() float64 { return float64(version) })
	if s.homeserver != nil {
		outbox := func(failing bool) func() float64 {
			return func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				stats, err := s.homeserver.Stats(ctx)
				if err != nil {
					return -1
				}
				if failing {
					return float64(stats.Failing)
				}
				return float64(stats.Pending)
			}
		}
		m.GaugeFunc("homeserver_outbox_pending", "Changes waiting to be pushed to the homeserver.", outbox(false))
		m.GaugeFunc("homeserver_outbox_failing", "Changes for the homeserver whose push failed at least once (retried with backoff).", outbox(true))
	}
	return nil
}

var _ metrics.RateLimiter = (*ratelimit.Limiter)(nil)

// routeKey is an echo route: a method and a path as registered.
type routeKey struct{ method, path string }

// observedRoute is what a route reports to: its metrics, and whether
// its answers are logged quietly (the health checks, at debug level).
type observedRoute struct {
	metrics *metrics.Route
	quiet   bool
}

// quietRoutes are the paths load balancers and orchestrators poll.
var quietRoutes = map[string]bool{"/health": true, "/readyz": true}

// observeRoute notes the metrics route of an echo route: template is the
// spec's path template, whatever prefix (v3 or r0) the route has.
func (h *httpStack) observeRoute(method, path, template string) {
	if h.routes == nil {
		h.routes = map[routeKey]*observedRoute{}
	}
	h.routes[routeKey{method, path}] = &observedRoute{metrics: h.metrics.Route(method, template), quiet: quietRoutes[template]}
}

// observedMethods are the methods counted by name on unknown routes;
// any other method is counted as OTHER, so that clients cannot add
// label values.
var observedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

// unroutedPath is the route label of requests that matched no route
// (404, 405, OPTIONS answered before routing).
const unroutedPath = "other"

func (h *httpStack) observeUnrouted() {
	h.unrouted = map[string]*observedRoute{}
	for _, m := range append(observedMethods, "OTHER") {
		h.unrouted[m] = &observedRoute{metrics: h.metrics.Route(m, unroutedPath)}
	}
}

func (h *httpStack) routeOf(method, path string) *observedRoute {
	if r, ok := h.routes[routeKey{method, path}]; ok {
		return r
	}
	if r, ok := h.unrouted[method]; ok {
		return r
	}
	return h.unrouted["OTHER"]
}

// observe is the one middleware before routing, around everything else:
// it gives the request its ID and its requestInfo, runs corsAndLimits,
// answers errors, counts the answer by route, status and errcode, and
// writes the access log line.
func (h *httpStack) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		h.metrics.InFlight()
		defer h.metrics.Done()
		info := attachInfo(c)
		h.numberRequest(info)
		answered, err := h.corsAndLimits(c)
		if !answered {
			err = next(c)
		}
		if err != nil {
			c.Error(err)
		}
		took := time.Since(start)
		req := c.Request()
		route := h.routeOf(req.Method, c.Path())
		status := c.Response().Status
		route.metrics.Observe(status, info.errcode, took)
		if h.accessLog {
			h.logRequest(route.quiet, info, req.Method, c.Path(), status, start.Add(took), took)
		}
		return nil
	}
}

// logRequest writes the access log line of a request (stamped with its
// end): at info level, or debug for the health checks.
func (h *httpStack) logRequest(quiet bool, info *requestInfo, method, route string, status int, end time.Time, took time.Duration) {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelDebug
	}
	if h.requestLog != nil && h.requestLog.LogRequest(level, end, logging.Request{IDPrefix: info.idPrefix, IDNumber: info.seq,
		Operation: info.operation, Method: method, Route: route, Status: status, Errcode: info.errcode, Duration: took}) {
		return
	}
	// The line names its request itself: a context without the
	// request's info spares the handler a copy of the record.
	h.log.LogAttrs(context.Background(), level, "request",
		slog.String("request_id", info.requestID()),
		slog.String("operation", info.operation),
		slog.String("method", method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.String("errcode", info.errcode),
		slog.Duration("duration", took))
}

// requestLogger is log's registrar handler, for access log lines, or
// nil when log has another handler.
func requestLogger(log *slog.Logger) *logging.Handler {
	h := log.Handler()
	if ra, ok := h.(requestAttrsHandler); ok {
		h = ra.Handler
	}
	lh, _ := h.(*logging.Handler)
	return lh
}

// attachInfo returns the request's requestInfo, attaching a new one to
// its context on first use.
func attachInfo(c echo.Context) *requestInfo {
	req := c.Request()
	if info, ok := req.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	info := &requestInfo{}
	req = req.WithContext(context.WithValue(req.Context(), requestInfoKey{}, info))
	info.request = req
	c.SetRequest(req)
	return info
}

// withRequestAttrs adds the request ID and the operation of the request
// a record is logged in (from its context) to every record.
func withRequestAttrs(h slog.Handler) slog.Handler {
	if _, ok := h.(requestAttrsHandler); ok {
		return h
	}
	return requestAttrsHandler{h}
}

type requestAttrsHandler struct{ slog.Handler }

func (h requestAttrsHandler) Handle(ctx context.Context, r slog.Record) error {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok && info.seq != 0 {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", info.requestID()))
		if info.operation != "" {
			r.AddAttrs(slog.String("operation", info.operation))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestAttrsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestAttrsHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestAttrsHandler) WithGroup(name string) slog.Handler {
	return requestAttrsHandler{h.Handler.WithGroup(name)}
}
