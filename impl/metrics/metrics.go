// Package metrics is registrar's Prometheus instrumentation: collectors
// on a registry of their own, and the events the services report to them.
// Labels are route templates, fixed names and errcodes, never user IDs,
// addresses or tokens. A nil *Set counts nothing, so packages may be used
// without one.
package metrics

import (
	"errors"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"registrar/impl/matrix"
)

// namespace prefixes every registrar metric.
const namespace = "registrar"

// Outcomes besides errcodes.
const (
	// Success is the outcome of what worked.
	Success = "success"
	// Failure is the outcome of a failure without an errcode.
	Failure = "failure"
)

// Set is the server's collectors.
type Set struct {
	registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// inFlight counts the requests being answered (one atomic add, where
	// a Gauge's Inc and Dec are compare-and-swap loops).
	inFlight     atomic.Int64
	httpTooLarge prometheus.Counter

	registrations    *prometheus.CounterVec
	uiaStarted       prometheus.Counter
	uiaCompleted     prometheus.Counter
	uiaExpired       prometheus.Counter
	uiaStageFailures *prometheus.CounterVec

	logins        *prometheus.CounterVec
	upstream      *prometheus.CounterVec
	refreshes     *prometheus.CounterVec
	refreshReuses prometheus.Counter
	logouts       *prometheus.CounterVec

	captcha         *prometheus.CounterVec
	messages        *prometheus.CounterVec
	messageDuration *prometheus.HistogramVec
	tokenUses       prometheus.Counter
	tokensExhausted prometheus.Counter
	homeserver      *prometheus.CounterVec

	hashWait     prometheus.Histogram
	hashDuration prometheus.Histogram
	verified     *prometheus.CounterVec
}

// New returns the collectors, registered with the Go runtime's and the
// process's and registrar's build information.
func New() *Set {
	r := prometheus.NewRegistry()
	f := factory{r}
	s := &Set{registry: r,
		httpRequests: f.counterVec("http_requests_total",
			"HTTP requests answered, by method, route template, status and errcode (\"\" for none).",
			"method", "route", "status", "errcode"),
		httpDuration: f.histogramVec("http_request_duration_seconds",
			"Time from a request's arrival to its answer, by method and route template.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "method", "route"),
		httpTooLarge: f.counter("http_request_body_too_large_total",
			"Requests refused with M_TOO_LARGE because their body exceeded max_request_body_size."),

		registrations: f.counterVec("registrations_total",
			"Account creations attempted, by kind (user, guest, appservice, shared-secret, admin, sign-up, sso, ldap) and outcome (success or the errcode).",
			"kind", "outcome"),
		uiaStarted:   f.counter("uia_sessions_started_total", "User-Interactive Authentication sessions started."),
		uiaCompleted: f.counter("uia_sessions_completed_total", "User-Interactive Authentication sessions that completed a flow."),
		uiaExpired: f.counter("uia_sessions_expired_total",
			"User-Interactive Authentication sessions removed by the sweep once expired."),
		uiaStageFailures: f.counterVec("uia_stage_failures_total",
			"User-Interactive Authentication stage attempts that failed, by stage and errcode.", "stage", "errcode"),

		logins: f.counterVec("logins_total",
			"Logins, by type (the login type, or oauth for the OAuth 2.0 sign-in page) and outcome (success or the errcode).",
			"type", "outcome"),
		upstream: f.counterVec("upstream_signins_total",
			"Sign-ins with an upstream identity provider, by provider and outcome (success, linked, unavailable, refused, "+
				"requirements, no_account, linked_elsewhere, refused_account, awaiting_approval).", "idp", "outcome"),
		refreshes: f.counterVec("refreshes_total",
			"Refresh token uses, by outcome (success or the errcode).", "outcome"),
		refreshReuses: f.counter("refresh_token_reuses_total",
			"Refresh tokens used again after their successor was used: the device was revoked."),
		logouts: f.counterVec("logouts_total",
			"Logouts, by kind (device, all, oauth_revocation).", "kind"),

		captcha: f.counterVec("captcha_verifications_total",
			"Captcha responses verified with the provider, by outcome (success, failure, unavailable).", "outcome"),
		messages: f.counterVec("messages_sent_total",
			"Validation emails and SMS sent, by medium, template and outcome (success, failure).", "medium", "template", "outcome"),
		messageDuration: f.histogramVec("message_send_duration_seconds",
			"Time to hand a validation message to the mail server or SMS gateway, by medium.",
			[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "medium"),
		tokenUses: f.counter("registration_token_uses_total",
			"Registration token uses completed by a registration."),
		homeserver: f.counterVec("homeserver_pushes_total",
			"Changes pushed to the homeserver, by what (user, device) and outcome (success, failure).", "what", "outcome"),
		tokensExhausted: f.counter("registration_tokens_exhausted_total",
			"Registrations that took a registration token's last allowed use."),

		hashWait: f.histogram("password_hash_wait_seconds",
			"Time a password hash or verification waited for a slot of the hashing pool.",
			[]float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}),
		hashDuration: f.histogram("password_hash_duration_seconds",
			"Time a password hash or verification took once it had a slot.",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
		verified: f.counterVec("password_verifications_total",
			"Passwords checked against a hash (a user's, or the dummy one of an unknown user), by the hash's algorithm and cost.",
			"algorithm", "cost"),
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "http_requests_in_flight",
		Help: "HTTP requests being answered."}, func() float64 { return float64(s.inFlight.Load()) }))
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	return s
}

