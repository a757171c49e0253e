package impl

import (
	"context"
	"net/http"
	"strings"

	"registrar/api"
)

// supportedVersions are the spec versions whose registration, login and
// account endpoints registrar serves (r0 paths included).
var supportedVersions = []string{"r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7"}

// GetVersions is GET /_matrix/client/versions.
func (s *Server) GetVersions(context.Context, api.GetVersionsRequestObject) (api.GetVersionsResponseObject, error) {
	return api.GetVersions200JSONResponse{Versions: supportedVersions}, nil
}

// GetWellknown is GET /.well-known/matrix/client.
func (s *Server) GetWellknown(context.Context, api.GetWellknownRequestObject) (api.GetWellknownResponseObject, error) {
	return api.GetWellknown200JSONResponse(*s.wellKnown()), nil
}

func (s *Server) wellKnown() *api.DiscoveryInformation {
	return &api.DiscoveryInformation{MHomeserver: api.HomeserverInformation{BaseUrl: strings.TrimSuffix(s.cfg.PublicBaseURL, "/")}}
}

var errNotImplemented3PID = &Error{Status: http.StatusNotImplemented, Code: CodeUnrecognized,
	Message: "Email and phone number verification is not available on this server"}

// RequestTokenToRegisterEmail is POST /_matrix/client/v3/register/email/requestToken.
func (s *Server) RequestTokenToRegisterEmail(context.Context, api.RequestTokenToRegisterEmailRequestObject) (api.RequestTokenToRegisterEmailResponseObject, error) {
	return nil, errNotImplemented3PID
}

// RequestTokenToRegisterMSISDN is POST /_matrix/client/v3/register/msisdn/requestToken.
func (s *Server) RequestTokenToRegisterMSISDN(context.Context, api.RequestTokenToRegisterMSISDNRequestObject) (api.RequestTokenToRegisterMSISDNResponseObject, error) {
	return nil, errNotImplemented3PID
}

// RequestTokenToResetPasswordEmail is POST /_matrix/client/v3/account/password/email/requestToken.
func (s *Server) RequestTokenToResetPasswordEmail(context.Context, api.RequestTokenToResetPasswordEmailRequestObject) (api.RequestTokenToResetPasswordEmailResponseObject, error) {
	return nil, errNotImplemented3PID
}

// RequestTokenToResetPasswordMSISDN is POST /_matrix/client/v3/account/password/msisdn/requestToken.
func (s *Server) RequestTokenToResetPasswordMSISDN(context.Context, api.RequestTokenToResetPasswordMSISDNRequestObject) (api.RequestTokenToResetPasswordMSISDNResponseObject, error) {
	return nil, errNotImplemented3PID
}
