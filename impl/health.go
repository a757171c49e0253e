package impl

import (
	"context"
	"net/http"
	"strings"
	"time"

	"registrar/api"
	"registrar/impl/matrix"
)

// readinessTimeout bounds each store check of /readyz.
const readinessTimeout = 2 * time.Second

// GetHealth is GET /health: OK while the process serves requests
// (Synapse's), touching nothing else.
func (s *Server) GetHealth(context.Context, api.GetHealthRequestObject) (api.GetHealthResponseObject, error) {
	return api.GetHealth200TextResponse("OK"), nil
}

// GetReadiness is GET /readyz: OK when the database answers within
// readinessTimeout. Redis, when configured, is checked too, but its
// absence only degrades the answer: the rate limits then count per
// instance and requests are still served, so taking every instance out
// of a load balancer for it would turn a lost Redis into an outage.
func (s *Server) GetReadiness(ctx context.Context, _ api.GetReadinessRequestObject) (api.GetReadinessResponseObject, error) {
	dbCtx, cancel := context.WithTimeout(ctx, readinessTimeout)
	defer cancel()
	if err := s.revoking.Ping(dbCtx); err != nil {
		return nil, &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown,
			Message: "The database does not answer", Internal: err}
	}
	var degraded []string
	if s.redis != nil {
		redisCtx, cancel := context.WithTimeout(ctx, readinessTimeout)
		defer cancel()
		if err := s.redis.Ping(redisCtx); err != nil {
			s.log.WarnContext(ctx, "readiness: Redis does not answer; rate limits count per instance", "error", err)
			degraded = append(degraded, "Redis does not answer, rate limits count per instance")
		}
	}
	if s.homeserver != nil {
		hsCtx, cancel := context.WithTimeout(ctx, readinessTimeout)
		defer cancel()
		if err := s.homeserver.Health(hsCtx); err != nil {
			s.log.WarnContext(ctx, "readiness: changes for the homeserver wait", "error", err)
			degraded = append(degraded, "the homeserver: "+err.Error())
		}
	}
	for _, idp := range s.upstream.Unavailable() {
		degraded = append(degraded, "identity provider "+idp)
	}
	if s.directory != nil {
		dirCtx, cancel := context.WithTimeout(ctx, readinessTimeout)
		defer cancel()
		if err := s.directory.Ping(dirCtx); err != nil {
			s.log.WarnContext(ctx, "readiness: the LDAP directory does not answer", "error", err)
			degraded = append(degraded, "the LDAP directory does not answer")
		}
	}
	if len(degraded) > 0 {
		return api.GetReadiness200TextResponse("OK (degraded: " + strings.Join(degraded, "; ") + ")"), nil
	}
	return api.GetReadiness200TextResponse("OK"), nil
}