// Handler serves the registry in the Prometheus exposition formats.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry, EnableOpenMetrics: true})
}

// Register adds collectors of the caller's (database statistics), their
// names prefixed with registrar_.
func (s *Set) Register(c ...prometheus.Collector) {
	if s != nil {
		prometheus.WrapRegistererWithPrefix(namespace+"_", s.registry).MustRegister(c...)
	}
}

// GaugeFunc adds a gauge whose value f reads at each scrape; f must be
// safe to call concurrently.
func (s *Set) GaugeFunc(name, help string, f func() float64) {
	if s != nil {
		s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f))
	}
}

// CounterFunc adds a counter whose value f reads at each scrape.
func (s *Set) CounterFunc(name, help string, f func() float64) {
	if s != nil {
		s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, f))
	}
}

// RateLimiter is a limiter whose refusals are counted.
type RateLimiter interface {
	Name() string
	Refusals() uint64
}

// RateLimiters adds registrar_rate_limited_total, by limiter, read from
// the limiters list returns at each scrape.
func (s *Set) RateLimiters(list func() []RateLimiter) {
	if s != nil {
		s.registry.MustRegister(&limiterCollector{list: list, desc: prometheus.NewDesc(namespace+"_rate_limited_total",
			"Requests refused with M_LIMIT_EXCEEDED, by limiter (the rc_* option).", []string{"limiter"}, nil)})
	}
}

type limiterCollector struct {
	list func() []RateLimiter
	desc *prometheus.Desc
}

func (c *limiterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *limiterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.list() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(l.Refusals()), l.Name())
	}
}

// Version is the module version the binary was built as, "(devel)"
// when none.
func Version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// buildInfo is registrar_build_info: 1, labelled with the version, the
// Go version and the VCS revision the binary was built from.
func buildInfo() prometheus.Collector {
	version, revision := Version(), "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build of registrar runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "revision": revision}},
		func() float64 { return 1 })
}

// OutcomeOf is the outcome label of err: success for nil, the errcode of
// a Matrix error, M_UNKNOWN for any other error.
func OutcomeOf(err error) string {
	if err == nil {
		return Success
	}
	if e, ok := matrix.As(err); ok {
		return e.Code
	}
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return matrix.CodeUnknown
}

// Route is the HTTP collectors of one route, curried once at start.
type Route struct {
	set      *Set
	method   string
	route    string
	duration prometheus.Observer
	// counters maps each status and errcode seen to its request counter;
	// copied on write, so that counting takes no lock and no allocation.
	counters atomic.Pointer[map[statusKey]prometheus.Counter]
	mu       sync.Mutex
}

type statusKey struct {
	status  int
	errcode string
}

// Route returns the collectors of method and route (a template).
func (s *Set) Route(method, route string) *Route {
	if s == nil {
		return nil
	}
	r := &Route{set: s, method: method, route: route, duration: s.httpDuration.WithLabelValues(method, route)}
	r.counters.Store(&map[statusKey]prometheus.Counter{})
	return r
}

// Observe counts an answered request.
func (r *Route) Observe(status int, errcode string, took time.Duration) {
	if r == nil {
		return
	}
	r.duration.Observe(took.Seconds())
	key := statusKey{status, errcode}
	c, ok := (*r.counters.Load())[key]
	if !ok {
		c = r.counter(key)
	}
	c.Inc()
	if errcode == matrix.CodeTooLarge {
		r.set.httpTooLarge.Inc()
	}
}

// counter adds the counter of a status and errcode not seen before.
func (r *Route) counter(key statusKey) prometheus.Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.counters.Load()
	if c, ok := old[key]; ok {
		return c
	}
	next := make(map[statusKey]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	c := r.set.httpRequests.WithLabelValues(r.method, r.route, strconv.Itoa(key.status), key.errcode)
	next[key] = c
	r.counters.Store(&next)
	return c
}

