package impl

import (
	"context"
	"strings"

	"registrar/api"
)

// supportedVersions are the spec versions all of whose changes to
// registrar's surface are implemented; VERSIONS.md maps each to the code
// and tests that cover it.
var supportedVersions = []string{"r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7",
	"v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19"}

// GetVersions is GET /_matrix/client/versions.
func (s *Server) GetVersions(context.Context, api.GetVersionsRequestObject) (api.GetVersionsResponseObject, error) {
	return api.GetVersions200JSONResponse{Versions: supportedVersions}, nil
}

// GetWellknown is GET /.well-known/matrix/client.
func (s *Server) GetWellknown(context.Context, api.GetWellknownRequestObject) (api.GetWellknownResponseObject, error) {
	return api.GetWellknown200JSONResponse(*s.wellKnown()), nil
}

// wellKnown is the discovery document: the homeserver's base URL, and the
// authorisation server (MSC2965's unstable entry) while the OAuth 2.0 API
// is on.
func (s *Server) wellKnown() *api.DiscoveryInformation {
	out := &api.DiscoveryInformation{MHomeserver: api.HomeserverInformation{BaseUrl: strings.TrimSuffix(s.cfg.PublicBaseURL, "/")}}
	if s.oauth != nil {
		account := s.oauth.Metadata().AccountManagementURI
		out.OrgMatrixMsc2965Authentication = &api.AuthenticationInformation{Issuer: s.cfg.OAuth.Issuer, Account: &account}
	}
	return out
}