// InFlight counts a request in progress; call Done when it is answered.
func (s *Set) InFlight() {
	if s != nil {
		s.inFlight.Add(1)
	}
}

// Done counts a request answered (the pair of InFlight).
func (s *Set) Done() {
	if s != nil {
		s.inFlight.Add(-1)
	}
}

// Registration counts an account creation attempt of kind.
func (s *Set) Registration(kind string, err error) {
	if s != nil {
		s.registrations.WithLabelValues(kind, OutcomeOf(err)).Inc()
	}
}

// UIAStarted counts a UIA session started.
func (s *Set) UIAStarted() {
	if s != nil {
		s.uiaStarted.Inc()
	}
}

// UIACompleted counts a UIA session that completed a flow.
func (s *Set) UIACompleted() {
	if s != nil {
		s.uiaCompleted.Inc()
	}
}

// UIAExpired counts stored UIA sessions that expired unfinished.
func (s *Set) UIAExpired(n int64) {
	if s != nil && n > 0 {
		s.uiaExpired.Add(float64(n))
	}
}

// StageFailure counts a failed attempt at a UIA stage the flows offer.
func (s *Set) StageFailure(stage, errcode string) {
	if s != nil {
		s.uiaStageFailures.WithLabelValues(stage, errcode).Inc()
	}
}

// Login counts a login of loginType (one of the server's login types).
func (s *Set) Login(loginType string, err error) {
	if s != nil {
		s.logins.WithLabelValues(loginType, OutcomeOf(err)).Inc()
	}
}

// LoginOutcome counts a login of loginType whose outcome (success or an
// errcode) is known without an error value (the sign-in page's).
func (s *Set) LoginOutcome(loginType, outcome string) {
	if s != nil {
		s.logins.WithLabelValues(loginType, outcome).Inc()
	}
}

// UpstreamSignIn counts a sign-in with an identity provider by outcome.
func (s *Set) UpstreamSignIn(idp, outcome string) {
	if s != nil {
		s.upstream.WithLabelValues(idp, outcome).Inc()
	}
}

// Refresh counts a refresh token use.
func (s *Set) Refresh(err error) {
	if s != nil {
		s.refreshes.WithLabelValues(OutcomeOf(err)).Inc()
	}
}

// RefreshReuse counts a refresh token reused after its successor.
func (s *Set) RefreshReuse() {
	if s != nil {
		s.refreshReuses.Inc()
	}
}

// Logout counts a logout of kind (device, all, oauth_revocation).
func (s *Set) Logout(kind string) {
	if s != nil {
		s.logouts.WithLabelValues(kind).Inc()
	}
}

// Captcha counts a captcha verification (success, failure, unavailable).
func (s *Set) Captcha(outcome string) {
	if s != nil {
		s.captcha.WithLabelValues(outcome).Inc()
	}
}

// MessageSent counts a validation message handed over (or not) to the
// mail server or SMS gateway, and how long that took.
func (s *Set) MessageSent(medium, template string, err error, took time.Duration) {
	if s == nil {
		return
	}
	outcome := Success
	if err != nil {
		outcome = Failure
	}
	s.messages.WithLabelValues(medium, template, outcome).Inc()
	s.messageDuration.WithLabelValues(medium).Observe(took.Seconds())
}

// RegistrationTokenUsed counts a registration token use completed;
// exhausted when it was the token's last allowed use.
func (s *Set) RegistrationTokenUsed(exhausted bool) {
	if s == nil {
		return
	}
	s.tokenUses.Inc()
	if exhausted {
		s.tokensExhausted.Inc()
	}
}

// Hashed records a password hash or verification: how long it waited for
// a slot and how long it took then.
func (s *Set) Hashed(wait, took time.Duration) {
	if s != nil {
		s.hashWait.Observe(wait.Seconds())
		s.hashDuration.Observe(took.Seconds())
	}
}

// HomeserverPush counts one push of a user's or device's state to the
// homeserver.
func (s *Set) HomeserverPush(what string, err error) {
	if s != nil {
		outcome := Success
		if err != nil {
			outcome = "failure"
		}
		s.homeserver.WithLabelValues(what, outcome).Inc()
	}
}

// PasswordVerified counts a password checked against a hash of this
// algorithm and cost.
func (s *Set) PasswordVerified(algorithm, cost string) {
	if s != nil {
		s.verified.WithLabelValues(algorithm, cost).Inc()
	}
}

// factory makes registrar's collectors and registers them.
type factory struct{ r *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.r.MustRegister(h)
	return h
}
